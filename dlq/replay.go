package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kerr"
)

// ReplayOptions configures Replay.
type ReplayOptions struct {
	// Chunk is how many records go per round trip. Zero means 1000.
	Chunk int
	// ToDeadLetter sends records spooled for their original topic to
	// their dead-letter topic instead (named by DeadLetterTopic).
	ToDeadLetter bool
	// DeadLetterTopic is the pattern ("{topic}" replaced). Zero means
	// "{topic}.DLT".
	DeadLetterTopic string
	// Observer receives OnReplayed and OnSpoolSize; nil means none.
	Observer Observer
	// KeepTimestamps sends records with their original timestamp. Only
	// safe when p's DeliveryTimeout is zero or longer than the oldest
	// record's age: franz-go measures the delivery timeout from the
	// record's timestamp and fails older records at once. By default
	// replayed records are stamped with the replay time and carry the
	// original in the kprod-original-timestamp header.
	KeepTimestamps bool
	// ClientID, SpringHeaders: as Config's, for the dead letters of
	// records their topic refuses on replay (ClientID zero means "kprod").
	ClientID      string
	SpringHeaders bool
	// Now is the clock for those dead letters' failure time. Zero means
	// time.Now.
	Now func() time.Time
}

// Replay drains s through p: records are sent in spool order, Chunk at a
// time with SendBatch, and each is removed only after Kafka acknowledged
// it. On the first chunk with a failure it keeps the failed records and
// everything after them and returns the failure. Use it from tools (see
// cmd/kprod-spool) or with a Producer's own spool via Producer.Replay.
//
// Order: the spool is one sequence and a chunk goes out through one
// idempotent producer, so records for one partition (explicit, or by key
// while the partition count is unchanged) reach Kafka in spool order.
// franz-go fails a partition's later records together with a failed one,
// so the records kept after a failure are a suffix per partition and the
// next replay resumes that order.
func Replay(ctx context.Context, s *spool.Spool, p *kafkaproducer.Producer, opts ReplayOptions) (spool.DrainStats, error) {
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.DeadLetterTopic == "" {
		opts.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if opts.ClientID == "" {
		opts.ClientID = "kprod"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if ctx == nil {
		ctx = context.Background()
	}
	recs := make([]kafkaproducer.Record, 0, opts.Chunk)
	st, err := s.Drain(ctx, opts.Chunk, func(ctx context.Context, es []spool.Entry) []error {
		recs = recs[:0]
		for i := range es {
			e := &es[i]
			topic := e.Topic
			if opts.ToDeadLetter && e.Topic == e.OriginalTopic {
				topic = deadLetterTopic(opts.DeadLetterTopic, e.Topic)
			}
			r := kafkaproducer.Record{
				Topic:        topic,
				Key:          e.Key,
				Value:        e.Value,
				Headers:      e.Headers,
				Partition:    e.Partition,
				PartitionSet: e.PartitionSet,
			}
			if opts.KeepTimestamps {
				r.Timestamp = e.Timestamp
			} else if !e.Timestamp.IsZero() && !hasHeader(e.Headers, HeaderOriginalTimestamp) {
				r.Headers = append(e.Headers[:len(e.Headers):len(e.Headers)], kafkaproducer.Header{
					Key: HeaderOriginalTimestamp, Value: strconv.AppendInt(nil, e.Timestamp.UnixMilli(), 10),
				})
			}
			recs = append(recs, r)
		}
		rs := p.SendBatch(ctx, recs)
		errs := make([]error, len(rs))
		var dead []kafkaproducer.Record
		var deadIdx []int
		for i, r := range rs {
			errs[i] = r.Err
			if r.Err == nil {
				opts.Observer.OnReplayed(recs[i].Topic)
				continue
			}
			if !neverSendable(r.Err) {
				continue
			}
			// A record that can never be written (too large, topic
			// gone, denied) must not block the spool: dead-letter it,
			// or set it aside (spool.ErrReject). A missing or denied
			// dead-letter topic is the exception: the operator creates
			// it or grants the ACL and the record waits in the spool
			// (see docs/deadletter.md).
			if es[i].Topic == es[i].OriginalTopic && !opts.ToDeadLetter {
				dead = append(dead, replayDeadLetter(&es[i], r, opts))
				deadIdx = append(deadIdx, i)
				continue
			}
			if es[i].Topic != es[i].OriginalTopic && waitsForOperator(r.Err) {
				continue // a dead letter whose topic is missing: kept
			}
			errs[i] = fmt.Errorf("%w: %w", spool.ErrReject, r.Err)
		}
		if len(dead) > 0 {
			for j, r := range p.SendBatch(ctx, dead) {
				i := deadIdx[j]
				switch {
				case r.Err == nil:
					errs[i] = nil
					opts.Observer.OnDeadLettered(es[i].OriginalTopic)
				case waitsForOperator(r.Err):
					errs[i] = fmt.Errorf("kprod: replay: dead-letter topic %q missing or denied; record kept: %w", dead[j].Topic, r.Err)
				case neverSendable(r.Err):
					errs[i] = fmt.Errorf("%w: %w (dead letter: %w)", spool.ErrReject, errs[i], r.Err)
				}
			}
		}
		return errs
	})
	ss := s.Stats()
	opts.Observer.OnSpoolSize(ss.Records, ss.Bytes)
	return st, err
}

func hasHeader(hs []kafkaproducer.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// neverSendable reports whether sending the record again cannot succeed
// without an operator: the record's or the topic's fault.
func neverSendable(err error) bool {
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassBadInput, kafkaproducer.ClassAuthorization:
		return true
	}
	return false
}

// waitsForOperator reports a dead-letter topic refusing a record for a
// reason an operator fixes, not the record: the topic does not exist, or
// an ACL or the credentials deny the write. The record is spooled (or
// kept in the spool) for the dead-letter topic, never dropped.
func waitsForOperator(err error) bool {
	return errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) ||
		kafkaproducer.Classify(err) == kafkaproducer.ClassAuthorization
}

// replayDeadLetter is the dead letter of a spooled record that its topic
// refused on replay: the entry's record (as spooled, without the replay's
// own headers) with the same dead-letter headers as the send path.
func replayDeadLetter(e *spool.Entry, r kafkaproducer.Result, opts ReplayOptions) kafkaproducer.Record {
	rec := kafkaproducer.Record{Topic: e.OriginalTopic, Key: e.Key, Value: e.Value, Headers: e.Headers}
	return buildDeadLetter(rec, failure{
		topic:     e.OriginalTopic,
		partition: r.Partition,
		class:     kafkaproducer.Classify(r.Err),
		cause:     r.Err,
		attempts:  e.Attempts + 1,
		timestamp: e.Timestamp,
		failedAt:  opts.Now(),
	}, dlHeaders{pattern: opts.DeadLetterTopic, clientID: opts.ClientID, spring: opts.SpringHeaders})
}
