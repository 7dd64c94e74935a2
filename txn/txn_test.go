package txn_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

var articleTopics = []string{"orders", "payments", "inventory"}

// txVersions runs a test on both transaction protocols: KIP-890 part 2
// (Kafka 4, kfake's default: partitions join the transaction implicitly,
// EndTxn bumps the epoch) and the classic one (Kafka 3.9:
// AddPartitionsToTxn, fixed epoch).
var txVersions = []struct {
	name string
	opts []kfake.Opt
}{
	{"tv2", nil},
	{"tv1", []kfake.Opt{kfake.MaxVersions(kversion.V3_9_0())}},
}

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	return testkit.Cluster(t, articleTopics, opts...)
}

func baseCfg(c *kfake.Cluster) kafkaproducer.Config {
	cfg := presets.LowLatency()
	cfg.Brokers = c.ListenAddrs()
	cfg.TransactionTimeout = 20 * time.Second
	return cfg
}

// newTxnProducer builds a producer with tc, its zero InitTimeout and
// backoff set for tests.
func newTxnProducer(t *testing.T, c *kfake.Cluster, tc txn.Config) *txn.Producer {
	t.Helper()
	p, err := txn.New(baseCfg(c), testCfg(tc))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeP(p) })
	return p
}

// testCfg fills tc's zero InitTimeout (10s) and backoff (10ms to 100ms).
func testCfg(tc txn.Config) txn.Config {
	if tc.InitTimeout == 0 {
		tc.InitTimeout = 10 * time.Second
	}
	if tc.Backoff == 0 && tc.MaxBackoff == 0 {
		tc.Backoff, tc.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	}
	return tc
}

func closeP(p *txn.Producer) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.Close(ctx)
}

func rec(topic, tag string, i int) kafkaproducer.Record {
	return kafkaproducer.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%s-%d", tag, i)}
}

// values reads topic with the given isolation until it has want records
// (markers aside), then for grace more, so a count of exactly want proves
// there are no more that arrive within grace.
func values(t *testing.T, c *kfake.Cluster, topic string, committed bool, want int, grace time.Duration) []string {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []string
	var graceEnd <-chan struct{}
	for {
		if len(out) >= want && graceEnd == nil {
			gctx, gcancel := context.WithTimeout(ctx, grace)
			defer gcancel()
			ctx, graceEnd = gctx, gctx.Done()
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !strings.HasPrefix(string(r.Value), "marker-") {
				out = append(out, string(r.Value))
			}
		})
	}
	sort.Strings(out)
	return out
}

var markerSeq atomic.Int64

// committedValues returns what read_committed consumers see on topic, for
// sure: it writes a marker to each of the topic's 3 partitions and reads
// with read_committed until all three markers arrive. A transaction left
// open holds the markers back, which fails the test.
func committedValues(t *testing.T, c *kfake.Cluster, topic string) []string {
	t.Helper()
	marker := fmt.Sprintf("marker-%d", markerSeq.Add(1))
	ctx := testkit.Ctx(t, 20*time.Second)
	pcl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	for part := range int32(3) {
		if err := pcl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: part, Value: []byte(marker)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ccl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer ccl.Close()
	var out []string
	for seen := 0; seen < 3; {
		fs := ccl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: read_committed never reached the markers (a transaction left open?); saw %v", topic, abbrev(out))
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch v := string(r.Value); {
			case v == marker:
				seen++
			case strings.HasPrefix(v, "marker-"):
			default:
				out = append(out, v)
			}
		})
	}
	sort.Strings(out)
	return out
}

func expectValues(t *testing.T, c *kfake.Cluster, topic string, committed bool, want []string) {
	t.Helper()
	sort.Strings(want)
	var got []string
	if committed {
		// Kafka writes commit and abort markers after EndTxn answers,
		// so what read_committed shows may lag a moment behind the
		// commit; look again (with fresh end markers) before failing.
		for range 3 {
			if got = committedValues(t, c, topic); fmt.Sprint(got) == fmt.Sprint(want) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	} else {
		got = values(t, c, topic, false, len(want), 200*time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		var log string
		if committed {
			log = "; the log holds (read_uncommitted): " + dumpLog(t, c, topic)
		}
		t.Fatalf("%s (read_committed=%v): got %d records %v, want %d %v%s", topic, committed, len(got), abbrev(got), len(want), abbrev(want), log)
	}
}

// dumpLog lists every record of topic, committed or not, with where it
// is and which producer epoch wrote it: what a failed read_committed
// check needs to be understood.
func dumpLog(t *testing.T, c *kfake.Cluster, topic string) string {
	var out []string
	for _, r := range testkit.ConsumeUpTo(t, c.ListenAddrs(), topic, math.MaxInt, false, 2*time.Second) {
		out = append(out, fmt.Sprintf("p%d@%d pid=%d epoch=%d %s", r.Partition, r.Offset, r.ProducerID, r.ProducerEpoch, r.Value))
	}
	return strings.Join(out, ", ") + "; " + rawCommitted(c, topic)
}

// rawCommitted is what a read_committed fetch of each partition says
// besides the records: the last stable offset, the aborted transactions
// it lists, and every batch's producer, epoch and, for a control batch,
// whether it commits or aborts.
func rawCommitted(c *kfake.Cluster, topic string) string {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		return err.Error()
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	leaders := map[int32]int32{}
	var topicID [16]byte
	mreq := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	mreq.Topics = append(mreq.Topics, mt)
	if mresp, err := mreq.RequestWith(ctx, cl); err == nil && len(mresp.Topics) == 1 {
		topicID = mresp.Topics[0].TopicID
		for _, mp := range mresp.Topics[0].Partitions {
			leaders[mp.Partition] = mp.Leader
		}
	}
	var out []string
	for part := range int32(3) {
		req := kmsg.NewPtrFetchRequest()
		req.MaxWaitMillis, req.MaxBytes, req.IsolationLevel = 100, 1<<20, 1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = part, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		kresp, err := cl.Broker(int(leaders[part])).RetriableRequest(ctx, req)
		resp, _ := kresp.(*kmsg.FetchResponse)
		if err != nil || resp == nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			out = append(out, fmt.Sprintf("p%d: fetch: %v", part, err))
			continue
		}
		fp := resp.Topics[0].Partitions[0]
		desc := fmt.Sprintf("p%d: err=%d lso=%d hwm=%d aborted=%v batches=", part, fp.ErrorCode, fp.LastStableOffset, fp.HighWatermark, fp.AbortedTransactions)
		raw := fp.RecordBatches
		for len(raw) > 0 {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(raw); err != nil {
				desc += "unreadable"
				break
			}
			kind := "data"
			if b.Attributes&0x20 != 0 { // control batch
				kind = "control"
				var r kmsg.Record
				if err := r.ReadFrom(b.Records); err == nil && len(r.Key) == 4 {
					kind = map[byte]string{0: "ABORT", 1: "COMMIT"}[r.Key[3]]
				}
			}
			desc += fmt.Sprintf("[@%d pid=%d epoch=%d txn=%v %s]", b.FirstOffset, b.ProducerID, b.ProducerEpoch, b.Attributes&0x10 != 0, kind)
			raw = raw[12+int(b.Length):]
		}
		out = append(out, desc)
	}
	return strings.Join(out, " ")
}

func abbrev(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], "...")
	}
	return s
}

func tags(tag string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", tag, i)
	}
	return out
}

// attempt is one call to an Observer.
type attempt struct {
	ID, Outcome, Class string
	Retrying           bool
	EndLatency         time.Duration
}

// attempts is an Observer that keeps every call.
type attempts struct {
	mu  sync.Mutex
	all []attempt
}

func (a *attempts) OnTxnAttempt(id, outcome, class string, retrying bool, endLatency time.Duration) {
	a.mu.Lock()
	a.all = append(a.all, attempt{id, outcome, class, retrying, endLatency})
	a.mu.Unlock()
}

func (a *attempts) get() []attempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]attempt(nil), a.all...)
}

// observerFunc adapts a function of an attempt to an Observer.
func observerFunc(f func(attempt)) txn.Observer {
	return txn.ObserverFunc(func(id, outcome, class string, retrying bool, endLatency time.Duration) {
		f(attempt{id, outcome, class, retrying, endLatency})
	})
}

// TestCommitAtomicAcrossTopics: records sent through every style to three
// topics are invisible to read_committed consumers while the transaction
// is open (though written), and all visible after the commit.
func TestCommitAtomicAcrossTopics(t *testing.T) {
	for _, v := range txVersions {
		t.Run(v.name, func(t *testing.T) {
			c := cluster(t, v.opts...)
			obs := &attempts{}
			p := newTxnProducer(t, c, txn.Config{ID: "orders-svc", Observer: obs})
			ctx := testkit.Ctx(t, 30*time.Second)
			err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
				for i := range 10 {
					if _, err := tx.Send(ctx, rec("orders", "o", i)); err != nil {
						return err
					}
				}
				for i := range 10 {
					if err := tx.SendAsync(ctx, rec("payments", "p", i), nil); err != nil {
						return err
					}
				}
				batch := make([]kafkaproducer.Record, 10)
				for i := range batch {
					batch[i] = rec("inventory", "i", i).AtPartition(int32(i % 3))
				}
				if err := tx.SendBatch(ctx, batch).FirstErr(); err != nil {
					return err
				}
				// Written (read_uncommitted sees the synchronous
				// sends) but not visible to read_committed.
				if got := values(t, c, "orders", false, 10, 200*time.Millisecond); len(got) != 10 {
					t.Errorf("read_uncommitted sees %d of the open transaction's orders, want 10", len(got))
				}
				for _, topic := range articleTopics {
					if got := values(t, c, topic, true, 0, 300*time.Millisecond); len(got) != 0 {
						t.Errorf("open transaction visible on %s: %v", topic, got)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			expectValues(t, c, "orders", true, tags("o", 10))
			expectValues(t, c, "payments", true, tags("p", 10))
			expectValues(t, c, "inventory", true, tags("i", 10))
			a := obs.get()
			if len(a) != 1 || a[0].Outcome != txn.OutcomeCommitted || a[0].Class != "" || a[0].ID != "orders-svc" || a[0].EndLatency <= 0 {
				t.Fatalf("observer saw %+v, want one committed attempt", a)
			}
		})
	}
}

// TestAbortIsInvisible: every way a transaction aborts leaves nothing for
// read_committed consumers, and the producer commits normally afterwards.
func TestAbortIsInvisible(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(ctx context.Context, tx *txn.Tx, cancel context.CancelFunc) error
		wantErr func(error) bool
		panics  bool
	}{
		{
			name:    "function error",
			fn:      func(ctx context.Context, tx *txn.Tx, _ context.CancelFunc) error { return errBoom },
			wantErr: func(err error) bool { return errors.Is(err, errBoom) },
		},
		{
			name: "panic",
			fn: func(ctx context.Context, tx *txn.Tx, _ context.CancelFunc) error {
				panic("kaboom")
			},
			panics: true,
		},
		{
			name: "canceled context",
			fn: func(ctx context.Context, tx *txn.Tx, cancel context.CancelFunc) error {
				cancel()
				return nil
			},
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "ignored record failure",
			fn: func(ctx context.Context, tx *txn.Tx, _ context.CancelFunc) error {
				_ = tx.SendAsync(ctx, rec("orders", "bad", 0).AtPartition(99), nil)
				return nil
			},
			wantErr: func(err error) bool { return errors.Is(err, kafkaproducer.ErrBadPartition) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cluster(t)
			obs := &attempts{}
			p := newTxnProducer(t, c, txn.Config{ID: "abort-" + tt.name, Observer: obs})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var panicked any
			err := func() (err error) {
				defer func() { panicked = recover() }()
				return p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
					for _, topic := range articleTopics {
						if _, err := tx.Send(ctx, rec(topic, "aborted", 0)); err != nil {
							return err
						}
					}
					return tt.fn(ctx, tx, cancel)
				})
			}()
			if tt.panics {
				if panicked != "kaboom" {
					t.Fatalf("Run did not re-panic with the function's value: %v (err %v)", panicked, err)
				}
			} else {
				var te *txn.TxnError
				if !tt.wantErr(err) || !errors.As(err, &te) || te.Attempts != 1 {
					t.Fatalf("Run = %v, want the cause after 1 attempt", err)
				}
			}
			if a := obs.get(); len(a) != 1 || a[0].Outcome != txn.OutcomeAborted || a[0].Retrying {
				t.Fatalf("observer saw %+v, want one final abort", a)
			}
			for _, topic := range articleTopics {
				expectValues(t, c, topic, true, nil)
			}
			// Written, then aborted.
			if got := values(t, c, "orders", false, 1, 200*time.Millisecond); len(got) != 1 {
				t.Fatalf("read_uncommitted sees %v, want the aborted record", got)
			}
			// The producer is still usable, and the next commit is
			// visible (the aborted transaction does not hold back the
			// last stable offset).
			if err := p.Run(testkit.Ctx(t, 20*time.Second), func(ctx context.Context, tx *txn.Tx) error {
				_, err := tx.Send(ctx, rec("orders", "after", 0))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			expectValues(t, c, "orders", true, []string{"after-0"})
		})
	}
}

// TestTxDoneAfterReturn: a Tx refuses sends once its function returned.
func TestTxDoneAfterReturn(t *testing.T) {
	c := cluster(t)
	p := newTxnProducer(t, c, txn.Config{ID: "leak"})
	var leaked *txn.Tx
	if err := p.Run(testkit.Ctx(t, 20*time.Second), func(ctx context.Context, tx *txn.Tx) error {
		leaked = tx
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_, err := leaked.Send(context.Background(), rec("orders", "late", 0))
	if !errors.Is(err, txn.ErrTxnDone) {
		t.Fatalf("send on an ended Tx: %v, want ErrTxnDone", err)
	}
}

// TestFencing: a second instance with the same transactional ID fences
// the first; the first's open transaction is aborted, every later Run on
// it fails with ErrFenced without running the function, and the second
// commits normally. Covers the produce path (INVALID_PRODUCER_EPOCH) and
// the commit path (PRODUCER_FENCED) on both transaction protocols.
func TestFencing(t *testing.T) {
	for _, v := range txVersions {
		for _, produceAfter := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/produce_after_fence=%v", v.name, produceAfter), func(t *testing.T) {
				c := cluster(t, v.opts...)
				obs := &attempts{}
				first := newTxnProducer(t, c, txn.Config{ID: "payments-0", Observer: obs})
				ctx := testkit.Ctx(t, 30*time.Second)
				var second *txn.Producer
				err := first.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
					for _, topic := range articleTopics {
						if _, err := tx.Send(ctx, rec(topic, "zombie", 0)); err != nil {
							return err
						}
					}
					second = newTxnProducer(t, c, txn.Config{ID: "payments-0"})
					if produceAfter {
						for _, topic := range articleTopics {
							if _, err := tx.Send(ctx, rec(topic, "zombie", 1)); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if !errors.Is(err, kafkaproducer.ErrFenced) || kafkaproducer.Classify(err) != kafkaproducer.ClassFatal {
					t.Fatalf("zombie Run = %v (class %v), want ErrFenced, fatal", err, kafkaproducer.Classify(err))
				}
				if a := obs.get(); len(a) != 1 || a[0].Retrying {
					t.Fatalf("fencing was retried: %+v", a)
				}
				ran := false
				err = first.Run(ctx, func(context.Context, *txn.Tx) error { ran = true; return nil })
				if !errors.Is(err, kafkaproducer.ErrFenced) || ran || !errors.Is(first.Err(), kafkaproducer.ErrFenced) {
					t.Fatalf("fenced producer reused: Run = %v, ran = %v", err, ran)
				}
				if err := second.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
					for _, topic := range articleTopics {
						if _, err := tx.Send(ctx, rec(topic, "live", 0)); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				for _, topic := range articleTopics {
					expectValues(t, c, topic, true, []string{"live-0"})
				}
			})
		}
	}
}

// TestCloseMidTransaction: closing a producer while its transaction is
// open aborts the transaction; nothing becomes visible, and the next
// transaction on the same ID is visible at once.
func TestCloseMidTransaction(t *testing.T) {
	c := cluster(t)
	p, err := txn.New(baseCfg(c), txn.Config{ID: "closer"})
	if err != nil {
		t.Fatal(err)
	}
	sent := make(chan struct{})
	runErr := make(chan error, 1)
	go func() {
		runErr <- p.Run(context.Background(), func(ctx context.Context, tx *txn.Tx) error {
			for _, topic := range articleTopics {
				if _, err := tx.Send(ctx, rec(topic, "closed", 0)); err != nil {
					return err
				}
			}
			close(sent)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	<-sent
	if err := p.Close(testkit.Ctx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want canceled", err)
	}
	if err := p.Run(context.Background(), func(context.Context, *txn.Tx) error { return nil }); !errors.Is(err, kafkaproducer.ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
	next := newTxnProducer(t, c, txn.Config{ID: "closer"})
	if err := next.Run(testkit.Ctx(t, 20*time.Second), func(ctx context.Context, tx *txn.Tx) error {
		_, err := tx.Send(ctx, rec("orders", "next", 0))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, topic := range articleTopics[1:] {
		expectValues(t, c, topic, true, nil)
	}
	expectValues(t, c, "orders", true, []string{"next-0"})
}

// TestKilledMidTransaction: a process that dies with a transaction open
// (a franz-go client closed without ending it) leaves nothing visible;
// its replacement's initialisation aborts the dangling transaction, so
// the replacement's commit is visible at once.
func TestKilledMidTransaction(t *testing.T) {
	c := cluster(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("worker-7"), kgo.TransactionTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	for _, topic := range articleTopics {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("killed-0")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close() // no EndTransaction: the process "died"
	for _, topic := range articleTopics {
		if got := values(t, c, topic, false, 1, 300*time.Millisecond); len(got) != 1 {
			t.Fatalf("read_uncommitted %s: %v, want the dead transaction's record", topic, got)
		}
		if got := values(t, c, topic, true, 0, 300*time.Millisecond); len(got) != 0 {
			t.Fatalf("dead transaction visible on %s: %v", topic, got)
		}
	}
	p := newTxnProducer(t, c, txn.Config{ID: "worker-7"})
	if err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		_, err := tx.Send(ctx, rec("orders", "restarted", 0))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	expectValues(t, c, "orders", true, []string{"restarted-0"})
	expectValues(t, c, "payments", true, nil)
}

// TestCoordinatorFaultsRetried: coordinator errors on AddPartitionsToTxn
// and EndTxn are retried and the transaction commits exactly once. With
// franz-go's own request retries (the default) it absorbs three faults in
// one attempt; with franz-go allowed a single retry, EndTxn faults outlast
// it and Run retries the whole transaction.
func TestCoordinatorFaultsRetried(t *testing.T) {
	type tcase struct {
		name    string
		version int // index into txVersions
		key     kmsg.Key
		err     *kerr.Error
		tight   bool // franz-go gives up after one retry
	}
	var tests []tcase
	for _, key := range []kmsg.Key{kmsg.AddPartitionsToTxn, kmsg.EndTxn} {
		for _, e := range []*kerr.Error{kerr.ConcurrentTransactions, kerr.CoordinatorNotAvailable, kerr.NotCoordinator} {
			// AddPartitionsToTxn exists only in the classic
			// protocol (tv1); EndTxn is tested on both.
			versions := []int{1}
			if key == kmsg.EndTxn {
				versions = append(versions, 0)
			}
			for _, v := range versions {
				name := fmt.Sprintf("%s/%s/%s", txVersions[v].name, kmsg.NameForKey(int16(key)), e.Message)
				tests = append(tests, tcase{name, v, key, e, false})
				// franz-go retries CONCURRENT_TRANSACTIONS until its
				// context ends, and AddPartitionsToTxn inside its
				// produce loop, whatever RequestRetries says.
				if key == kmsg.EndTxn && e != kerr.ConcurrentTransactions {
					tests = append(tests, tcase{name + "/outlasting_franz-go", v, key, e, true})
				}
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cluster(t, txVersions[tt.version].opts...)
			obs := &attempts{}
			cfg := baseCfg(c)
			if tt.tight {
				cfg.Opts = []kgo.Opt{kgo.RequestRetries(1), kgo.RetryBackoffFn(func(int) time.Duration { return 10 * time.Millisecond })}
			}
			p, err := txn.New(cfg, txn.Config{ID: "faulty", Observer: obs, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer closeP(p)
			ctx := testkit.Ctx(t, 30*time.Second)
			h := c.Fault(kfake.Fault{Keys: []kmsg.Key{tt.key}, Err: tt.err, Count: 3})
			var runs atomic.Int32
			if err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
				runs.Add(1)
				for _, topic := range articleTopics {
					for i := range 3 {
						if err := tx.SendAsync(ctx, rec(topic, "x", i).AtPartition(int32(i)), nil); err != nil {
							return err
						}
					}
				}
				return nil
			}); err != nil {
				t.Fatalf("Run = %v after %d runs", err, runs.Load())
			}
			if h.Hits() != 3 {
				t.Fatalf("fault hit %d times, want 3", h.Hits())
			}
			if tt.tight != (runs.Load() > 1) {
				t.Fatalf("%d run(s): want a whole-transaction retry only when franz-go gives up", runs.Load())
			}
			for _, topic := range articleTopics {
				expectValues(t, c, topic, true, tags("x", 3))
			}
			a := obs.get()
			if last := a[len(a)-1]; last.Outcome != txn.OutcomeCommitted || len(a) != int(runs.Load()) {
				t.Fatalf("observer saw %+v for %d runs", a, runs.Load())
			}
			for _, x := range a[:len(a)-1] {
				if x.Outcome != txn.OutcomeAborted || !x.Retrying || x.Class != "retriable" {
					t.Fatalf("retried attempt reported as %+v", x)
				}
			}
		})
	}
}

// TestAbortableErrorRetriesWholeTransaction: an error Kafka marks
// abortable aborts the attempt (including records that did succeed) and
// Run commits on a new attempt: every record exactly once. A fault that
// outlasts WithMaxAttempts leaves nothing visible.
func TestAbortableErrorRetriesWholeTransaction(t *testing.T) {
	tests := []struct {
		name        string
		faults      int
		maxAttempts int
		wantErr     bool
	}{
		{"one fault", 1, 5, false},
		{"faults outlast attempts", -1, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cluster(t)
			obs := &attempts{}
			p := newTxnProducer(t, c, txn.Config{ID: "abortable", Observer: obs, MaxAttempts: tt.maxAttempts})
			ctx := testkit.Ctx(t, 30*time.Second)
			h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "payments", Err: kerr.TransactionAbortable, Count: tt.faults})
			err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
				for _, topic := range articleTopics {
					if _, err := tx.Send(ctx, rec(topic, "r", 0)); err != nil {
						return err
					}
				}
				return nil
			})
			h.Remove()
			a := obs.get()
			if tt.wantErr {
				var te *txn.TxnError
				if !errors.As(err, &te) || te.Attempts != tt.maxAttempts || kafkaproducer.Classify(err) != kafkaproducer.ClassAbortable {
					t.Fatalf("Run = %v, want an abortable TxnError after %d attempts", err, tt.maxAttempts)
				}
				if len(a) != tt.maxAttempts || !a[0].Retrying || a[len(a)-1].Retrying || a[0].Class != "abortable" {
					t.Fatalf("observer saw %+v", a)
				}
				for _, topic := range articleTopics {
					expectValues(t, c, topic, true, nil)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(a) != 2 || a[0].Outcome != txn.OutcomeAborted || !a[0].Retrying || a[1].Outcome != txn.OutcomeCommitted {
				t.Fatalf("observer saw %+v, want abort+retry then commit", a)
			}
			for _, topic := range articleTopics {
				expectValues(t, c, topic, true, []string{"r-0"})
			}
			// The first attempt's orders record was written, then
			// aborted: read_uncommitted sees both copies.
			if got := values(t, c, "orders", false, 2, 200*time.Millisecond); len(got) != 2 {
				t.Fatalf("read_uncommitted orders: %v, want the aborted and the committed copy", got)
			}
		})
	}
}

// TestNewFailsFast: a bad transactional ID or an unreachable cluster
// fails in New, within the init timeout.
func TestNewFailsFast(t *testing.T) {
	c := cluster(t)
	tests := []struct {
		name  string
		cfg   func() kafkaproducer.Config
		id    string
		check func(error) bool
	}{
		{"empty id", func() kafkaproducer.Config { return baseCfg(c) }, "", func(err error) bool {
			var ce *kafkaproducer.ConfigError
			return errors.As(err, &ce)
		}},
		{"transaction timeout above broker max", func() kafkaproducer.Config {
			cfg := baseCfg(c)
			cfg.TransactionTimeout = 15 * time.Minute
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.InvalidTransactionTimeout, Count: -1})
			return cfg
		}, "too-long", func(err error) bool { return errors.Is(err, kerr.InvalidTransactionTimeout) }},
		{"unreachable", func() kafkaproducer.Config {
			cfg := baseCfg(c)
			cfg.Brokers = []string{"127.0.0.1:1"}
			return cfg
		}, "nowhere", func(err error) bool { return kafkaproducer.IsRetriable(err) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			p, err := txn.New(tt.cfg(), txn.Config{ID: tt.id, InitTimeout: time.Second})
			if err == nil {
				closeP(p)
				t.Fatal("New succeeded")
			}
			if !tt.check(err) || time.Since(start) > 5*time.Second {
				t.Fatalf("New = %v after %v", err, time.Since(start))
			}
		})
	}
}

// TestSendBatchInTransaction: Tx.SendBatch goes through the underlying
// Producer's SendBatch and its records are in the transaction: written
// (read_uncommitted sees them) but never visible to read_committed
// consumers when the transaction aborts, all visible when it commits.
// A refused record in a batch dooms the transaction; a batch sent after
// the function returned fails with ErrTxnDone (ClassClosed).
func TestSendBatchInTransaction(t *testing.T) {
	c := cluster(t)
	p := newTxnProducer(t, c, txn.Config{ID: "batcher", MaxAttempts: 1})
	ctx := testkit.Ctx(t, 30*time.Second)
	batch := func(tag string) []kafkaproducer.Record {
		recs := make([]kafkaproducer.Record, 6)
		for i := range recs {
			recs[i] = rec(articleTopics[i%len(articleTopics)], tag, i)
		}
		return recs
	}
	errAbort := errors.New("abort after the batch")
	var leaked *txn.Tx
	err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		leaked = tx
		res := tx.SendBatch(ctx, batch("aborted"))
		if err := res.FirstErr(); err != nil {
			return err
		}
		for _, r := range res {
			if r.Offset < 0 || r.Partition < 0 {
				return fmt.Errorf("batch record not written: %+v", r)
			}
		}
		if tx.Records() != 6 {
			return fmt.Errorf("Records() = %d after a batch of 6", tx.Records())
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Run = %v, want the abort", err)
	}
	if got := values(t, c, "orders", false, 2, 200*time.Millisecond); len(got) != 2 {
		t.Fatalf("read_uncommitted sees %v of the aborted batch on orders, want 2 records", got)
	}
	for _, topic := range articleTopics {
		expectValues(t, c, topic, true, nil)
	}
	res := leaked.SendBatch(context.Background(), batch("late"))
	for _, r := range res {
		if !errors.Is(r.Err, txn.ErrTxnDone) || r.Class() != kafkaproducer.ClassClosed {
			t.Fatalf("batch on an ended Tx: %v (class %v), want ErrTxnDone (closed)", r.Err, r.Class())
		}
	}

	// A batch with one refused record dooms the transaction even
	// though the function ignores the result.
	bad := batch("doomed")
	bad[3].Topic = ""
	err = p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		_ = tx.SendBatch(ctx, bad)
		return nil
	})
	if !errors.Is(err, kafkaproducer.ErrNoTopic) {
		t.Fatalf("Run with a refused batch record = %v, want ErrNoTopic", err)
	}

	if err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		return tx.SendBatch(ctx, batch("b")).FirstErr()
	}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for i, r := range batch("b") {
		want[r.Topic] = append(want[r.Topic], fmt.Sprintf("b-%d", i))
	}
	for _, topic := range articleTopics {
		expectValues(t, c, topic, true, want[topic])
	}
}
