package dlq

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
)

// Replay sends the spooled records now (in spool order,
// Config.Replay.Chunk at a time) and removes each once Kafka acknowledged
// it; see the package Replay for what happens to records their
// destination refuses. It stops at the first chunk with a failure,
// keeping the failed records and all later ones in order, and returns
// that failure. The Producer also replays by itself while its breaker is
// closed, unless Config.Replay.Disable. After Close began it returns
// kafkaproducer.ErrClosed; Close waits for a Replay in progress (bounded
// by its ctx). A nil ctx means context.Background().
func (d *Producer) Replay(ctx context.Context) (spool.DrainStats, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if d.sp == nil {
		return spool.DrainStats{}, ErrNoSpool
	}
	d.replayMu.Lock()
	defer d.replayMu.Unlock()
	if d.replayClosed {
		return spool.DrainStats{}, kafkaproducer.ErrClosed
	}
	st, err := replay(ctx, d.sp, d.p, d.dlt, &d.cfg, d.clientID, d.setAside)
	d.replayed.Add(st.Sent)
	return st, err
}

// Replay drains s through p, as a Producer's automatic replay does, with
// the settings of cfg a Producer would use: Replay (Chunk, ToDeadLetter,
// KeepTimestamps), DeadLetterTopic, DeadLetterProducer, SpringHeaders,
// Observer and Now; the rest of cfg is ignored. Use it from tools (see
// cmd/kprod-spool); a Producer replays its own spool with Producer.Replay.
//
// Records bound for their own topic go through p; dead letters (records
// spooled for their dead-letter topic, every record with ToDeadLetter,
// and the dead letters replay makes) go through cfg.DeadLetterProducer,
// or p if it is nil, as a Producer sends them. Replay does not close
// either producer.
//
// Records are sent in spool order, Chunk at a time with SendBatch, and
// each is removed only after Kafka acknowledged it. What a destination
// refuses:
//
//   - for now (unreachable, timeout), or because the topic does not exist
//     yet or denies the write: the record and every later one are kept,
//     and Replay returns that failure; the next replay tries again.
//   - for good (too large, invalid), for a record spooled for its own
//     topic: it is dead-lettered, as the send path would have; if its
//     dead-letter topic is missing or denied it is kept, as above.
//   - for good, for a dead letter (or with ToDeadLetter): the record is
//     set aside in the spool's rejected/ directory.
//
// Every record set aside (rejected, or damaged frames moved to
// quarantine/) is reported to cfg.Observer.OnSetAside, and Replay then
// returns an error wrapping ErrSetAside, with the counts, once the rest
// of the spool was replayed.
//
// Order: the spool is one sequence and a chunk's records for one topic go
// out through one idempotent producer, so records for one partition
// (explicit, or by key while the partition count is unchanged) reach
// Kafka in spool order.
// franz-go fails a partition's later records together with a failed one,
// so the records kept after a failure are a suffix per partition and the
// next replay resumes that order.
func Replay(ctx context.Context, s *spool.Spool, p *kafkaproducer.Producer, cfg Config) (spool.DrainStats, error) {
	if err := cfg.withDefaults(); err != nil {
		return spool.DrainStats{}, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	clientID := p.Config().ClientID
	if clientID == "" {
		clientID = "kprod"
	}
	dl := cfg.DeadLetterProducer
	if dl == nil {
		dl = p
	}
	obs := cfg.Observer
	return replay(ctx, s, p, dl, &cfg, clientID, obs.OnSetAside)
}

// replay is Replay's body: records for their own topic go through p, dead
// letters through dl (p itself when no separate client is configured);
// setAside counts and reports a record set aside.
func replay(ctx context.Context, s *spool.Spool, p, dl *kafkaproducer.Producer, cfg *Config, clientID string, setAside func(topic, reason string)) (spool.DrainStats, error) {
	rc := cfg.Replay
	recs := make([]kafkaproducer.Record, 0, rc.Chunk)
	st, err := s.Drain(ctx, rc.Chunk, func(ctx context.Context, es []spool.Entry) []error {
		recs = recs[:0]
		for i := range es {
			recs = append(recs, replayRecord(&es[i], cfg))
		}
		rs := sendSplit(ctx, p, dl, recs, es)
		errs := make([]error, len(rs))
		var dead []kafkaproducer.Record
		var deadIdx []int
		for i, r := range rs {
			errs[i] = r.Err
			e := &es[i]
			switch {
			case r.Err == nil:
				cfg.Observer.OnReplayed(recs[i].Topic)
			case waitsForOperator(r.Err), !neverSendable(r.Err):
				// Kept: the topic is not there yet, or the
				// cluster is not; the next replay tries again.
			case recs[i].Topic == e.OriginalTopic:
				// Its own topic refuses it for good: dead-letter
				// it, as the send path would have.
				dead = append(dead, replayDeadLetter(e, r, cfg, clientID))
				deadIdx = append(deadIdx, i)
			default:
				// A dead letter its topic refuses for good.
				errs[i] = fmt.Errorf("%w: %w", spool.ErrReject, r.Err)
				setAside(e.OriginalTopic, SetAsideRejected)
			}
		}
		if len(dead) > 0 {
			for j, r := range dl.SendBatch(ctx, dead) {
				i := deadIdx[j]
				switch {
				case r.Err == nil:
					errs[i] = nil
					cfg.Observer.OnDeadLettered(es[i].OriginalTopic)
				case waitsForOperator(r.Err):
					errs[i] = fmt.Errorf("kprod: replay: dead-letter topic %q missing or denied; record kept: %w", dead[j].Topic, r.Err)
				case neverSendable(r.Err):
					errs[i] = fmt.Errorf("%w: %w (dead letter: %w)", spool.ErrReject, errs[i], r.Err)
					setAside(es[i].OriginalTopic, SetAsideRejected)
				default:
					errs[i] = fmt.Errorf("kprod: replay: dead letter to %q: %w", dead[j].Topic, r.Err)
				}
			}
		}
		return errs
	})
	for range st.Quarantined {
		setAside("", SetAsideQuarantined)
	}
	ss := s.Stats()
	cfg.Observer.OnSpoolSize(ss.Records, ss.Bytes)
	if err == nil && st.Rejected+st.Quarantined > 0 {
		err = fmt.Errorf("%w: %d rejected (in %s), %d quarantined (in %s)", ErrSetAside,
			st.Rejected, filepath.Join(s.Dir(), "rejected"), st.Quarantined, filepath.Join(s.Dir(), "quarantine"))
	}
	return st, err
}

// sendSplit sends recs (replayRecord of es) and returns their results in
// order: records for their own topic through p, dead letters (a topic
// other than the entry's original) through dl. With two clients the two
// parts go out at once, each in spool order.
func sendSplit(ctx context.Context, p, dl *kafkaproducer.Producer, recs []kafkaproducer.Record, es []spool.Entry) kafkaproducer.Results {
	if p == dl {
		return p.SendBatch(ctx, recs)
	}
	var own, dead []int
	for i := range recs {
		if recs[i].Topic == es[i].OriginalTopic {
			own = append(own, i)
		} else {
			dead = append(dead, i)
		}
	}
	out := make(kafkaproducer.Results, len(recs))
	send := func(via *kafkaproducer.Producer, idx []int) {
		part := make([]kafkaproducer.Record, len(idx))
		for j, i := range idx {
			part[j] = recs[i]
		}
		for j, r := range via.SendBatch(ctx, part) {
			out[idx[j]] = r
		}
	}
	switch {
	case len(dead) == 0:
		return p.SendBatch(ctx, recs)
	case len(own) == 0:
		return dl.SendBatch(ctx, recs)
	}
	done := make(chan struct{})
	go func() { // owned here: waited for below
		defer close(done)
		send(dl, dead)
	}()
	send(p, own)
	<-done
	return out
}

// replayRecord is the record replay sends for e.
func replayRecord(e *spool.Entry, cfg *Config) kafkaproducer.Record {
	topic := e.Topic
	if cfg.Replay.ToDeadLetter && e.Topic == e.OriginalTopic {
		topic = deadLetterTopic(cfg.DeadLetterTopic, e.Topic)
	}
	r := kafkaproducer.Record{
		Topic:        topic,
		Key:          e.Key,
		Value:        e.Value,
		Headers:      e.Headers,
		Partition:    e.Partition,
		PartitionSet: e.PartitionSet,
	}
	if cfg.Replay.KeepTimestamps {
		r.Timestamp = e.Timestamp
	} else if !e.Timestamp.IsZero() && !hasHeader(e.Headers, HeaderOriginalTimestamp) {
		r.Headers = append(e.Headers[:len(e.Headers):len(e.Headers)], kafkaproducer.Header{
			Key: HeaderOriginalTimestamp, Value: strconv.AppendInt(nil, e.Timestamp.UnixMilli(), 10),
		})
	}
	return r
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

// replayDeadLetter is the dead letter of a spooled record that its topic
// refused on replay: the entry's record (as spooled, without the replay's
// own headers) with the same dead-letter headers as the send path.
func replayDeadLetter(e *spool.Entry, r kafkaproducer.Result, cfg *Config, clientID string) kafkaproducer.Record {
	rec := kafkaproducer.Record{Topic: e.OriginalTopic, Key: e.Key, Value: e.Value, Headers: e.Headers}
	return buildDeadLetter(rec, failure{
		topic:     e.OriginalTopic,
		partition: r.Partition,
		class:     kafkaproducer.Classify(r.Err),
		cause:     r.Err,
		attempts:  e.Attempts + 1,
		timestamp: e.Timestamp,
		failedAt:  cfg.Now(),
	}, dlHeaders{pattern: cfg.DeadLetterTopic, clientID: clientID, spring: cfg.SpringHeaders})
}
