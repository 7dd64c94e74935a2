package txn

import (
	"math/rand/v2"
	"time"
)

// Outcome is how one transaction attempt ended.
type Outcome string

// The outcomes an Observer sees.
const (
	// OutcomeCommitted: the attempt committed; its records are visible
	// to read_committed consumers.
	OutcomeCommitted Outcome = "committed"
	// OutcomeAborted: the attempt was aborted; none of its records will
	// ever be visible to read_committed consumers.
	OutcomeAborted Outcome = "aborted"
	// OutcomeUnknown: the commit was sent but its outcome is unknown
	// (see ErrCommitUnknown).
	OutcomeUnknown Outcome = "unknown"
)

// Attempt describes one finished transaction attempt, for an Observer.
type Attempt struct {
	// TransactionalID is the producer's transactional ID.
	TransactionalID string
	// Outcome is how the attempt ended.
	Outcome Outcome
	// Number counts attempts of one Run from 1.
	Number int
	// Retrying is true when Run will run the function again after this
	// (aborted) attempt: count it as a retry.
	Retrying bool
	// Err is the cause of an abort (nil when committed) and Class its
	// kafkaproducer.Classify class, usable as a metric label.
	Err   error
	Class string
	// Duration is the attempt's time from begin to the end of the
	// commit or abort.
	Duration time.Duration
	// EndLatency is the time the EndTxn call (commit or abort) took:
	// the commit latency for committed attempts.
	EndLatency time.Duration
}

// Observer receives one call per finished transaction attempt, so the
// metrics package can count commits, aborts (by class), retries and
// commit latency without this package importing it. OnAttempt runs on the
// goroutine that called Run (or the pipeline's goroutine), after the
// attempt ended and with no lock held; it must be fast and must not call
// back into the producer.
type Observer interface {
	OnAttempt(Attempt)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(Attempt)

// OnAttempt calls f(a).
func (f ObserverFunc) OnAttempt(a Attempt) { f(a) }

// Option configures New, NewPool and NewPipeline.
type Option func(*options)

type options struct {
	initTimeout time.Duration
	endTimeout  time.Duration
	maxAttempts int
	backoffMin  time.Duration
	backoffMax  time.Duration
	observer    Observer
	now         func() time.Time
	after       func(time.Duration) <-chan time.Time
}

func defaultOptions() options {
	return options{
		initTimeout: 30 * time.Second,
		endTimeout:  30 * time.Second,
		maxAttempts: 5,
		backoffMin:  50 * time.Millisecond,
		backoffMax:  2 * time.Second,
		now:         time.Now,
		after:       time.After,
	}
}

func buildOptions(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithInitTimeout bounds how long New waits for the transaction
// coordinator to initialise the producer ID (which is where a bad
// transactional ID, a missing ACL or an unreachable cluster shows up).
// Default 30s.
func WithInitTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.initTimeout = d
		}
	}
}

// WithEndTimeout bounds each EndTxn (commit or abort) and the wait for
// buffered records before an abort. These run on a context detached from
// Run's, so that canceling Run's context cannot leave a commit half-sent.
// Default 30s.
func WithEndTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.endTimeout = d
		}
	}
}

// WithMaxAttempts caps how often Run runs the function for one call,
// retries included. Default 5; 1 disables retries.
func WithMaxAttempts(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxAttempts = n
		}
	}
}

// WithBackoff sets the wait between attempts: exponential from initial,
// capped at maxWait, with equal jitter (each wait is between half and all
// of its step). Default 50ms to 2s.
func WithBackoff(initial, maxWait time.Duration) Option {
	return func(o *options) {
		if initial > 0 {
			o.backoffMin = initial
		}
		if maxWait >= o.backoffMin {
			o.backoffMax = maxWait
		}
	}
}

// WithObserver sets the Observer told about every attempt. Default none.
func WithObserver(obs Observer) Option {
	return func(o *options) { o.observer = obs }
}

// WithClock replaces the clock used for durations and backoff waits (for
// tests). nil arguments keep the real clock.
func WithClock(now func() time.Time, after func(time.Duration) <-chan time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
		if after != nil {
			o.after = after
		}
	}
}

// backoff returns the wait before attempt n+1 (n >= 1).
func (o *options) backoff(n int) time.Duration {
	d := o.backoffMin
	for i := 1; i < n && d < o.backoffMax; i++ {
		d *= 2
	}
	d = min(d, o.backoffMax)
	half := d / 2
	return half + time.Duration(rand.Float64()*float64(d-half))
}

func (o *options) observe(a Attempt) {
	if o.observer != nil {
		o.observer.OnAttempt(a)
	}
}
