package txn

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
)

// The outcomes an Observer sees. They are plain strings so that an
// Observer (package metrics, for one) need not import this package.
const (
	// OutcomeCommitted: the attempt committed; its records are visible
	// to read_committed consumers.
	OutcomeCommitted = "committed"
	// OutcomeAborted: the attempt was aborted; none of its records will
	// ever be visible to read_committed consumers.
	OutcomeAborted = "aborted"
	// OutcomeUnknown: the commit was sent but its outcome is unknown
	// (see ErrCommitUnknown).
	OutcomeUnknown = "unknown"
)

// Observer is told about every finished transaction attempt, so that
// metrics can count commits, aborts, retries and commit latency. Its one
// method takes plain values, so an implementation never imports this
// package: *metrics.Metrics is an Observer.
//
// OnTxnAttempt gets the member's transactional ID; the outcome
// (OutcomeCommitted, OutcomeAborted or OutcomeUnknown); class, the
// kafkaproducer.Class name of the abort's cause ("" when committed),
// usable as a metric label; retrying, true when Run (or the Pipeline)
// will run the transaction again after this aborted attempt; and
// endLatency, the time the EndTxn call (commit or abort) took, which is
// the commit latency of a committed attempt and 0 when no EndTxn was
// sent. The error itself is what Run returns.
//
// It runs on the goroutine that ran the transaction (Run's caller, or the
// Pipeline's Run), after the attempt ended and with no lock held; it must
// be fast and must not call back into the producer.
type Observer interface {
	OnTxnAttempt(transactionalID, outcome, class string, retrying bool, endLatency time.Duration)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(transactionalID, outcome, class string, retrying bool, endLatency time.Duration)

// OnTxnAttempt calls f.
func (f ObserverFunc) OnTxnAttempt(id, outcome, class string, retrying bool, endLatency time.Duration) {
	f(id, outcome, class, retrying, endLatency)
}

// Clock is the time source for attempt durations and the waits between
// attempts. Config.Clock nil means the real clock; tests inject their own.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Defaults for the zero fields of a Config.
const (
	DefaultInitTimeout = 30 * time.Second
	DefaultEndTimeout  = 30 * time.Second
	DefaultMaxAttempts = 5
	DefaultBackoff     = 50 * time.Millisecond
	DefaultMaxBackoff  = 2 * time.Second
)

// Config holds the transaction settings of New, NewPool (through
// PoolConfig) and NewPipeline (through PipelineConfig); the producer's own
// settings stay in the kafkaproducer.Config beside it. The zero value of
// every field but ID means its default; negative durations and counts are
// refused by the constructors.
type Config struct {
	// ID is the transactional ID (New, NewPipeline) or, for a Pool, the
	// prefix of its members' IDs "<ID>-0" ... "<ID>-<Size-1>".
	// Required; keep it stable across restarts of one instance and
	// unique among live instances (a pod name works): a new producer
	// with the same ID fences the old one. Leave
	// kafkaproducer.Config.TransactionalID empty.
	ID string
	// InitTimeout bounds how long the constructor (or a Pool building a
	// member) waits for the transaction coordinator to initialise the
	// producer ID, which is where a bad ID, a missing ACL or an
	// unreachable cluster shows up. Default DefaultInitTimeout (30s).
	InitTimeout time.Duration
	// EndTimeout bounds each EndTxn (commit or abort) and the wait for
	// buffered records before an abort. These run on a context detached
	// from Run's, so that canceling Run's context cannot leave a commit
	// half-sent. Default DefaultEndTimeout (30s).
	EndTimeout time.Duration
	// MaxAttempts caps how often Run runs the function for one call, or
	// how many transactions in a row a Pipeline retries, retries
	// included. Default DefaultMaxAttempts (5); 1 disables retries.
	MaxAttempts int
	// Backoff is the first wait between attempts, doubling up to
	// MaxBackoff, with equal jitter (each wait is between half and all
	// of its step). Defaults DefaultBackoff (50ms) and
	// DefaultMaxBackoff (2s); Backoff above MaxBackoff is refused.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Observer is told about every attempt (for metrics: pass a
	// *metrics.Metrics). Default none.
	Observer Observer
	// Clock replaces the real clock (for tests). Default the real one.
	Clock Clock
}

// withDefaults validates c and fills its zero fields. field prefixes the
// names in its errors ("Config", "PoolConfig", ...).
func (c Config) withDefaults(field string) (Config, error) {
	bad := func(name, reason string) error {
		return &kafkaproducer.ConfigError{Field: field + "." + name, Reason: reason}
	}
	switch {
	case c.ID == "":
		return c, bad("ID", "empty transactional id: pass a stable id unique to this instance")
	case c.InitTimeout < 0:
		return c, bad("InitTimeout", fmt.Sprintf("negative (%v): leave it 0 for the default %v", c.InitTimeout, DefaultInitTimeout))
	case c.EndTimeout < 0:
		return c, bad("EndTimeout", fmt.Sprintf("negative (%v): leave it 0 for the default %v", c.EndTimeout, DefaultEndTimeout))
	case c.MaxAttempts < 0:
		return c, bad("MaxAttempts", fmt.Sprintf("negative (%d): 1 disables retries, 0 means the default %d", c.MaxAttempts, DefaultMaxAttempts))
	case c.Backoff < 0 || c.MaxBackoff < 0:
		return c, bad("Backoff", fmt.Sprintf("negative (Backoff %v, MaxBackoff %v)", c.Backoff, c.MaxBackoff))
	}
	if c.InitTimeout == 0 {
		c.InitTimeout = DefaultInitTimeout
	}
	if c.EndTimeout == 0 {
		c.EndTimeout = DefaultEndTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.Backoff == 0 {
		c.Backoff = min(DefaultBackoff, max(c.MaxBackoff, 1))
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = max(DefaultMaxBackoff, c.Backoff)
	}
	if c.Backoff > c.MaxBackoff {
		return c, &kafkaproducer.ConfigError{Field: field + ".Backoff",
			Reason: fmt.Sprintf("Backoff %v is above MaxBackoff %v: lower Backoff or raise MaxBackoff", c.Backoff, c.MaxBackoff)}
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	return c, nil
}

// backoff returns the wait before attempt n+1 (n >= 1).
func (c *Config) backoff(n int) time.Duration {
	d := c.Backoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.MaxBackoff)
	half := d / 2
	return half + time.Duration(rand.Float64()*float64(d-half))
}

// now reads the clock.
func (c *Config) now() time.Time { return c.Clock.Now() }

// observe reports one attempt to the Observer, if any.
func (c *Config) observe(id, outcome string, err error, retrying bool, endLatency time.Duration) {
	if c.Observer == nil {
		return
	}
	class := ""
	if err != nil {
		class = kafkaproducer.Classify(err).String()
	}
	c.Observer.OnTxnAttempt(id, outcome, class, retrying, endLatency)
}
