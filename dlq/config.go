package dlq

import (
	"fmt"
	"strings"
	"time"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
	"go.uber.org/zap"
)

// OpenPolicy is what sends do while the circuit breaker is open.
type OpenPolicy uint8

// The open policies.
const (
	// OpenSpool (the default) routes sends straight to the spool (by
	// Config.Route for ErrCircuitOpen, so RouteSpool unless changed),
	// without touching Kafka.
	OpenSpool OpenPolicy = iota
	// OpenFailFast refuses sends with ErrCircuitOpen at once.
	OpenFailFast
)

// RecordIDMode says when the record-ID header is added.
type RecordIDMode uint8

// The record-ID modes.
const (
	// RecordIDAlways (the default) gives every record an ID before its
	// first send. Only then can a consumer drop the duplicate an
	// ambiguous timeout causes (the first copy carries the same ID).
	RecordIDAlways RecordIDMode = iota
	// RecordIDOnFallback adds the ID only when a record goes to the
	// dead-letter topic or the spool, saving 50 bytes on healthy sends.
	RecordIDOnFallback
)

// DefaultRecordIDHeader is the record-ID header's default name.
const DefaultRecordIDHeader = "kprod-record-id"

// DefaultDeadLetterTopic is the default dead-letter topic pattern: the
// original topic plus ".DLT", as Spring Kafka's DeadLetterPublishingRecoverer.
const DefaultDeadLetterTopic = "{topic}.DLT"

// BreakerConfig configures the circuit breaker (sony/gobreaker v2). Every
// zero field takes the default named.
type BreakerConfig struct {
	// Disable turns the breaker off: every send goes to Kafka.
	Disable bool
	// ConsecutiveFailures opens the breaker after this many delivery
	// failures in a row. Zero means 5.
	ConsecutiveFailures uint32
	// FailureRatio opens the breaker when at least this fraction of the
	// sends in Interval failed, once MinRequests were made. Zero means
	// 0.5; above 1 disables the ratio rule.
	FailureRatio float64
	// MinRequests before FailureRatio applies. Zero means 20.
	MinRequests uint32
	// Interval is the closed-state window for FailureRatio. Zero means 10s.
	Interval time.Duration
	// OpenTimeout is how long the breaker stays open before it lets
	// probes through (half-open). Zero means 5s.
	OpenTimeout time.Duration
	// HalfOpenProbes is how many sends (or pings) may probe while
	// half-open; that many successes in a row close it, one failure
	// reopens it. Zero means 5.
	HalfOpenProbes uint32
	// PingInterval is how often a background ping checks that a broker
	// answers; a failed ping counts as a failed delivery, so an
	// unreachable cluster opens the breaker without waiting for record
	// timeouts, and a successful ping is a probe while half-open. Zero
	// means 1s; negative disables pings.
	PingInterval time.Duration
	// PingTimeout bounds one ping. Zero means 2s.
	PingTimeout time.Duration
}

// ReplayConfig configures redrive from the spool: the Producer's
// automatic replay and Producer.Replay (as Config.Replay), and the
// package-level Replay that tools use (through the Config it takes).
type ReplayConfig struct {
	// Disable turns off automatic replay; call Producer.Replay or use
	// cmd/kprod-spool instead.
	Disable bool
	// Interval is how often the producer checks whether it can replay
	// (breaker closed, spool not empty). Zero means 1s.
	Interval time.Duration
	// Chunk is how many records are sent per round trip and committed as
	// replayed together. Zero means 1000.
	Chunk int
	// ToDeadLetter sends spooled records to their dead-letter topic
	// (with dead-letter headers) rather than their original topic.
	ToDeadLetter bool
	// KeepTimestamps sends records with their original timestamp. Only
	// safe when the producer's DeliveryTimeout is zero or longer than
	// the oldest record's age: franz-go measures the delivery timeout
	// from the record's timestamp and fails older records at once. By
	// default replayed records are stamped with the replay time and
	// carry the original in the kprod-original-timestamp header.
	KeepTimestamps bool
}

// Config configures a dead-letter Producer.
type Config struct {
	// SpoolDir is the spool's directory (created 0700; a group- or
	// world-writable directory is refused). Empty means no spool: a
	// record that cannot reach Kafka or its dead-letter topic fails to
	// the caller.
	SpoolDir string
	// Spool tunes the spool (size bound, segment size).
	Spool spool.Options

	// DeadLetterTopic names a record's dead-letter topic; "{topic}" is
	// replaced by the original topic. Zero means "{topic}.DLT".
	DeadLetterTopic string
	// DeadLetterProducer sends dead letters through a separate client
	// (another cluster, other credentials), when routed and when
	// replayed from the spool. Nil means the wrapped producer. New takes
	// ownership: Close closes it; the package-level Replay only uses it.
	DeadLetterProducer *kafkaproducer.Producer
	// DeadLetterTimeout bounds one dead-letter send. Zero means 10s.
	DeadLetterTimeout time.Duration

	// Route decides where a failed record goes, given its error (a
	// *kafkaproducer.SendError: match causes with errors.Is, classes with
	// kafkaproducer.Classify). Nil means DefaultRoute, which routes by
	// cause first (a missing or denied topic waits in the spool) and by
	// class second. An open breaker's refusals wrap ErrCircuitOpen with
	// ClassRetriable. Refusals of the call itself are never routed.
	Route func(err error) Route
	// WhenOpen is what sends do while the breaker is open.
	WhenOpen OpenPolicy
	// Breaker configures the circuit breaker.
	Breaker BreakerConfig
	// Replay configures redrive (automatic, Producer.Replay, and the
	// package-level Replay).
	Replay ReplayConfig
	// StrictOrder sends new records to the spool while it holds any or
	// a failed record is on its way there, so a key's records reach
	// Kafka in send order across an outage (see docs/deadletter.md).
	// Replay must then outpace new sends to drain.
	StrictOrder bool

	// RecordID says when records get an ID header; RecordIDHeader names
	// it (zero means "kprod-record-id").
	RecordID       RecordIDMode
	RecordIDHeader string
	// SpringHeaders adds Spring Kafka's kafka_dlt-* headers to dead
	// letters, next to kprod's own.
	SpringHeaders bool

	// MaxPending bounds the records SendAsync has accepted and not yet
	// reported; SendAsync blocks (while its ctx allows) beyond it. Zero
	// means 100,000.
	MaxPending int

	// OnRecord is called once for every record that is dead-lettered or
	// spooled, after it is durable there and before its result is
	// returned or its callback runs, on the Producer's router goroutine.
	// It must not block or call back into the Producer.
	OnRecord func(Event) `kprod:"-"`
	// Observer receives counts for metrics; nil means none.
	Observer Observer `kprod:"-"`
	// Logger receives routing, breaker and replay events. Zero means
	// the wrapped producer's Config.Logger (none if that is nil too).
	Logger *zap.Logger `kprod:"-"`
	// Now is the clock for failure times. Zero means time.Now.
	Now func() time.Time `kprod:"-"`
}

func (c *Config) withDefaults() error {
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if !strings.Contains(c.DeadLetterTopic, "{topic}") {
		return &kafkaproducer.ConfigError{Field: "DeadLetterTopic", Reason: fmt.Sprintf("pattern %q lacks {topic}: every topic would share one dead-letter topic; write e.g. %q", c.DeadLetterTopic, DefaultDeadLetterTopic)}
	}
	if c.DeadLetterTimeout < 0 {
		return &kafkaproducer.ConfigError{Field: "DeadLetterTimeout", Reason: "negative"}
	}
	if c.DeadLetterTimeout == 0 {
		c.DeadLetterTimeout = 10 * time.Second
	}
	if c.Route == nil {
		c.Route = DefaultRoute
	}
	if c.RecordIDHeader == "" {
		c.RecordIDHeader = DefaultRecordIDHeader
	}
	if c.MaxPending < 0 {
		return &kafkaproducer.ConfigError{Field: "MaxPending", Reason: fmt.Sprintf("%d is negative (0 means 100,000)", c.MaxPending)}
	}
	if c.MaxPending == 0 {
		c.MaxPending = 100_000
	}
	if c.StrictOrder && c.SpoolDir == "" {
		return &kafkaproducer.ConfigError{Field: "StrictOrder/SpoolDir", Reason: "StrictOrder needs a spool: set SpoolDir or unset StrictOrder"}
	}
	if c.WhenOpen == OpenSpool && c.SpoolDir == "" && !c.Breaker.Disable {
		c.WhenOpen = OpenFailFast
	}
	b := &c.Breaker
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = 5
	}
	if b.FailureRatio == 0 {
		b.FailureRatio = 0.5
	}
	if b.MinRequests == 0 {
		b.MinRequests = 20
	}
	if b.Interval == 0 {
		b.Interval = 10 * time.Second
	}
	if b.OpenTimeout == 0 {
		b.OpenTimeout = 5 * time.Second
	}
	if b.HalfOpenProbes == 0 {
		b.HalfOpenProbes = 5
	}
	if b.PingInterval == 0 {
		b.PingInterval = time.Second
	}
	if b.PingTimeout == 0 {
		b.PingTimeout = 2 * time.Second
	}
	if b.FailureRatio < 0 || b.Interval < 0 || b.OpenTimeout < 0 || b.PingTimeout < 0 {
		return &kafkaproducer.ConfigError{Field: "Breaker", Reason: "FailureRatio, Interval, OpenTimeout and PingTimeout must not be negative"}
	}
	if c.Replay.Interval <= 0 {
		c.Replay.Interval = time.Second
	}
	if c.Replay.Chunk <= 0 {
		c.Replay.Chunk = 1000
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Observer receives the dead-letter path's counts, for metrics. Its
// methods take only plain types, so a metrics package implements it
// without importing dlq. Every method must be fast, must not block and
// must not call back into the Producer; they run on the goroutine that
// routed or replayed the record (the router, the supervisor, or the
// caller of Replay and New), never under a lock. Labels are bounded:
// topic names, the three breaker states and the two set-aside reasons.
type Observer interface {
	// OnDeadLettered: a record from topic was acknowledged on its
	// dead-letter topic.
	OnDeadLettered(topic string)
	// OnSpooled: a record for topic was persisted in the spool.
	OnSpooled(topic string)
	// OnReplayed: a spooled record was acknowledged on topic (its
	// destination) and removed from the spool.
	OnReplayed(topic string)
	// OnAmbiguous: a record for topic failed after it may have been
	// written; once replayed the topic may hold it twice, with the same
	// record ID.
	OnAmbiguous(topic string)
	// OnSetAside: the spool set a record for topic aside, where only an
	// operator gets it back: reason is "rejected" (SetAsideRejected:
	// replay found it can never be written) or "quarantined"
	// (SetAsideQuarantined: damaged bytes; topic is then "", unknown).
	OnSetAside(topic, reason string)
	// OnBreakerState: the breaker moved to "closed", "half-open" or
	// "open" (gobreaker.State's String).
	OnBreakerState(state string)
	// OnSpoolSize: the spool now holds records and bytes.
	OnSpoolSize(records, bytes int64)
}

type nopObserver struct{}

func (nopObserver) OnDeadLettered(string)     {}
func (nopObserver) OnSpooled(string)          {}
func (nopObserver) OnReplayed(string)         {}
func (nopObserver) OnAmbiguous(string)        {}
func (nopObserver) OnSetAside(string, string) {}
func (nopObserver) OnBreakerState(string)     {}
func (nopObserver) OnSpoolSize(int64, int64)  {}
