package presets

import (
	"fmt"
	"strings"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
)

// Names of the presets, for ByName and command-line flags.
const (
	NameReliable       = "reliable"
	NameHighThroughput = "high-throughput"
	NameLowLatency     = "low-latency"
)

// Reliable is for records that must not be lost or duplicated and whose
// latency can take a few milliseconds: orders, payments, ledger events.
func Reliable() kafkaproducer.Config {
	return kafkaproducer.Config{
		// Every in-sync replica acknowledges, and the broker drops the
		// duplicates that retries would otherwise create.
		Acks: kafkaproducer.AcksAll,
		// Snappy: cheap on CPU, understood by every Kafka client.
		Compression: kafkaproducer.CompressionSnappy,
		// A short linger fills batches under load without making a
		// lone record wait noticeably.
		Linger: 5 * time.Millisecond,
		// Kafka's default max.message.bytes.
		BatchMaxBytes: 1_000_000,
		// Bounded memory: 100k records or 64 MiB, whichever first;
		// past that, Send blocks and TrySend fails fast.
		MaxBufferedRecords: 100_000,
		MaxBufferedBytes:   64 << 20,
		// Kafka's delivery.timeout.ms default: every record reaches a
		// terminal state within two minutes, even through an outage.
		DeliveryTimeout: 2 * time.Minute,
		// Kafka's request.timeout.ms default.
		RequestTimeout: 30 * time.Second,
		// Unlimited retries inside DeliveryTimeout, as in the Java
		// client; idempotence makes them safe.
		Retries: 0,
		// 100ms doubling to 1s with jitter: fast recovery from a
		// leader change, no thundering herd in an outage.
		RetryBackoff: kafkaproducer.Backoff{Initial: 100 * time.Millisecond, Max: time.Second},
		// Five in flight is the most idempotence allows while keeping
		// order.
		MaxInFlight: 5,
		// Java's murmur2 placement, so keyed records land where Java
		// services put them.
		Partitioner: kafkaproducer.PartitionerJava,
		// Notice leader changes within a second; refresh otherwise
		// every 5 minutes (Kafka's metadata.max.age.ms).
		MetadataMaxAge: 5 * time.Minute,
		MetadataMinAge: time.Second,
		// No broker-side auto-creation: a topic created that way gets
		// the broker's defaults (often one partition and replication
		// factor 1 on a dev broker, whatever min.insync.replicas),
		// which quietly undoes what acks=all promises, and a typo in a
		// topic name becomes a new topic. Provision topics with package
		// topics; a missing one fails in under a second, naming both
		// fixes.
		AutoCreateTopics: false,
	}
}

// HighThroughput is for bulk pipelines: the most records per second and
// the least CPU per record, with the same no-loss guarantees.
func HighThroughput() kafkaproducer.Config {
	c := Reliable()
	// LZ4 compresses at several hundred MB/s per core and shrinks
	// requests, which is what bounds a busy producer.
	c.Compression = kafkaproducer.CompressionLZ4
	// Under load batches fill from the backlog, not from lingering:
	// on the cross-client benchmark (docs/BENCHMARKS.md) 5ms beat 20ms
	// on records/s and CPU per record, so keep Reliable's 5ms.
	c.Linger = 5 * time.Millisecond
	// 100k records (Reliable's) or 256 MiB. A deeper record buffer
	// was not faster on the cross-client benchmark (1M against 100k:
	// within noise, 100k slightly ahead in two interleaved comparisons
	// of 4 and 6 rounds), and holds ten times more in memory.
	c.MaxBufferedRecords = 100_000
	c.MaxBufferedBytes = 256 << 20
	// AutoCreateTopics stays off, as in Reliable: bulk pipelines want
	// their partition counts chosen, not the broker's default.
	return c
}

// LowLatency is for request/response paths that wait on each send: no
// linger, no compression, fast retries and fast leader-change recovery.
func LowLatency() kafkaproducer.Config {
	c := Reliable()
	// Send as soon as a record arrives.
	c.Linger = kafkaproducer.NoLinger
	// Compression costs CPU time on the critical path and saves
	// little on small batches.
	c.Compression = kafkaproducer.CompressionNone
	// Small batches: a sequential sender never fills a big one.
	c.BatchMaxBytes = 64 << 10
	// Fail fast instead of queueing: a caller waiting on a reply
	// would rather get an error than a late success.
	c.MaxBufferedRecords = 10_000
	c.MaxBufferedBytes = 16 << 20
	c.DeliveryTimeout = 30 * time.Second
	c.RequestTimeout = 10 * time.Second
	// Retry quickly, and refresh metadata at most every 250ms so a
	// leader change is noticed in well under franz-go's 5s default.
	c.RetryBackoff = kafkaproducer.Backoff{Initial: 10 * time.Millisecond, Max: 250 * time.Millisecond}
	c.MetadataMinAge = 250 * time.Millisecond
	// AutoCreateTopics stays off, as in Reliable: a request path is
	// better served by a fast, named error than by a topic created
	// with whatever the broker defaults to.
	return c
}

// Names lists the presets ByName accepts, sorted.
func Names() []string {
	return []string{NameHighThroughput, NameLowLatency, NameReliable}
}

// ByName returns the preset with the given name ("reliable",
// "high-throughput", "low-latency").
func ByName(name string) (kafkaproducer.Config, error) {
	switch name {
	case NameReliable:
		return Reliable(), nil
	case NameHighThroughput:
		return HighThroughput(), nil
	case NameLowLatency:
		return LowLatency(), nil
	}
	return kafkaproducer.Config{}, fmt.Errorf("kprod: unknown preset %q: use one of %s", name, strings.Join(Names(), ", "))
}
