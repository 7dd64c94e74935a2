package kafkatest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Isolation is the isolation level records are read with.
type Isolation int

const (
	// ReadUncommitted returns every record, including those of open
	// and aborted transactions.
	ReadUncommitted Isolation = iota
	// ReadCommitted returns only records outside transactions or in
	// committed ones, up to the last stable offset.
	ReadCommitted
)

func (i Isolation) String() string {
	if i == ReadCommitted {
		return "read_committed"
	}
	return "read_uncommitted"
}

// ReadAll reads topic from its start up to its end as of the call (the
// high watermark for ReadUncommitted, the last stable offset for
// ReadCommitted) and returns the data records, ordered by partition then
// offset. It fails the test if the end is not reached within timeout
// (zero means 30s). Records written after the call may or may not be
// included.
func (c *Cluster) ReadAll(t testing.TB, topic string, iso Isolation, timeout time.Duration) []*kgo.Record {
	t.Helper()
	recs, err := c.readAll(topic, iso, timeout)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return recs
}

func (c *Cluster) readAll(topic string, iso Isolation, timeout time.Duration) ([]*kgo.Record, error) {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	admCl, err := kgo.NewClient(c.ClientOpts()...)
	if err != nil {
		return nil, err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: list start offsets: %w", topic, err)
	}
	var ends kadm.ListedOffsets
	if iso == ReadCommitted {
		ends, err = adm.ListCommittedOffsets(ctx, topic)
	} else {
		ends, err = adm.ListEndOffsets(ctx, topic)
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("read %q: list end offsets (%s): %w", topic, iso, err)
	}

	// Partitions with records left, and the offset each must reach.
	want := make(map[int32]int64)
	from := make(map[int32]kgo.Offset)
	ends.Each(func(o kadm.ListedOffset) {
		start := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok {
			start = s.Offset
		}
		if o.Offset > start {
			want[o.Partition] = o.Offset
			from[o.Partition] = kgo.NewOffset().At(start)
		}
	})
	byPart := make(map[int32][]*kgo.Record)
	if len(want) == 0 {
		return nil, nil
	}

	opts := append(c.ClientOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		// Control records (transaction markers) occupy offsets; keeping
		// them lets every partition reach its end offset visibly. They
		// are dropped from the result below.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(250*time.Millisecond),
	)
	if iso == ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	reached := make(map[int32]int64)
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %q (%s): %d partition(s) short of their end after %v: reached %v, want %v",
				topic, iso, len(want), timeout, reached, want)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return nil, fmt.Errorf("read %q (%s): %w", topic, iso, ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			reached[r.Partition] = r.Offset + 1
			if end, ok := want[r.Partition]; ok && r.Offset+1 >= end {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			if end, ok := ends.Lookup(topic, r.Partition); ok && r.Offset >= end.Offset {
				return // written after the call
			}
			byPart[r.Partition] = append(byPart[r.Partition], r)
		})
	}
	var out []*kgo.Record
	for p := range int32(len(ends[topic])) {
		out = append(out, byPart[p]...)
	}
	return out, nil
}
