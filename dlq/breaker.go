package dlq

import (
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
)

// The circuit breaker is gobreaker's: its state machine decides when the
// breaker opens, when it lets probes through (half-open) and when it
// closes again. While it is closed, though, the counts it trips on are
// kept here, with atomics: a healthy send then costs an atomic add
// instead of two trips through gobreaker's mutex (each with a clock read
// and, for Allow, a closure), which were a third of a healthy dlq send's
// CPU and a lock the sending and completing goroutines contended for on
// every record. A failure still goes through gobreaker, whose ReadyToTrip
// reads these counts; while the breaker is open or half-open every send
// goes through gobreaker as before.

// window is the closed-state counts of one window: sends, failures, and
// failures since the last success. A new window replaces it on every
// state change and every Breaker.Interval (when gobreaker would clear its
// own counts); an outcome is counted in the window its send was admitted
// in, so the outcomes of older sends land in a window nobody reads, as
// gobreaker drops those of an older generation. Bad input, authorization
// and canceled sends count as sends but not as failures (gobreaker's
// exclusions count in its Requests too).
type window struct {
	requests    atomic.Int64
	failures    atomic.Int64
	consecutive atomic.Int64
}

// readyToTrip is BreakerConfig's rule on w.
func (w *window) readyToTrip(b BreakerConfig) bool {
	if w.consecutive.Load() >= int64(b.ConsecutiveFailures) {
		return true
	}
	req := w.requests.Load()
	return b.FailureRatio <= 1 && req >= int64(b.MinRequests) &&
		float64(w.failures.Load()) >= b.FailureRatio*float64(req)
}

// ticket is a send's admission through the breaker: gobreaker's
// completion func, or, while the breaker is closed, the window it was
// admitted in. The zero ticket (no breaker) reports nothing.
type ticket struct {
	done func(error) // gobreaker's, when the breaker was not closed
	w    *window
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
		w := d.window.Load()
		w.requests.Add(1)
		return ticket{w: w}, nil
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
	case t.w != nil:
		d.closedOutcome(t.w, err)
	}
}

// closedOutcome counts the outcome of a send admitted in window w; a
// counted failure in the current window goes through gobreaker, which
// trips if readyToTrip says so.
func (d *Producer) closedOutcome(w *window, err error) {
	switch {
	case err == nil:
		if w.consecutive.Load() != 0 {
			w.consecutive.Store(0)
		}
	case breakerExcluded(err):
	default:
		w.failures.Add(1)
		w.consecutive.Add(1)
		if w != d.window.Load() {
			return // an older window: the breaker has moved on
		}
		if done, aerr := d.cb.Allow(); aerr == nil {
			done(err)
		}
	}
}

// newWindow starts a new window of closed-state counts and, through
// windowCh, a new Interval for it.
func (d *Producer) newWindow() {
	d.window.Store(new(window))
	select {
	case d.windowCh <- struct{}{}:
	default:
	}
}

// windows starts a new window every Breaker.Interval while the breaker is
// closed, timed from the last state change. It is a goroutine of its own
// so that a long replay on the supervisor does not stretch a window.
func (d *Producer) windows() {
	defer close(d.winDone)
	t := time.NewTimer(d.cfg.Breaker.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.supCtx.Done():
			return
		case <-d.windowCh:
			t.Reset(d.cfg.Breaker.Interval)
		case <-t.C:
			if gobreaker.State(d.state.Load()) == gobreaker.StateClosed {
				d.window.Store(new(window))
			}
			t.Reset(d.cfg.Breaker.Interval)
		}
	}
}
