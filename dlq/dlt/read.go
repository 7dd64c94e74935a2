package dlt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultIdle is how long a read waits for records it knows exist
// before it stops (ReplayConfig.Idle): the end offsets of a
// transactional topic count its markers, which are never returned.
const DefaultIdle = 10 * time.Second

// clientOpts are franz-go options with cfg's connection settings (brokers,
// TLS, SASL, client ID) for the clients dlt reads and administers with:
// never transactional, reading with read_committed isolation.
func clientOpts(cfg kafkaproducer.Config) ([]kgo.Opt, error) {
	cfg.TransactionalID = ""
	opts, err := cfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	return append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted())), nil
}

// bounds returns, per partition of topic, the first offset to read and
// the end to read to (the last stable offset as of now, so records
// written after the call are left for a later run).
func bounds(ctx context.Context, adm *kadm.Client, topic string) (starts, ends map[int32]int64, err error) {
	so, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = so.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, nil, fmt.Errorf("topic %q: %w", topic, ErrNoTopic)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets of %q: %w", topic, err)
	}
	eo, err := adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = eo.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets of %q: %w", topic, err)
	}
	if len(eo[topic]) == 0 {
		return nil, nil, fmt.Errorf("topic %q: %w", topic, ErrNoTopic)
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	so.Each(func(o kadm.ListedOffset) { starts[o.Partition] = o.Offset })
	eo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return starts, ends, nil
}

// ErrNoTopic is returned when the dead-letter topic does not exist.
var ErrNoTopic = errors.New("kprod: topic does not exist")

// reader reads a topic's partitions from given offsets up to given ends,
// in fetch order (per partition in offset order).
type reader struct {
	cl    *kgo.Client
	topic string
	next  map[int32]int64 // next offset expected, per partition not yet done
	end   map[int32]int64
	idle  time.Duration
	idled bool // stopped because nothing came for idle
}

func newReader(opts []kgo.Opt, topic string, starts, ends map[int32]int64, idle time.Duration) (*reader, error) {
	r := &reader{topic: topic, next: map[int32]int64{}, end: ends, idle: idle}
	if r.idle <= 0 {
		r.idle = DefaultIdle
	}
	ps := map[int32]kgo.Offset{}
	for p, s := range starts {
		if s < ends[p] {
			r.next[p] = s
			ps[p] = kgo.NewOffset().At(s)
		}
	}
	if len(ps) == 0 {
		return r, nil
	}
	cl, err := kgo.NewClient(append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: ps}))...)
	if err != nil {
		return nil, err
	}
	r.cl = cl
	return r, nil
}

func (r *reader) close() {
	if r.cl != nil {
		r.cl.Close()
	}
}

func (r *reader) done() bool { return len(r.next) == 0 || r.idled }

// poll returns the next records (none once done). Records at or past a
// partition's end are dropped and the partition is no longer read.
func (r *reader) poll(ctx context.Context) ([]*kgo.Record, error) {
	for !r.done() {
		pctx, cancel := context.WithTimeout(ctx, r.idle)
		fs := r.cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var out []*kgo.Record
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && ferr == nil {
				ferr = fmt.Errorf("read %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		var finished map[string][]int32
		fs.EachRecord(func(rec *kgo.Record) {
			if _, ok := r.next[rec.Partition]; !ok || rec.Offset >= r.end[rec.Partition] {
				return
			}
			out = append(out, rec)
			r.next[rec.Partition] = rec.Offset + 1
			if rec.Offset+1 >= r.end[rec.Partition] {
				delete(r.next, rec.Partition)
				if finished == nil {
					finished = map[string][]int32{}
				}
				finished[r.topic] = append(finished[r.topic], rec.Partition)
			}
		})
		if finished != nil {
			r.cl.RemoveConsumePartitions(finished)
		}
		if len(out) > 0 {
			return out, nil
		}
		if fs.NumRecords() == 0 {
			r.idled = true
		}
	}
	return nil, nil
}

// Scan reads topic with read_committed isolation from the start of each
// partition (or f.FromOffset) up to its end as of the call, and calls fn
// with every dead letter f selects, in offset order per partition, until
// fn returns false. It connects with cfg's settings (brokers, TLS, SASL:
// the same kafkaproducer.Config a producer is built from).
func Scan(ctx context.Context, cfg kafkaproducer.Config, topic string, f Filter, fn func(DeadLetter) bool) error {
	_, err := scan(ctx, cfg, topic, f, DefaultIdle, func(d DeadLetter, matched bool) bool {
		if matched {
			return fn(d)
		}
		return true
	})
	return err
}

// scan is Scan calling fn with every record read and whether f selects
// it; it returns the partitions' bounds.
func scan(ctx context.Context, cfg kafkaproducer.Config, topic string, f Filter, idle time.Duration, fn func(DeadLetter, bool) bool) ([]PartitionRange, error) {
	opts, err := clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	starts, ends, err := bounds(ctx, kadm.NewClient(admCl), topic)
	admCl.Close()
	if err != nil {
		return nil, err
	}
	var ranges []PartitionRange
	from := map[int32]int64{}
	to := map[int32]int64{}
	for p, s := range starts {
		ranges = append(ranges, PartitionRange{Partition: p, Start: s, End: ends[p]})
		if len(f.Partitions) > 0 && !containsPartition(f.Partitions, p) {
			continue
		}
		from[p], to[p] = max(s, f.FromOffset), ends[p]
		if f.ToOffset > 0 {
			to[p] = min(to[p], f.ToOffset)
		}
	}
	sortRanges(ranges)
	r, err := newReader(opts, topic, from, to, idle)
	if err != nil {
		return ranges, err
	}
	defer r.close()
	for {
		recs, err := r.poll(ctx)
		if err != nil || len(recs) == 0 {
			return ranges, err
		}
		for _, rec := range recs {
			d := Decode(rec)
			if !fn(d, f.Match(d)) {
				return ranges, nil
			}
		}
	}
}
