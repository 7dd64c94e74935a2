package dlt

import (
	"encoding/binary"
	"strconv"
	"strings"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a replay adds. Both start with "kprod-dlt-", so a later replay
// strips and rewrites them like every other failure header.
const (
	// HeaderReplayCount: how many times the record was replayed from a
	// dead-letter topic, decimal ASCII (1 on the first replay).
	HeaderReplayCount = "kprod-dlt-replay-count"
	// HeaderReplaySource: where the replayed copy came from,
	// "<dead-letter topic>/<partition>/<offset>". A resumed replay looks
	// for it on the destination to avoid sending a record twice.
	HeaderReplaySource = "kprod-dlt-replay-source"
	// PreviousPrefix prefixes the failure headers of an earlier failure
	// on a dead letter that failed again on replay: kprod-dlt-error-class
	// of the earlier failure becomes kprod-dlt-previous-error-class.
	// Each earlier failure is one run of such headers starting with
	// kprod-dlt-previous-original-topic, oldest first.
	PreviousPrefix = "kprod-dlt-previous-"
)

const (
	kprodPrefix  = "kprod-dlt-"
	springPrefix = "kafka_dlt-"
)

// Failure is one failure of a record, as its dead-letter headers tell it.
type Failure struct {
	Topic     string    // the topic the record was sent to
	Partition int32     // -1 when it never got one
	Class     string    // kafkaproducer.Class name; "" when not recorded (Spring-only dead letters)
	Error     string    // the error message
	FailedAt  time.Time // zero when not recorded
	Attempts  int       // -1 when not recorded
	ClientID  string
}

// Spring is what Spring Kafka's kafka_dlt-* headers say, decoded.
type Spring struct {
	OriginalTopic     string
	OriginalPartition int32 // -1 when never assigned
	OriginalOffset    int64 // -1 when never written
	OriginalTimestamp time.Time
	TimestampType     string
	ExceptionFQCN     string
	CauseFQCN         string
	Message           string
}

// DeadLetter is one record of a dead-letter topic, its headers decoded.
type DeadLetter struct {
	// Where it is on the dead-letter topic.
	Topic     string
	Partition int32
	Offset    int64
	Timestamp time.Time // when it was written to the dead-letter topic

	Key     []byte
	Value   []byte
	Headers []kafkaproducer.Header // every header, as written

	RecordID string // kprod-record-id; "" when absent
	// Failure is the latest failure: kprod's headers, else Spring's.
	Failure Failure
	// Previous are earlier failures (the record failed again on
	// replay), oldest first.
	Previous []Failure
	// OriginalTimestamp is the record's own time
	// (kprod-original-timestamp, else kafka_dlt-original-timestamp);
	// zero when unknown.
	OriginalTimestamp time.Time
	// ReplayCount is kprod-dlt-replay-count: how often it was replayed
	// before this dead letter was written.
	ReplayCount int
	// Spring is set when the record carries Spring's headers.
	Spring *Spring
}

// Causes returns every failure, oldest first, the latest last.
func (d DeadLetter) Causes() []Failure {
	return append(append([]Failure(nil), d.Previous...), d.Failure)
}

// Decode reads a dead letter from a consumed record. It never fails:
// headers it cannot parse are left at their zero value (every header
// stays in Headers).
func Decode(r *kgo.Record) DeadLetter {
	d := DeadLetter{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value, Headers: r.Headers,
		Failure: Failure{Partition: -1, Attempts: -1},
	}
	var sp Spring
	hasSpring := false
	var prev *Failure
	for _, h := range r.Headers {
		v := string(h.Value)
		switch {
		case h.Key == dlq.DefaultRecordIDHeader:
			d.RecordID = v
		case h.Key == dlq.HeaderOriginalTimestamp:
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.OriginalTimestamp = time.UnixMilli(ms)
			}
		case h.Key == HeaderReplayCount:
			d.ReplayCount, _ = strconv.Atoi(v)
		case strings.HasPrefix(h.Key, PreviousPrefix):
			name := kprodPrefix + strings.TrimPrefix(h.Key, PreviousPrefix)
			if name == dlq.HeaderOriginalTopic || prev == nil {
				d.Previous = append(d.Previous, Failure{Partition: -1, Attempts: -1})
				prev = &d.Previous[len(d.Previous)-1]
			}
			setFailure(prev, name, v)
		case strings.HasPrefix(h.Key, kprodPrefix):
			setFailure(&d.Failure, h.Key, v)
		case strings.HasPrefix(h.Key, springPrefix):
			hasSpring = true
			setSpring(&sp, h.Key, h.Value)
		}
	}
	if hasSpring {
		d.Spring = &sp
		if d.Failure.Topic == "" {
			d.Failure.Topic = sp.OriginalTopic
			d.Failure.Partition = sp.OriginalPartition
		}
		if d.Failure.Error == "" {
			d.Failure.Error = sp.Message
		}
		if d.OriginalTimestamp.IsZero() {
			d.OriginalTimestamp = sp.OriginalTimestamp
		}
	}
	return d
}

func setFailure(f *Failure, key, v string) {
	switch key {
	case dlq.HeaderOriginalTopic:
		f.Topic = v
	case dlq.HeaderOriginalPartition:
		if n, err := strconv.ParseInt(v, 10, 32); err == nil {
			f.Partition = int32(n)
		}
	case dlq.HeaderErrorClass:
		f.Class = v
	case dlq.HeaderError:
		f.Error = v
	case dlq.HeaderFailedAt:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			f.FailedAt = t
		}
	case dlq.HeaderAttempts:
		if n, err := strconv.Atoi(v); err == nil {
			f.Attempts = n
		}
	case dlq.HeaderClientID:
		f.ClientID = v
	}
}

func setSpring(s *Spring, key string, v []byte) {
	switch key {
	case dlq.SpringOriginalTopic:
		s.OriginalTopic = string(v)
	case dlq.SpringOriginalPartition:
		s.OriginalPartition = -1
		if len(v) == 4 {
			s.OriginalPartition = int32(binary.BigEndian.Uint32(v))
		}
	case dlq.SpringOriginalOffset:
		s.OriginalOffset = -1
		if len(v) == 8 {
			s.OriginalOffset = int64(binary.BigEndian.Uint64(v))
		}
	case dlq.SpringOriginalTimestamp:
		if len(v) == 8 {
			s.OriginalTimestamp = time.UnixMilli(int64(binary.BigEndian.Uint64(v)))
		}
	case dlq.SpringOriginalTimestampType:
		s.TimestampType = string(v)
	case dlq.SpringExceptionFQCN:
		s.ExceptionFQCN = string(v)
	case dlq.SpringExceptionCauseFQCN:
		s.CauseFQCN = string(v)
	case dlq.SpringExceptionMessage:
		s.Message = string(v)
	}
}

// failureHeaders encodes f as kprod's failure headers, each name
// prefixed by prefix ("kprod-dlt-" or PreviousPrefix).
func failureHeaders(f Failure, prefix string) []kafkaproducer.Header {
	name := func(h string) string { return prefix + strings.TrimPrefix(h, kprodPrefix) }
	hs := []kafkaproducer.Header{{Key: name(dlq.HeaderOriginalTopic), Value: []byte(f.Topic)}}
	if f.Partition >= 0 {
		hs = append(hs, kafkaproducer.Header{Key: name(dlq.HeaderOriginalPartition), Value: strconv.AppendInt(nil, int64(f.Partition), 10)})
	}
	hs = append(hs,
		kafkaproducer.Header{Key: name(dlq.HeaderErrorClass), Value: []byte(f.Class)},
		kafkaproducer.Header{Key: name(dlq.HeaderError), Value: []byte(f.Error)},
	)
	if !f.FailedAt.IsZero() {
		hs = append(hs, kafkaproducer.Header{Key: name(dlq.HeaderFailedAt), Value: []byte(f.FailedAt.UTC().Format(time.RFC3339Nano))})
	}
	if f.Attempts >= 0 {
		hs = append(hs, kafkaproducer.Header{Key: name(dlq.HeaderAttempts), Value: strconv.AppendInt(nil, int64(f.Attempts), 10)})
	}
	if f.ClientID != "" {
		hs = append(hs, kafkaproducer.Header{Key: name(dlq.HeaderClientID), Value: []byte(f.ClientID)})
	}
	return hs
}

// isFailureHeader reports a header that describes a failure or a replay,
// stripped from replayed records.
func isFailureHeader(key string) bool {
	return strings.HasPrefix(key, kprodPrefix) || strings.HasPrefix(key, springPrefix)
}
