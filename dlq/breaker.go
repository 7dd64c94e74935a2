package dlq

import (
	"sync/atomic"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
)

// The circuit breaker is gobreaker's: its state machine decides when the
// breaker opens, when it lets probes through (half-open) and when it
// closes again. While it is closed, though, the counts it trips on are
// kept here, with atomics: a healthy send then costs two atomic adds
// instead of two trips through gobreaker's mutex (each with a clock read
// and, for Allow, a closure), which were a third of a healthy dlq send's
// CPU and a lock the sending and completing goroutines contended for on
// every record. A failure still goes through gobreaker, whose ReadyToTrip
// reads these counts; while the breaker is open or half-open every send
// goes through gobreaker as before.

// ticket is a send's admission through the breaker: gobreaker's
// completion func, or, while the breaker is closed, the window it was
// admitted in. The zero ticket (no breaker) reports nothing.
type ticket struct {
	done  func(error) // gobreaker's, when the breaker was not closed
	epoch uint64      // the closed-state window; 0 when done is used
}

// closedCounts are the closed-state counts: sends, failures and failures
// in a row since epoch began. A new epoch begins, with zero counts, on
// every state change and every Breaker.Interval (gobreaker clears its own
// counts at the same moments), so that outcomes of sends admitted before
// are dropped, as gobreaker drops those of an older generation.
type closedCounts struct {
	epoch       atomic.Uint64
	requests    atomic.Int64
	failures    atomic.Int64
	consecutive atomic.Int64
}

func (c *closedCounts) reset() {
	c.requests.Store(0)
	c.failures.Store(0)
	c.consecutive.Store(0)
	c.epoch.Add(1)
}

// readyToTrip is BreakerConfig's rule on the closed-state counts.
func (c *closedCounts) readyToTrip(b BreakerConfig) bool {
	if c.consecutive.Load() >= int64(b.ConsecutiveFailures) {
		return true
	}
	req := c.requests.Load()
	return b.FailureRatio <= 1 && req >= int64(b.MinRequests) &&
		float64(c.failures.Load()) >= b.FailureRatio*float64(req)
}

// breakerExcluded says which failures the breaker does not count: the
// record's or the caller's doing, not the cluster's.
func breakerExcluded(err error) bool {
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassBadInput, kafkaproducer.ClassAuthorization, kafkaproducer.ClassCanceled:
		return true
	}
	return false
}

// admitBreaker admits a send through the breaker, or returns
// ErrCircuitOpen.
func (d *Producer) admitBreaker() (ticket, error) {
	if d.cb == nil {
		return ticket{}, nil
	}
	if gobreaker.State(d.state.Load()) == gobreaker.StateClosed {
		e := d.counts.epoch.Load()
		d.counts.requests.Add(1)
		return ticket{epoch: e}, nil
	}
	done, err := d.cb.Allow()
	if err != nil {
		return ticket{}, ErrCircuitOpen
	}
	return ticket{done: done}, nil
}

// report tells the breaker how an admitted send ended.
func (d *Producer) report(t ticket, err error) {
	switch {
	case t.done != nil:
		t.done(err)
	case t.epoch != 0 && t.epoch == d.counts.epoch.Load():
		d.closedOutcome(err)
	}
}

// closedOutcome counts the outcome of a send admitted while the breaker
// was closed; a counted failure goes through gobreaker, which trips if
// readyToTrip says so.
func (d *Producer) closedOutcome(err error) {
	switch {
	case err == nil:
		if d.counts.consecutive.Load() != 0 {
			d.counts.consecutive.Store(0)
		}
	case breakerExcluded(err):
		d.counts.requests.Add(-1)
	default:
		d.counts.failures.Add(1)
		d.counts.consecutive.Add(1)
		if done, aerr := d.cb.Allow(); aerr == nil {
			done(err)
		}
	}
}
