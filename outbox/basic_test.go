package outbox_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readUnique reads topic from the start until it has seen want distinct
// record IDs or timeout passes, then reads on for grace to catch late
// duplicates. It returns every record read, in partition order.
func readUnique(t testing.TB, brokers []string, topic string, want int, timeout, grace time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	seen := map[string]bool{}
	poll := func(d time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		for ctx.Err() == nil && (len(seen) < want || d == grace) {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				out = append(out, r)
				seen[idOf(r)] = true
			})
		}
	}
	poll(timeout)
	poll(grace)
	return out
}

func idOf(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == dlq.DefaultRecordIDHeader {
			return string(h.Value)
		}
	}
	return ""
}

func header(r *kgo.Record, k string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == k {
			return h.Value, true
		}
	}
	return nil, false
}

// TestRoundTrip: what Add stores is what Kafka gets: nil and empty keys
// and values (tombstones), headers with null values, explicit partitions,
// timestamps; plus the record-ID and original-timestamp headers.
func TestRoundTrip(t *testing.T) {
	dialects(t, func(t *testing.T, d *testDB) {
		c := testkit.Cluster(t, []string{"rt"})
		p := producer(t, c.ListenAddrs(), nil)
		ts := time.UnixMilli(1_700_000_000_123)
		recs := []kafkaproducer.Record{
			{Topic: "rt", Key: []byte("k1"), Value: []byte("v1")},
			{Topic: "rt", Key: nil, Value: []byte("no key")},
			{Topic: "rt", Key: []byte{}, Value: []byte("empty key")},
			{Topic: "rt", Key: []byte("k1"), Value: nil}, // tombstone
			{Topic: "rt", Key: []byte("k2"), Value: []byte{}},
			{Topic: "rt", Key: []byte("k3"), Value: []byte("h"), Headers: []kafkaproducer.Header{{Key: "a", Value: []byte("1")}, {Key: "n", Value: nil}, {Key: "e", Value: []byte{}}}},
			kafkaproducer.Record{Topic: "rt", Key: []byte("k4"), Value: []byte("p2"), Timestamp: ts}.AtPartition(2),
		}
		ctx := testkit.Ctx(t, 30*time.Second)
		tx, err := d.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.table.Add(ctx, tx, recs...); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		runRelay(t, d, p, nil)
		got := readUnique(t, c.ListenAddrs(), "rt", len(recs), 20*time.Second, 200*time.Millisecond)
		if len(got) != len(recs) {
			t.Fatalf("read %d records, want %d", len(got), len(recs))
		}
		byValue := map[string]*kgo.Record{}
		for _, r := range got {
			if r.Value == nil {
				byValue["<nil>"] = r
			} else {
				byValue[string(r.Value)] = r
			}
		}
		for _, want := range recs {
			v := "<nil>"
			if want.Value != nil {
				v = string(want.Value)
			}
			r := byValue[v]
			if r == nil {
				t.Fatalf("record %q not read", v)
			}
			if (r.Key == nil) != (want.Key == nil) || !bytes.Equal(r.Key, want.Key) {
				t.Errorf("%q: key %q (nil %v), want %q (nil %v)", v, r.Key, r.Key == nil, want.Key, want.Key == nil)
			}
			if (r.Value == nil) != (want.Value == nil) {
				t.Errorf("%q: value nil %v, want nil %v", v, r.Value == nil, want.Value == nil)
			}
			if want.PartitionSet && r.Partition != want.Partition {
				t.Errorf("%q: partition %d, want %d", v, r.Partition, want.Partition)
			}
			for _, h := range want.Headers {
				got, ok := header(r, h.Key)
				if !ok || !bytes.Equal(got, h.Value) || (got == nil) != (h.Value == nil) {
					t.Errorf("%q: header %q = %q (ok %v, nil %v), want %q (nil %v)", v, h.Key, got, ok, got == nil, h.Value, h.Value == nil)
				}
			}
			id := idOf(r)
			if _, err := dlq.ParseRecordID([]byte(id)); err != nil {
				t.Errorf("%q: record id %q: %v", v, id, err)
			}
			ots, ok := header(r, dlq.HeaderOriginalTimestamp)
			if !ok {
				t.Errorf("%q: no %s header", v, dlq.HeaderOriginalTimestamp)
			}
			if !want.Timestamp.IsZero() && string(ots) != "1700000000123" {
				t.Errorf("%q: original timestamp %s, want 1700000000123", v, ots)
			}
		}
	})
}

// TestAddRefuses: Add checks records before writing any.
func TestAddRefuses(t *testing.T) {
	d := openSQLite(t)
	ctx := context.Background()
	tests := []struct {
		name string
		rec  kafkaproducer.Record
		want error
	}{
		{"no topic", kafkaproducer.Record{Value: []byte("x")}, kafkaproducer.ErrNoTopic},
		{"negative partition", kafkaproducer.Record{Topic: "t"}.AtPartition(-1), kafkaproducer.ErrBadPartition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.table.Add(ctx, d.db, kafkaproducer.Record{Topic: "ok"}, tt.rec)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Add: %v, want %v", err, tt.want)
			}
			var n int
			if err := d.db.QueryRow("SELECT count(*) FROM " + d.table.Name).Scan(&n); err != nil || n != 0 {
				t.Fatalf("%d rows written (%v), want 0", n, err)
			}
		})
	}
	if err := (outbox.Table{Name: "x"}).Add(ctx, d.db); err == nil {
		t.Fatal("Add with no dialect: no error")
	}
	if err := (outbox.Table{Name: "x; DROP TABLE y", Dialect: outbox.SQLite}).Add(ctx, d.db); err == nil {
		t.Fatal("Add with a bad table name: no error")
	}
}

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// TestAddTyped: typed records go through the Typed producer's serializers.
func TestAddTyped(t *testing.T) {
	d := openSQLite(t)
	c := testkit.Cluster(t, []string{"typed"})
	p := producer(t, c.ListenAddrs(), nil)
	typed, err := kafkaproducer.NewTyped[string, order](p, kafkaproducer.StringSerializer{}, kafkaproducer.JSON[order]())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	if err := outbox.AddTyped(ctx, d.table, d.db, typed, kafkaproducer.TypedRecord[string, order]{Topic: "typed", Key: "o-1", Value: order{ID: "o-1", Total: 42}}); err != nil {
		t.Fatal(err)
	}
	bad, _ := kafkaproducer.NewTyped[string, order](p, kafkaproducer.StringSerializer{}, kafkaproducer.SerializerFunc[order](func(string, order, []byte) ([]byte, error) {
		return nil, errors.New("boom")
	}))
	err = outbox.AddTyped(ctx, d.table, d.db, bad, kafkaproducer.TypedRecord[string, order]{Topic: "typed", Key: "o-2"})
	var bie *kafkaproducer.BadInputError
	if !errors.As(err, &bie) || kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
		t.Fatalf("AddTyped with a failing serializer: %v, want a BadInputError", err)
	}
	runRelay(t, d, p, nil)
	got := readUnique(t, c.ListenAddrs(), "typed", 1, 20*time.Second, 200*time.Millisecond)
	if len(got) != 1 || string(got[0].Key) != "o-1" || string(got[0].Value) != `{"id":"o-1","total":42}` {
		t.Fatalf("read %d records: %+v", len(got), got)
	}
}

// TestLateCommitNotSkipped: transactions take their IDs in one order and
// commit in the reverse order while the relay runs; every row is
// published (no watermark skips the late commits).
func TestLateCommitNotSkipped(t *testing.T) {
	d := openPG(t)
	c := testkit.Cluster(t, []string{"late"})
	p := producer(t, c.ListenAddrs(), nil)
	r, _ := runRelay(t, d, p, func(c *outbox.RelayConfig) { c.PollInterval = 5 * time.Millisecond })
	ctx := testkit.Ctx(t, 60*time.Second)
	const n = 8
	txs := make([]interface {
		Commit() error
		Rollback() error
	}, n)
	for i := range n { // IDs 1..n in this order
		tx, err := d.db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.table.Add(ctx, tx, kafkaproducer.Record{Topic: "late", Key: []byte{byte('a' + i)}, Value: []byte{byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
		txs[i] = tx
	}
	for i := n - 1; i >= 0; i-- { // commit the highest ID first
		if err := txs[i].Commit(); err != nil {
			t.Fatal(err)
		}
		want := uint64(n - i)
		testkit.WaitFor(t, 10*time.Second, "the committed row to be published", func() bool { return r.Stats().Published >= want })
	}
	got := readUnique(t, c.ListenAddrs(), "late", n, 20*time.Second, 200*time.Millisecond)
	if len(got) != n {
		t.Fatalf("read %d records, want %d", len(got), n)
	}
	// Published in commit order: values n-1 .. 0.
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(r.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("distinct values %v", seen)
	}
}

// TestPoisonRows: a row too large for Kafka and a row for a topic that
// does not exist are dead-lettered, each alone; the rows after them,
// keys included, are published in order.
func TestPoisonRows(t *testing.T) {
	dialects(t, func(t *testing.T, d *testDB) {
		c := testkit.Cluster(t, []string{"good"})
		p := producer(t, c.ListenAddrs(), func(cfg *kafkaproducer.Config) { cfg.BatchMaxBytes = 10_000 })
		ctx := testkit.Ctx(t, 60*time.Second)
		recs := []kafkaproducer.Record{
			{Topic: "good", Key: []byte("k"), Value: []byte("1")},
			{Topic: "good", Key: []byte("k"), Value: bytes.Repeat([]byte("x"), 20_000)}, // too large
			{Topic: "good", Key: []byte("k"), Value: []byte("2")},
			{Topic: "missing", Key: []byte("k"), Value: []byte("lost")}, // no such topic
			{Topic: "good", Key: []byte("k"), Value: []byte("3")},
			kafkaproducer.Record{Topic: "good", Key: []byte("k"), Value: []byte("bad partition")}.AtPartition(7),
			{Topic: "good", Key: []byte("k"), Value: []byte("4")},
		}
		if err := d.table.Add(ctx, d.db, recs...); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		m, err := outbox.NewMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := runRelay(t, d, p, func(c *outbox.RelayConfig) { c.Observer = m })
		testkit.WaitFor(t, 30*time.Second, "4 published and 3 dead-lettered", func() bool {
			s := r.Stats()
			return s.Published == 4 && s.DeadLettered == 3
		})
		got := readUnique(t, c.ListenAddrs(), "good", 4, 20*time.Second, 300*time.Millisecond)
		var vals []string
		for _, r := range got {
			vals = append(vals, string(r.Value))
		}
		if strings.Join(vals, ",") != "1,2,3,4" {
			t.Fatalf("published %v, want 1,2,3,4 in order", vals)
		}
		rows, err := d.db.QueryContext(ctx, "SELECT topic, error_class, error FROM "+d.table.Name+"_dead ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var dead []string
		for rows.Next() {
			var topic, class, msg string
			if err := rows.Scan(&topic, &class, &msg); err != nil {
				t.Fatal(err)
			}
			if class != "bad_input" || msg == "" {
				t.Errorf("dead letter for %s: class %q, error %q", topic, class, msg)
			}
			dead = append(dead, topic)
		}
		if strings.Join(dead, ",") != "good,missing,good" {
			t.Fatalf("dead letters for %v", dead)
		}
		if got := testutil.CollectAndCount(reg, "kprod_outbox_dead_lettered_total"); got != 2 {
			t.Errorf("dead_lettered_total series: %d, want 2 (good, missing)", got)
		}
		problems, err := testutil.GatherAndLint(reg)
		if err != nil || len(problems) > 0 {
			t.Fatalf("promlint: %v %v", problems, err)
		}
	})
}
