package kafkaproducer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kzap"
	"go.uber.org/zap"
)

// Acks is how many replicas must acknowledge a write before it counts as
// delivered (Kafka's acks setting).
type Acks string

// The acks levels. The empty value means AcksAll.
const (
	AcksAll    Acks = "all"    // every in-sync replica; required by idempotence
	AcksLeader Acks = "leader" // the partition leader only (acks=1)
	AcksNone   Acks = "none"   // fire and forget (acks=0)
)

// Compression names a batch compression codec.
type Compression string

// The compression codecs. The empty value means CompressionSnappy,
// franz-go's default.
const (
	CompressionNone   Compression = "none"
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
)

// Partitioner names how records are spread over a topic's partitions. A
// record with an explicit partition (Record.Partition with
// Record.PartitionSet) always goes there, whatever the partitioner.
type Partitioner string

// The partitioners. The empty value means PartitionerJava.
const (
	// PartitionerJava places keyed records where the Java client does
	// (murmur2, toPositive(h) % n) and spreads unkeyed records with
	// uniform sticky partitioning (KIP-794): one partition until about
	// 64 KiB have gone to it, then another, preferring the least backed
	// up. An empty, non-nil key is hashed like any other key.
	PartitionerJava Partitioner = "java"
	// PartitionerLibrdkafka matches librdkafka's default,
	// consistent_random: CRC32 (IEEE) of the key modulo n; nil and empty
	// keys are spread (sticky here, random per record in librdkafka).
	PartitionerLibrdkafka Partitioner = "librdkafka"
	// PartitionerSarama matches sarama's default hash partitioner:
	// FNV-1a of the key as int32, modulo n, negated if negative; nil
	// keys are spread.
	PartitionerSarama Partitioner = "sarama"
	// PartitionerSaramaCRC matches sarama's
	// NewConsistentCRCHashPartitioner: CRC32 (IEEE), unsigned, modulo n;
	// nil keys are spread.
	PartitionerSaramaCRC Partitioner = "sarama-crc"
	// PartitionerRoundRobin sends each record to the next partition,
	// ignoring keys.
	PartitionerRoundRobin Partitioner = "round-robin"
	// PartitionerManual requires every record to name its partition.
	PartitionerManual Partitioner = "manual"
)

// Backoff is an exponential retry backoff with jitter: try n waits a random
// duration between half and all of min(Initial*2^(n-1), Max).
type Backoff struct {
	Initial time.Duration // first wait; 0 means franz-go's default (about 250ms growing to 1s)
	Max     time.Duration // cap on every wait; 0 means 10 * Initial
}

// Limits that make a setting absurd rather than merely unusual; New rejects
// anything beyond them.
const (
	maxLinger          = time.Minute
	maxDeliveryTimeout = 24 * time.Hour
	maxRequestTimeout  = 10 * time.Minute
	maxMetadataAge     = 24 * time.Hour
	maxBackoff         = 5 * time.Minute
	maxBufferedRecords = 100_000_000
	maxBufferedBytes   = 64 << 30
	minBatchBytes      = 512
	maxBatchBytes      = 1 << 30
	maxIdempotentFly   = 5
)

// Config configures a Producer. Its zero value (plus Brokers) is a safe,
// idempotent, acks=all producer with franz-go's defaults; the presets
// package holds tuned values. Every field says what zero means. Config is a
// plain value: copy it, print it (secrets are redacted), diff it.
type Config struct {
	// Brokers are the bootstrap servers, "host:port". Required.
	Brokers []string
	// ClientID names this producer to the brokers and in logs and
	// metrics. Zero means "kprod".
	ClientID string

	// Acks is the durability level. Zero means AcksAll. Idempotence
	// requires AcksAll: with AcksLeader or AcksNone set
	// DisableIdempotence too.
	Acks Acks
	// DisableIdempotence turns off idempotent writes (on by default),
	// which lets retries duplicate records. Not allowed with
	// TransactionalID.
	DisableIdempotence bool

	// Compression is the batch codec. Zero means snappy. A batch that
	// compresses poorly goes out uncompressed.
	Compression Compression
	// CompressionLevel is the codec's level (gzip 1-9, lz4 0-12, zstd
	// 1-4 as franz-go's zstd speed levels). Zero means the codec's
	// default. Not allowed with none or snappy.
	CompressionLevel int

	// Linger is how long a partition waits for more records before its
	// batch is sent. Zero means franz-go's 10ms; use NoLinger for none.
	Linger time.Duration
	// BatchMaxBytes caps a record batch before compression (Kafka's
	// batch.size / max.message.bytes). Zero means about 1 MB. Range
	// 512 B to 1 GiB.
	BatchMaxBytes int32
	// MaxBufferedRecords bounds the records held in memory waiting for
	// delivery; Send blocks (while its context allows) and TrySend fails
	// with ErrBufferFull beyond it. Zero means 50,000.
	MaxBufferedRecords int
	// MaxBufferedBytes bounds the bytes (keys, values, headers) held in
	// memory the same way. Zero means unbounded.
	MaxBufferedBytes int

	// DeliveryTimeout bounds how long a record may take from Send to
	// acknowledgement, retries included (Kafka's delivery.timeout.ms),
	// measured from the record's Timestamp.
	// Past it the record fails with a timeout-class error. Zero means no
	// bound: with idempotence on, a record already sent to a broker that
	// then dies stays buffered until that broker answers. With a non-zero
	// DeliveryTimeout kprod lets franz-go fail such in-flight records
	// (AllowIdempotentProduceCancellation): their outcome is ambiguous,
	// which ErrDeliveryTimeout's class (ClassTimeout) says. Transactional
	// producers never cancel in-flight records (an abort does that
	// safely). At least 1s and at least Linger + RequestTimeout.
	DeliveryTimeout time.Duration
	// RequestTimeout is how long a broker may take to answer a produce
	// request (Kafka's request.timeout.ms for produce). Zero means 10s.
	RequestTimeout time.Duration
	// Retries caps how often a record is retried after a retriable
	// error. Zero means unlimited within DeliveryTimeout, as in the Java
	// client.
	Retries int
	// RetryBackoff is the wait between retries.
	RetryBackoff Backoff
	// MaxInFlight caps produce requests in flight per broker. With
	// idempotence franz-go always keeps 5 (the most that stays ordered and
	// deduplicated), so only 0 or 5 is accepted; without it, zero means 1
	// (more than one can reorder records on retry).
	MaxInFlight int

	// Partitioner chooses partitions. Zero means PartitionerJava.
	Partitioner Partitioner

	// MetadataMaxAge is how often metadata is refreshed when nothing
	// forces it. Zero means 5m.
	MetadataMaxAge time.Duration
	// MetadataMinAge is the shortest gap between refreshes, which bounds
	// how fast a leader change is noticed. Zero means 5s.
	MetadataMinAge time.Duration
	// AutoCreateTopics asks the brokers to create a topic that does not
	// exist when a record is sent to it (Java's allow.auto.create.topics),
	// which they do only where auto.create.topics.enable is on, with the
	// broker's default partitions, replication and configs. Off in every
	// preset: provision topics with package topics instead. Off, a record
	// for a missing topic fails in under a second with an error naming
	// the topic and both fixes.
	AutoCreateTopics bool

	// TransactionalID makes the client transactional; use the txn
	// package rather than setting it here by hand. Requires idempotence.
	TransactionalID string
	// TransactionTimeout is how long the broker lets a transaction stay
	// open. Zero means 40s. Only with TransactionalID.
	TransactionTimeout time.Duration

	// TLS, when set, encrypts connections to the brokers.
	TLS *TLSConfig
	// SASL, when set, authenticates to the brokers (over TLS, unless the
	// network is otherwise trusted).
	SASL *SASLConfig

	// Logger receives franz-go's client logs (through kzap, at info and
	// above) and kprod's own events. Zero means zap.NewNop().
	Logger *zap.Logger `kprod:"-"`
	// Hooks observe every record's outcome; see Hook.
	Hooks []Hook `kprod:"-"`
	// Opts are raw franz-go options applied after everything above, so
	// the last one wins. They are for what kprod does not model; an
	// option that contradicts a field above makes the field's
	// documentation wrong, and New does not check it.
	Opts []kgo.Opt `kprod:"-"`
	// NewClient, when set, builds the franz-go client from kprod's
	// options (Opts last) instead of kgo.NewClient: for a client that
	// must come from elsewhere, such as a kgo.GroupTransactSession's
	// (txn.Pipeline does this). The Producer owns what it returns and
	// closes it on Close.
	NewClient func(opts ...kgo.Opt) (*kgo.Client, error) `kprod:"-"`
}

// NoLinger is the Linger value for sending batches immediately.
const NoLinger = -1 * time.Nanosecond

// ConfigError is a setting New rejects. Field names the setting (and the
// one it conflicts with, if any); Reason says why and how to fix it.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return "kprod: config " + e.Field + ": " + e.Reason
}

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the config without building a client. It reports every
// problem it finds, each a *ConfigError naming the setting and the fix,
// joined (errors.As finds the first; errors.Join's Unwrap lists them all).
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, cfgErr("Brokers", "no bootstrap brokers: set at least one host:port"))
	}
	for _, b := range c.Brokers {
		if strings.TrimSpace(b) == "" || strings.ContainsAny(b, " \t,") {
			errs = append(errs, cfgErr("Brokers", "%q is not a host:port (give one broker per element)", b))
		}
	}
	switch c.Acks {
	case "", AcksAll, AcksLeader, AcksNone:
	default:
		errs = append(errs, cfgErr("Acks", "unknown acks %q: use %q, %q or %q", c.Acks, AcksAll, AcksLeader, AcksNone))
	}
	idem := !c.DisableIdempotence
	if idem && c.Acks != "" && c.Acks != AcksAll {
		errs = append(errs, cfgErr("Acks/DisableIdempotence", "idempotence requires acks %q but Acks is %q: set Acks to %q or DisableIdempotence to true", AcksAll, c.Acks, AcksAll))
	}
	if _, err := c.codec(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Partitioner.build(); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("Linger", c.Linger, maxLinger, c.Linger == NoLinger); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("DeliveryTimeout", c.DeliveryTimeout, maxDeliveryTimeout, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("RequestTimeout", c.RequestTimeout, maxRequestTimeout, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("MetadataMaxAge", c.MetadataMaxAge, maxMetadataAge, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("MetadataMinAge", c.MetadataMinAge, maxMetadataAge, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("RetryBackoff.Initial", c.RetryBackoff.Initial, maxBackoff, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("RetryBackoff.Max", c.RetryBackoff.Max, maxBackoff, false); err != nil {
		errs = append(errs, err)
	}
	if err := checkDur("TransactionTimeout", c.TransactionTimeout, 15*time.Minute, false); err != nil {
		errs = append(errs, err)
	}
	if c.RetryBackoff.Max != 0 && c.RetryBackoff.Initial > c.RetryBackoff.Max {
		errs = append(errs, cfgErr("RetryBackoff.Initial/RetryBackoff.Max", "Initial %v exceeds Max %v: raise Max or lower Initial", c.RetryBackoff.Initial, c.RetryBackoff.Max))
	}
	if c.MetadataMaxAge != 0 && c.MetadataMinAge > c.MetadataMaxAge {
		errs = append(errs, cfgErr("MetadataMinAge/MetadataMaxAge", "MetadataMinAge %v exceeds MetadataMaxAge %v: lower MetadataMinAge", c.MetadataMinAge, c.MetadataMaxAge))
	}
	if c.DeliveryTimeout > 0 && c.DeliveryTimeout < time.Second {
		errs = append(errs, cfgErr("DeliveryTimeout", "%v is below franz-go's 1s minimum (0 means no bound)", c.DeliveryTimeout))
	}
	if c.DeliveryTimeout > 0 {
		need := c.lingerOrDefault() + c.requestTimeoutOrDefault()
		if c.DeliveryTimeout < need {
			errs = append(errs, cfgErr("DeliveryTimeout/RequestTimeout", "DeliveryTimeout %v is shorter than Linger + RequestTimeout (%v): a record could time out before its first request is answered; raise DeliveryTimeout or lower RequestTimeout", c.DeliveryTimeout, need))
		}
	}
	if c.BatchMaxBytes != 0 && (c.BatchMaxBytes < minBatchBytes || c.BatchMaxBytes > maxBatchBytes) {
		errs = append(errs, cfgErr("BatchMaxBytes", "%d is outside %d..%d bytes", c.BatchMaxBytes, minBatchBytes, maxBatchBytes))
	}
	if c.MaxBufferedRecords < 0 || c.MaxBufferedRecords > maxBufferedRecords {
		errs = append(errs, cfgErr("MaxBufferedRecords", "%d is outside 0..%d (0 means the default 50,000)", c.MaxBufferedRecords, maxBufferedRecords))
	}
	if c.MaxBufferedBytes < 0 || c.MaxBufferedBytes > maxBufferedBytes {
		errs = append(errs, cfgErr("MaxBufferedBytes", "%d is outside 0..%d (0 means unbounded)", c.MaxBufferedBytes, int64(maxBufferedBytes)))
	}
	if c.MaxBufferedBytes != 0 && c.BatchMaxBytes != 0 && c.MaxBufferedBytes < int(c.BatchMaxBytes) {
		errs = append(errs, cfgErr("MaxBufferedBytes/BatchMaxBytes", "MaxBufferedBytes %d is smaller than one batch (BatchMaxBytes %d): raise MaxBufferedBytes", c.MaxBufferedBytes, c.BatchMaxBytes))
	}
	if c.Retries < 0 {
		errs = append(errs, cfgErr("Retries", "%d is negative (0 means unlimited within DeliveryTimeout)", c.Retries))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, cfgErr("MaxInFlight", "%d is negative", c.MaxInFlight))
	}
	if idem && c.MaxInFlight != 0 && c.MaxInFlight != maxIdempotentFly {
		errs = append(errs, cfgErr("MaxInFlight/DisableIdempotence", "with idempotence franz-go keeps exactly %d requests in flight (ordered and deduplicated) but MaxInFlight is %d: set MaxInFlight to 0 or %d, or set DisableIdempotence", maxIdempotentFly, c.MaxInFlight, maxIdempotentFly))
	}
	if c.TransactionalID != "" && !idem {
		errs = append(errs, cfgErr("TransactionalID/DisableIdempotence", "transactions require idempotence: unset DisableIdempotence or TransactionalID"))
	}
	if c.TLS != nil {
		if err := c.TLS.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.SASL != nil {
		if err := c.SASL.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.TransactionalID == "" && c.TransactionTimeout != 0 {
		errs = append(errs, cfgErr("TransactionTimeout/TransactionalID", "TransactionTimeout is set without a TransactionalID: set both or neither"))
	}
	return errors.Join(errs...)
}

func checkDur(field string, d, limit time.Duration, sentinel bool) error {
	if sentinel {
		return nil
	}
	if d < 0 {
		return cfgErr(field, "%v is negative", d)
	}
	if d > limit {
		return cfgErr(field, "%v is above the %v limit", d, limit)
	}
	return nil
}

func (c Config) codec() (kgo.CompressionCodec, error) {
	var codec kgo.CompressionCodec
	levelOK := true
	switch c.Compression {
	case "", CompressionSnappy:
		codec, levelOK = kgo.SnappyCompression(), false
	case CompressionNone:
		codec, levelOK = kgo.NoCompression(), false
	case CompressionGzip:
		codec = kgo.GzipCompression()
		if c.CompressionLevel != 0 && (c.CompressionLevel < 1 || c.CompressionLevel > 9) {
			return codec, cfgErr("CompressionLevel", "gzip level %d is outside 1..9", c.CompressionLevel)
		}
	case CompressionLZ4:
		codec = kgo.Lz4Compression()
		if c.CompressionLevel < 0 || c.CompressionLevel > 12 {
			return codec, cfgErr("CompressionLevel", "lz4 level %d is outside 0..12", c.CompressionLevel)
		}
	case CompressionZstd:
		codec = kgo.ZstdCompression()
		if c.CompressionLevel != 0 && (c.CompressionLevel < 1 || c.CompressionLevel > 4) {
			return codec, cfgErr("CompressionLevel", "zstd level %d is outside 1..4", c.CompressionLevel)
		}
	default:
		return codec, cfgErr("Compression", "unknown codec %q: use none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	if c.CompressionLevel != 0 {
		if !levelOK {
			return codec, cfgErr("CompressionLevel/Compression", "codec %q takes no level but CompressionLevel is %d: set CompressionLevel to 0", c.Compression, c.CompressionLevel)
		}
		codec = codec.WithLevel(c.CompressionLevel)
	}
	return codec, nil
}

// clientID returns the effective client ID.
func (c Config) clientID() string {
	if c.ClientID == "" {
		return "kprod"
	}
	return c.ClientID
}

// ClientOpts validates the config and returns the franz-go options it
// translates to, for building a franz-go client (or a
// kgo.GroupTransactSession) yourself with exactly kprod's settings. Hooks
// are kprod-level and are not included.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return append(c.kgoOpts(log.Named("kprod.kgo")), c.Opts...), nil
}

// kgoOpts translates a validated config into franz-go options.
func (c Config) kgoOpts(log *zap.Logger) []kgo.Opt {
	codec, _ := c.codec()
	part, _ := c.Partitioner.build()
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.clientID()),
		kgo.ProducerBatchCompression(codec),
		kgo.RecordPartitioner(part),
		kgo.WithLogger(kzap.New(log, kzap.Level(kgo.LogLevelInfo))),
		// An unknown topic should reach the caller in seconds, not
		// after franz-go's default of several metadata rounds.
		kgo.UnknownTopicRetries(2),
	}
	switch c.Acks {
	case AcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case AcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	default:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	}
	if c.DisableIdempotence {
		opts = append(opts, kgo.DisableIdempotentWrite())
	} else if c.DeliveryTimeout > 0 && c.TransactionalID == "" {
		opts = append(opts, kgo.AllowIdempotentProduceCancellation())
	}
	switch {
	case c.Linger == NoLinger:
		opts = append(opts, kgo.ProducerLinger(0))
	case c.Linger > 0:
		opts = append(opts, kgo.ProducerLinger(c.Linger))
	}
	if c.BatchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(c.BatchMaxBytes))
	}
	if c.MaxBufferedRecords > 0 {
		opts = append(opts, kgo.MaxBufferedRecords(c.MaxBufferedRecords))
	}
	if c.MaxBufferedBytes > 0 {
		opts = append(opts, kgo.MaxBufferedBytes(c.MaxBufferedBytes))
	}
	if c.DeliveryTimeout > 0 {
		opts = append(opts, kgo.RecordDeliveryTimeout(c.DeliveryTimeout))
	}
	if c.RequestTimeout > 0 {
		opts = append(opts, kgo.ProduceRequestTimeout(c.RequestTimeout))
	}
	if c.Retries > 0 {
		opts = append(opts, kgo.RecordRetries(c.Retries))
	}
	if c.RetryBackoff.Initial > 0 {
		opts = append(opts, kgo.RetryBackoffFn(c.RetryBackoff.fn()))
	}
	if c.MaxInFlight > 0 && c.DisableIdempotence {
		opts = append(opts, kgo.MaxProduceRequestsInflightPerBroker(c.MaxInFlight))
	}
	if c.MetadataMaxAge > 0 {
		opts = append(opts, kgo.MetadataMaxAge(c.MetadataMaxAge))
	}
	if c.MetadataMinAge > 0 {
		opts = append(opts, kgo.MetadataMinAge(c.MetadataMinAge))
	}
	if c.AutoCreateTopics {
		opts = append(opts, kgo.AllowAutoTopicCreation())
	}
	if c.TransactionalID != "" {
		opts = append(opts, kgo.TransactionalID(c.TransactionalID))
		if c.TransactionTimeout > 0 {
			opts = append(opts, kgo.TransactionTimeout(c.TransactionTimeout))
		}
	}
	if o := c.requestTimeoutOverhead(); o > 0 {
		opts = append(opts, kgo.RequestTimeoutOverhead(o))
	}
	return append(opts, c.securityOpts()...)
}

// requestTimeoutOverhead is the time franz-go gives a produce request
// beyond RequestTimeout before it calls the connection hung (its default
// is 10s). A record in a request on a hung connection cannot fail before
// that, so with DeliveryTimeout set kprod keeps Linger + RequestTimeout +
// overhead within it: every record then ends within DeliveryTimeout even
// when a broker stops answering without closing the connection (within
// Linger + RequestTimeout + 1s when that is longer: the overhead is at
// least 1s). Zero means franz-go's default.
func (c Config) requestTimeoutOverhead() time.Duration {
	if c.DeliveryTimeout <= 0 {
		return 0
	}
	o := c.DeliveryTimeout - c.lingerOrDefault() - c.requestTimeoutOrDefault()
	return min(max(o, minRequestTimeoutOverhead), defaultRequestTimeoutOverhead)
}

const (
	defaultRequestTimeoutOverhead = 10 * time.Second
	// minRequestTimeoutOverhead leaves a broker time to answer
	// requests that have no timeout of their own (metadata).
	minRequestTimeoutOverhead = time.Second
)

// lingerOrDefault and requestTimeoutOrDefault are the values franz-go
// uses for Linger and RequestTimeout.
func (c Config) lingerOrDefault() time.Duration {
	switch c.Linger {
	case 0:
		return 10 * time.Millisecond
	case NoLinger:
		return 0
	}
	return c.Linger
}

func (c Config) requestTimeoutOrDefault() time.Duration {
	if c.RequestTimeout == 0 {
		return 10 * time.Second
	}
	return c.RequestTimeout
}

// fn returns the backoff as a franz-go retry function of the try number
// (starting at 1).
func (b Backoff) fn() func(int) time.Duration {
	maxWait := b.Max
	if maxWait == 0 {
		maxWait = 10 * b.Initial
	}
	return func(tries int) time.Duration {
		return b.wait(tries, maxWait, rand.Float64())
	}
}

// wait computes try n's backoff for a jitter draw j in [0, 1): equal jitter,
// so the wait is never below half of the exponential step.
func (b Backoff) wait(tries int, maxWait time.Duration, j float64) time.Duration {
	d := b.Initial
	for i := 1; i < tries && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	half := d / 2
	return half + time.Duration(j*float64(d-half))
}

// String prints every setting, one per line, in field order. Fields that
// are not plain settings (Logger, Hooks, Opts) are summarised, so a
// printed config never carries credentials or closures.
func (c Config) String() string {
	var sb strings.Builder
	v := reflect.ValueOf(c)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		fv := v.Field(i)
		if f.Tag.Get("kprod") == "-" {
			switch fv.Kind() {
			case reflect.Slice:
				fmt.Fprintf(&sb, "%s: %d set\n", f.Name, fv.Len())
			default:
				fmt.Fprintf(&sb, "%s: %v\n", f.Name, map[bool]string{true: "unset", false: "set"}[fv.IsNil()])
			}
			continue
		}
		fmt.Fprintf(&sb, "%s: %v\n", f.Name, fv.Interface())
	}
	return sb.String()
}
