package dlq

import (
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
)

// The circuit breaker is gobreaker's two-step breaker, and gobreaker
// keeps every count: each send to Kafka is admitted by Allow and reports
// its outcome through the returned func; ReadyToTrip applies
// BreakerConfig's rules to gobreaker's Counts. dlq adds only what
// gobreaker has no notion of: pings (breaker.go's callers in
// supervise.go), and which failures are not the cluster's (IsExcluded).

// newBreaker builds the breaker; onChange runs under gobreaker's mutex,
// so it must only record the state and nudge the supervisor.
func newBreaker(b BreakerConfig, onChange func(to gobreaker.State)) *gobreaker.TwoStepCircuitBreaker[struct{}] {
	return gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:          "kprod",
		MaxRequests:   b.HalfOpenProbes,
		Interval:      b.Interval,
		Timeout:       b.OpenTimeout,
		ReadyToTrip:   func(c gobreaker.Counts) bool { return readyToTrip(b, c) },
		OnStateChange: func(_ string, _, to gobreaker.State) { onChange(to) },
		IsExcluded:    breakerExcluded,
	})
}

// readyToTrip is BreakerConfig's rule on gobreaker's closed-state counts:
// ConsecutiveFailures in a row, or FailureRatio of at least MinRequests
// sends in the current Interval. Excluded outcomes (bad input,
// authorization, caller cancels) count as sends, not as failures.
func readyToTrip(b BreakerConfig, c gobreaker.Counts) bool {
	if c.ConsecutiveFailures >= b.ConsecutiveFailures {
		return true
	}
	return b.FailureRatio <= 1 && c.Requests >= b.MinRequests &&
		float64(c.TotalFailures) >= b.FailureRatio*float64(c.Requests)
}

// breakerExcluded says which failures the breaker does not count: the
// record's, the operator's or the caller's doing, not the cluster's.
func breakerExcluded(err error) bool {
	if waitsForOperator(err) || callerGaveUp(err) {
		return true
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassBadInput, kafkaproducer.ClassAuthorization, kafkaproducer.ClassCanceled:
		return true
	}
	return false
}

// ticket is a send's admission through the breaker: gobreaker's
// completion func, nil without a breaker.
type ticket func(error)

// admitBreaker admits a send through the breaker, or returns
// ErrCircuitOpen.
func (d *Producer) admitBreaker() (ticket, error) {
	if d.cb == nil {
		return nil, nil
	}
	done, err := d.cb.Allow()
	if err != nil {
		return nil, ErrCircuitOpen
	}
	return done, nil
}

// report tells the breaker how an admitted send ended.
func (t ticket) report(err error) {
	if t != nil {
		t(err)
	}
}

// BreakerState returns the breaker's state: gobreaker.StateClosed,
// StateHalfOpen or StateOpen (String gives "closed", "half-open",
// "open"). With the breaker disabled it is always StateClosed: every
// send goes to Kafka.
func (d *Producer) BreakerState() gobreaker.State {
	if d.cb == nil {
		return gobreaker.StateClosed
	}
	return d.cb.State()
}
