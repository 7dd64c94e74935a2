package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
)

// TestHandover: two relays on one table; one leads. Stopping the leader
// through its ctx releases the lease, so the standby takes over at once
// (within a second, not LeaseTTL) and nothing is published twice.
func TestHandover(t *testing.T) {
	dialects(t, func(t *testing.T, d *testDB) {
		c := testkit.Cluster(t, []string{"ho"})
		p1 := producer(t, c.ListenAddrs(), nil)
		p2 := producer(t, c.ListenAddrs(), nil)
		ctx := testkit.Ctx(t, 60*time.Second)
		long := func(cfg *outbox.RelayConfig) { cfg.LeaseTTL = 30 * time.Second }
		r1, stop1 := runRelay(t, d, p1, func(cfg *outbox.RelayConfig) { long(cfg); cfg.Owner = "one" })
		testkit.WaitFor(t, 10*time.Second, "r1 to lead", r1.Leader)
		r2, _ := runRelay(t, d, p2, func(cfg *outbox.RelayConfig) { long(cfg); cfg.Owner = "two" })
		add := func(from, to int) {
			for i := from; i < to; i++ {
				if err := d.table.Add(ctx, d.db, kafkaproducer.Record{Topic: "ho", Key: []byte("k"), Value: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		add(0, 50)
		testkit.WaitFor(t, 10*time.Second, "r1 to publish 50", func() bool { return r1.Stats().Published == 50 })
		if r2.Leader() || r2.Stats().Published != 0 {
			t.Fatalf("standby r2: %+v", r2.Stats())
		}
		if err := r2.Ready(ctx); err != nil {
			t.Fatalf("standby Ready: %v", err)
		}
		start := time.Now()
		stop1()
		if err := r1.Ready(ctx); !errors.Is(err, outbox.ErrNotRunning) {
			t.Fatalf("stopped relay's Ready: %v", err)
		}
		add(50, 100)
		testkit.WaitFor(t, 10*time.Second, "r2 to publish 50", func() bool { return r2.Stats().Published == 50 })
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("handover took %v", d)
		}
		got := readUnique(t, c.ListenAddrs(), "ho", 100, 10*time.Second, 300*time.Millisecond)
		if len(got) != 100 {
			t.Fatalf("read %d, want 100 (no duplicates)", len(got))
		}
		for i, r := range got {
			if int(r.Value[0]) != i {
				t.Fatalf("record %d has value %d", i, r.Value[0])
			}
		}
	})
}

// TestOutageBackpressure: while the broker refuses produce requests the
// rows stay in the table, Ready reports the failure and the backlog
// reports them, and once it is back every row is published once, in
// order, and the backlog is empty.
func TestOutageBackpressure(t *testing.T) {
	d := openSQLite(t)
	c := testkit.Cluster(t, []string{"out"})
	p := producer(t, c.ListenAddrs(), func(cfg *kafkaproducer.Config) {
		cfg.DeliveryTimeout = 2 * time.Second
		cfg.RequestTimeout = time.Second
	})
	ctx := testkit.Ctx(t, 60*time.Second)
	release := testkit.HangProduce(c)
	obs := &backlogObserver{}
	r, _ := runRelay(t, d, p, func(cfg *outbox.RelayConfig) {
		cfg.BatchSize = 100
		cfg.StatsInterval = 50 * time.Millisecond
		cfg.Observer = obs
	})
	for i := range 300 {
		if err := d.table.Add(ctx, d.db, kafkaproducer.Record{Topic: "out", Key: []byte("k"), Value: []byte{byte(i >> 8), byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 20*time.Second, "a failed batch", func() bool { return r.Stats().Failed > 0 })
	if err := r.Ready(ctx); err == nil {
		t.Fatal("Ready: nil during the outage")
	}
	var n int
	if err := d.db.QueryRow("SELECT count(*) FROM " + d.table.Name).Scan(&n); err != nil || n != 300 {
		t.Fatalf("rows in the outbox during the outage: %d (%v), want 300", n, err)
	}
	testkit.WaitFor(t, 5*time.Second, "a backlog of 300 rows", func() bool {
		rows, oldest := obs.last()
		return rows == 300 && oldest > 0
	})
	release()
	testkit.WaitFor(t, 30*time.Second, "300 published", func() bool { return r.Stats().Published == 300 })
	testkit.WaitFor(t, 5*time.Second, "an empty backlog", func() bool {
		rows, oldest := obs.last()
		return rows == 0 && oldest == 0
	})
	testkit.WaitFor(t, 5*time.Second, "Ready", func() bool { return r.Ready(ctx) == nil })
	got := readUnique(t, c.ListenAddrs(), "out", 300, 10*time.Second, 300*time.Millisecond)
	seen := map[string]bool{}
	prev := -1
	for _, rec := range got {
		if seen[idOf(rec)] {
			continue
		}
		seen[idOf(rec)] = true
		v := int(rec.Value[0])<<8 | int(rec.Value[1])
		if v <= prev {
			t.Fatalf("%d after %d", v, prev)
		}
		prev = v
	}
	if len(seen) != 300 {
		t.Fatalf("%d distinct records, want 300", len(seen))
	}
	t.Logf("%d records read for 300 rows (%d sends failed during the outage)", len(got), r.Stats().Failed)
}

// TestRunTwice: Run refuses to run twice at once.
func TestRunTwice(t *testing.T) {
	d := openSQLite(t)
	c := testkit.Cluster(t, []string{"x"})
	p := producer(t, c.ListenAddrs(), nil)
	r, _ := runRelay(t, d, p, nil)
	testkit.WaitFor(t, 5*time.Second, "leading", r.Leader)
	if err := r.Run(context.Background()); !errors.Is(err, outbox.ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

// TestMigrateNoNotify: Migrate is idempotent and NoNotify drops the
// trigger a previous Migrate created.
func TestMigrateNoNotify(t *testing.T) {
	d := openPG(t)
	ctx := testkit.Ctx(t, 30*time.Second)
	triggers := func() int {
		var n int
		if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM pg_trigger WHERE tgname = $1", d.table.Name+"_notify").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := d.table.Migrate(ctx, d.db); err != nil {
		t.Fatal(err)
	}
	if n := triggers(); n != 1 {
		t.Fatalf("%d notify triggers, want 1", n)
	}
	tbl := d.table
	tbl.NoNotify = true
	if err := tbl.Migrate(ctx, d.db); err != nil {
		t.Fatal(err)
	}
	if n := triggers(); n != 0 {
		t.Fatalf("%d notify triggers after NoNotify, want 0", n)
	}
}

// backlogObserver keeps the last backlog the relay reported.
type backlogObserver struct {
	mu     sync.Mutex
	rows   int64
	oldest time.Duration
}

func (o *backlogObserver) OnBacklog(rows int64, oldest time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rows, o.oldest = rows, oldest
}

func (o *backlogObserver) last() (int64, time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rows, o.oldest
}

func (*backlogObserver) OnPublished(string, time.Duration) {}
func (*backlogObserver) OnFailed(string, string)           {}
func (*backlogObserver) OnDeadLettered(string, string)     {}
func (*backlogObserver) OnLeader(bool)                     {}
