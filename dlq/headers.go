package dlq

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/internal/errname"
	"github.com/kprod/kprod/kafkaproducer"
)

// kprod's dead-letter headers. Every value is UTF-8 text, so kcat and any
// client can print them. See docs/deadletter.md.
const (
	// HeaderOriginalTopic: the topic the application sent the record to.
	HeaderOriginalTopic = "kprod-dlt-original-topic"
	// HeaderOriginalPartition: the partition it was assigned, in decimal;
	// absent when it never got one.
	HeaderOriginalPartition = "kprod-dlt-original-partition"
	// HeaderErrorClass: kafkaproducer.Class name ("bad_input", "timeout", ...).
	HeaderErrorClass = "kprod-dlt-error-class"
	// HeaderError: the error message, at most 1024 bytes.
	HeaderError = "kprod-dlt-error"
	// HeaderFailedAt: failure time, RFC 3339 with nanoseconds, UTC.
	HeaderFailedAt = "kprod-dlt-failed-at"
	// HeaderAttempts: how many times kprod sent the record before giving
	// up, in decimal (franz-go's internal retries are one attempt; 0
	// means it never reached Kafka: open breaker, refused input).
	HeaderAttempts = "kprod-dlt-attempts"
	// HeaderClientID: the producer's client ID.
	HeaderClientID = "kprod-dlt-client-id"
	// HeaderOriginalTimestamp: the record's own timestamp (Unix ms,
	// decimal) on dead letters and replayed records, which Kafka stamps
	// with the time they are sent (see docs/deadletter.md for why).
	HeaderOriginalTimestamp = "kprod-original-timestamp"
)

// Spring Kafka's dead-letter headers (KafkaHeaders.DLT_*, as written by
// DeadLetterPublishingRecoverer), added with Config.SpringHeaders. Binary
// values are big-endian, as Java's ByteBuffer writes them.
const (
	SpringOriginalTopic         = "kafka_dlt-original-topic"          // UTF-8
	SpringOriginalPartition     = "kafka_dlt-original-partition"      // 4-byte int; -1 if never assigned
	SpringOriginalOffset        = "kafka_dlt-original-offset"         // 8-byte long; -1: the record was never written
	SpringOriginalTimestamp     = "kafka_dlt-original-timestamp"      // 8-byte long, Unix ms
	SpringOriginalTimestampType = "kafka_dlt-original-timestamp-type" // "CreateTime"
	SpringExceptionFQCN         = "kafka_dlt-exception-fqcn"          // Go type of the error, "pkgpath.Type"
	SpringExceptionCauseFQCN    = "kafka_dlt-exception-cause-fqcn"    // Go type of the innermost cause
	SpringExceptionMessage      = "kafka_dlt-exception-message"       // UTF-8
)

const maxErrHeader = 1024

// idGen makes record IDs: 8 random bytes per producer, then a counter.
// Unique within a producer by construction and across producers with
// overwhelming probability; cheap enough for every record.
type idGen struct {
	prefix [8]byte
	n      atomic.Uint64
}

func newIDGen() *idGen {
	g := &idGen{}
	_, _ = rand.Read(g.prefix[:])
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	g.n.Store(binary.BigEndian.Uint64(seed[:]) >> 16) // room before wrapping
	return g
}

func (g *idGen) next() [16]byte {
	var id [16]byte
	copy(id[:8], g.prefix[:])
	binary.BigEndian.PutUint64(id[8:], g.n.Add(1))
	return id
}

// ParseRecordID decodes a record-ID header value (32 hex digits).
func ParseRecordID(v []byte) ([16]byte, error) {
	var id [16]byte
	if len(v) != 32 {
		return id, errors.New("kprod: record id: want 32 hex digits")
	}
	if _, err := hex.Decode(id[:], v); err != nil {
		return id, errors.New("kprod: record id: not hex")
	}
	return id, nil
}

// RecordID returns rec's record ID from the header named name, or "".
func RecordID(rec kafkaproducer.Record, name string) string {
	for i := len(rec.Headers) - 1; i >= 0; i-- {
		if rec.Headers[i].Key == name {
			return string(rec.Headers[i].Value)
		}
	}
	return ""
}

// withID returns rec carrying a record-ID header, and the ID. With a zero
// id it reuses the ID rec already carries or makes a new one; with a
// given id it adds that ID unless rec already carries it. The caller's
// header slice is never modified.
func (d *Producer) withID(rec kafkaproducer.Record, id [16]byte) (kafkaproducer.Record, [16]byte) {
	if v := RecordID(rec, d.cfg.RecordIDHeader); v != "" {
		if have, err := ParseRecordID([]byte(v)); err == nil && (id == [16]byte{} || have == id) {
			return rec, have
		}
	}
	if id == ([16]byte{}) {
		id = d.ids.next()
	}
	if len(rec.Headers) == 0 {
		// The common record: the header and its value in one
		// allocation.
		ih := new(idHeader)
		hex.Encode(ih.hex[:], id[:])
		ih.one[0] = kafkaproducer.Header{Key: d.cfg.RecordIDHeader, Value: ih.hex[:]}
		rec.Headers = ih.one[:]
		return rec, id
	}
	val := make([]byte, 32)
	hex.Encode(val, id[:])
	hs := make([]kafkaproducer.Header, len(rec.Headers), len(rec.Headers)+1)
	copy(hs, rec.Headers)
	rec.Headers = append(hs, kafkaproducer.Header{Key: d.cfg.RecordIDHeader, Value: val})
	return rec, id
}

// idHeader holds a record-ID header's value and, for a record with no
// other headers, the header slice itself.
type idHeader struct {
	one [1]kafkaproducer.Header
	hex [32]byte
}

// failure is what a dead letter's headers say about why the record left
// its topic.
type failure struct {
	topic     string // the original topic
	partition int32  // -1 when the record never got one
	class     kafkaproducer.Class
	cause     error
	attempts  uint32
	timestamp time.Time // the record's own timestamp; zero if unknown
	failedAt  time.Time
}

// dlHeaders is how dead letters are named and labelled.
type dlHeaders struct {
	pattern  string // DeadLetterTopic pattern, "{topic}" replaced
	clientID string
	spring   bool
}

// buildDeadLetter makes the dead-letter copy of rec: same key, value and
// headers, plus the dead-letter headers for f. Both the send path and
// Replay use it, so every dead letter carries the same headers.
func buildDeadLetter(rec kafkaproducer.Record, f failure, o dlHeaders) kafkaproducer.Record {
	msg := ""
	if f.cause != nil {
		msg = f.cause.Error()
	}
	if len(msg) > maxErrHeader {
		msg = msg[:maxErrHeader]
	}
	extra := 8
	if o.spring {
		extra += 8
	}
	hs := make([]kafkaproducer.Header, len(rec.Headers), len(rec.Headers)+extra)
	copy(hs, rec.Headers)
	add := func(k string, v []byte) { hs = append(hs, kafkaproducer.Header{Key: k, Value: v}) }
	add(HeaderOriginalTopic, []byte(f.topic))
	if f.partition >= 0 {
		add(HeaderOriginalPartition, strconv.AppendInt(nil, int64(f.partition), 10))
	}
	add(HeaderErrorClass, []byte(f.class.String()))
	add(HeaderError, []byte(msg))
	add(HeaderFailedAt, []byte(f.failedAt.UTC().Format(time.RFC3339Nano)))
	add(HeaderAttempts, strconv.AppendUint(nil, uint64(f.attempts), 10))
	add(HeaderClientID, []byte(o.clientID))
	if !f.timestamp.IsZero() && !hasHeader(rec.Headers, HeaderOriginalTimestamp) {
		add(HeaderOriginalTimestamp, strconv.AppendInt(nil, f.timestamp.UnixMilli(), 10))
	}
	if o.spring {
		ts := f.timestamp
		if ts.IsZero() {
			ts = f.failedAt
		}
		add(SpringOriginalTopic, []byte(f.topic))
		add(SpringOriginalPartition, binary.BigEndian.AppendUint32(nil, uint32(f.partition)))
		add(SpringOriginalOffset, binary.BigEndian.AppendUint64(nil, ^uint64(0))) // -1: never written
		add(SpringOriginalTimestamp, binary.BigEndian.AppendUint64(nil, uint64(ts.UnixMilli())))
		add(SpringOriginalTimestampType, []byte("CreateTime"))
		add(SpringExceptionFQCN, []byte(errname.TypeName(f.cause)))
		add(SpringExceptionCauseFQCN, []byte(errname.TypeName(errname.Innermost(f.cause))))
		add(SpringExceptionMessage, []byte(msg))
	}
	// No Timestamp: franz-go measures the delivery timeout from a
	// record's timestamp, so a dead letter stamped with the original
	// time (often older than DeliveryTimeout by now) would time out
	// before it is sent. The original time is in the headers.
	return kafkaproducer.Record{
		Topic:   deadLetterTopic(o.pattern, f.topic),
		Key:     rec.Key,
		Value:   rec.Value,
		Headers: hs,
	}
}

// deadLetterRecord builds the dead-letter copy of a failed record.
func (d *Producer) deadLetterRecord(it *item, failedAt time.Time) kafkaproducer.Record {
	return buildDeadLetter(it.rec, failure{
		topic:     it.rec.Topic,
		partition: it.partition,
		class:     it.class,
		cause:     it.cause,
		attempts:  it.attempts,
		timestamp: it.rec.Timestamp,
		failedAt:  failedAt,
	}, dlHeaders{pattern: d.cfg.DeadLetterTopic, clientID: d.clientID, spring: d.cfg.SpringHeaders})
}

func deadLetterTopic(pattern, topic string) string {
	return strings.ReplaceAll(pattern, "{topic}", topic)
}
