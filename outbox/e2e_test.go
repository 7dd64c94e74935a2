package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// child is a relay in its own process (this test binary, run again).
type child struct {
	cmd   *exec.Cmd
	owner string
	out   strings.Builder
}

func startChild(t testing.TB, d *testDB, brokers []string, owner string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{owner: owner}
	c.cmd = exec.Command(exe, "-test.run=^$")
	c.cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"OUTBOX_TEST_CHILD_DIALECT="+d.name,
		"OUTBOX_TEST_CHILD_DSN="+d.dsn,
		"OUTBOX_TEST_CHILD_TABLE="+d.table.Name,
		"OUTBOX_TEST_CHILD_BROKERS="+strings.Join(brokers, ","),
		"OUTBOX_TEST_CHILD_OWNER="+owner,
	)
	c.cmd.Stdout = &c.out
	c.cmd.Stderr = &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

func (c *child) stop(t testing.TB) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("relay %s: %v\n%s", c.owner, err, c.out.String())
		}
	case <-time.After(45 * time.Second):
		c.kill()
		<-done
		t.Errorf("relay %s did not stop on SIGTERM", c.owner)
	}
}

// committed is what the writers know they committed.
type committed struct {
	mu     sync.Mutex
	tokens map[string]bool // value -> committed (false: rolled back)
}

// TestEndToEnd: 8 writers add rows in transactions that commit in a
// random order (PostgreSQL) and sometimes roll back; two relays, each its
// own process, publish them; the leader is killed with SIGKILL twice
// mid-run and restarted; the broker refuses produce requests for two
// seconds. Read back from Kafka: every committed row, duplicates only
// with a record ID already read, no rolled-back row, per-key order
// intact. OUTBOX_LONG=1 runs it with 100,000 rows.
func TestEndToEnd(t *testing.T) {
	rows := 10_000
	if os.Getenv("OUTBOX_LONG") != "" {
		rows = 100_000
	}
	dialects(t, func(t *testing.T, d *testDB) { endToEnd(t, d, rows) })
}

func endToEnd(t *testing.T, d *testDB, rows int) {
	const (
		writers = 8
		keys    = 64
		topic   = "e2e"
	)
	c := testkit.Cluster(t, []string{topic})
	brokers := c.ListenAddrs()
	ctx := testkit.Ctx(t, 5*time.Minute)

	// Per-key sequence rows: a writer locks its key's row first, so one
	// key's transactions serialise (the usual aggregate-row pattern) and
	// its rows' commit order is their ID order.
	kt := d.table.Name + "_keys"
	if _, err := d.db.ExecContext(ctx, "CREATE TABLE "+kt+" (k TEXT PRIMARY KEY, seq BIGINT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	for k := range keys {
		if _, err := d.db.ExecContext(ctx, "INSERT INTO "+kt+" (k, seq) VALUES ('k"+strconv.Itoa(k)+"', 0)"); err != nil {
			t.Fatal(err)
		}
	}
	ph := func(i int) string {
		if d.name == "postgres" {
			return "$" + strconv.Itoa(i)
		}
		return "?"
	}
	bump := "UPDATE " + kt + " SET seq = seq + 1 WHERE k = " + ph(1) + " RETURNING seq"

	// Produce requests fail while down is set (the connection is cut,
	// as when a broker dies); the data already written stays.
	var down atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if down.Load() {
			return nil, errors.New("broker down"), true
		}
		return nil, nil, false
	})

	relays := []*child{startChild(t, d, brokers, "A0"), startChild(t, d, brokers, "B0")}
	defer func() {
		for _, r := range relays {
			if r.cmd.ProcessState == nil {
				r.kill()
			}
		}
	}()

	com := &committed{tokens: map[string]bool{}}
	var written atomic.Int64
	var wg sync.WaitGroup
	perWriter := rows / writers
	// Spread the writes over about 8 s so the kills and the outage land
	// mid-run.
	pace := 8 * time.Second / time.Duration(perWriter/2)
	werr := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			n := 0
			for txn := 0; n < perWriter; txn++ {
				if err := writeTxn(ctx, d, rng, w, txn, keys, bump, com, &n, perWriter, &written); err != nil {
					werr <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				time.Sleep(time.Duration(rng.Int64N(int64(pace))))
			}
		})
	}

	// Kill the leader twice, restart it; stop the broker once.
	kills := 0
	gen := 1
	killLeader := func() {
		var owner string
		if err := d.db.QueryRowContext(ctx, "SELECT owner FROM "+d.table.Name+"_lease").Scan(&owner); err != nil {
			t.Fatal(err)
		}
		for i, r := range relays {
			if r.owner == owner {
				r.kill()
				kills++
				relays[i] = startChild(t, d, brokers, fmt.Sprintf("%c%d", "AB"[i], gen))
				gen++
				t.Logf("killed leader %s (SIGKILL) at %d rows written", owner, written.Load())
				return
			}
		}
		t.Logf("no child leads (owner %q)", owner)
	}
	time.Sleep(1500 * time.Millisecond)
	killLeader()
	time.Sleep(1000 * time.Millisecond)
	down.Store(true)
	t.Logf("broker refuses produce requests at %d rows written", written.Load())
	time.Sleep(2 * time.Second)
	down.Store(false)
	time.Sleep(700 * time.Millisecond)
	killLeader()
	wg.Wait()
	close(werr)
	for err := range werr {
		t.Fatal(err)
	}
	if kills != 2 {
		t.Fatalf("killed %d leaders, want 2", kills)
	}

	com.mu.Lock()
	want := 0
	for _, ok := range com.tokens {
		if ok {
			want++
		}
	}
	com.mu.Unlock()
	t.Logf("%d rows committed, %d rolled back; reading back", want, len(com.tokens)-want)
	start := time.Now()
	got := readUnique(t, brokers, topic, want, 90*time.Second, time.Second)
	t.Logf("read %d records in %v", len(got), time.Since(start))
	for _, r := range relays {
		r.stop(t)
	}
	verify(t, got, com, want)
	var left int
	if err := d.db.QueryRowContext(ctx, "SELECT count(*) FROM "+d.table.Name).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d rows left in the outbox", left)
	}
}

// writeTxn runs one writer transaction: lock a key's row and bump its
// sequence, add 1-3 rows for that key, pause (so transactions commit out
// of ID order), then commit, or roll back one time in ten.
func writeTxn(ctx context.Context, d *testDB, rng *rand.Rand, w, txn, keys int, bump string, com *committed, n *int, perWriter int, written *atomic.Int64) error {
	key := "k" + strconv.Itoa(rng.IntN(keys))
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	var seq int64
	if err := tx.QueryRowContext(ctx, bump, key).Scan(&seq); err != nil {
		return err
	}
	cnt := 1 + rng.IntN(3)
	recs := make([]kafkaproducer.Record, cnt)
	vals := make([]string, cnt)
	for i := range recs {
		// key|seq|i|token: the token makes every row's value unique.
		vals[i] = fmt.Sprintf("%s|%d|%d|w%d-t%d-%d", key, seq, i, w, txn, i)
		recs[i] = kafkaproducer.Record{Topic: "e2e", Key: []byte(key), Value: []byte(vals[i])}
	}
	if err := d.table.Add(ctx, tx, recs...); err != nil {
		return err
	}
	if d.name == "postgres" {
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond)
	}
	rollback := rng.IntN(10) == 0
	com.mu.Lock()
	for _, v := range vals {
		com.tokens[v] = false
	}
	com.mu.Unlock()
	if rollback {
		return tx.Rollback()
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	com.mu.Lock()
	for _, v := range vals {
		com.tokens[v] = true
	}
	com.mu.Unlock()
	*n += cnt
	written.Add(int64(cnt))
	return nil
}

// verify checks what was read against what was committed.
func verify(t *testing.T, got []*kgo.Record, com *committed, want int) {
	t.Helper()
	byID := map[string]string{}
	type pos struct {
		seq int64
		i   int
	}
	last := map[string]pos{}
	dups, rolledBack, reordered := 0, 0, 0
	for _, r := range got {
		id := idOf(r)
		v := string(r.Value)
		if prev, ok := byID[id]; ok {
			if prev != v {
				t.Fatalf("record id %s carries %q and %q", id, prev, v)
			}
			dups++
			continue
		}
		byID[id] = v
		ok, known := com.tokens[v]
		if !known {
			t.Fatalf("read %q, which no writer added", v)
		}
		if !ok {
			rolledBack++
			t.Errorf("read %q, whose transaction rolled back", v)
		}
		f := strings.Split(v, "|")
		seq, _ := strconv.ParseInt(f[1], 10, 64)
		i, _ := strconv.Atoi(f[2])
		p := pos{seq, i}
		if l, ok := last[f[0]]; ok && (p.seq < l.seq || (p.seq == l.seq && p.i <= l.i)) {
			reordered++
			if reordered < 5 {
				t.Errorf("key %s: %d/%d after %d/%d", f[0], p.seq, p.i, l.seq, l.i)
			}
		}
		last[f[0]] = p
	}
	read := make(map[string]bool, len(byID))
	for _, v := range byID {
		read[v] = true
	}
	missing := 0
	for v, ok := range com.tokens {
		if ok && !read[v] {
			missing++
		}
	}
	t.Logf("read %d records: %d distinct, %d duplicates (same record id), %d rolled back, %d out of key order, %d committed rows missing",
		len(got), len(byID), dups, rolledBack, reordered, missing)
	if len(byID) != want || missing != 0 || reordered != 0 || rolledBack != 0 {
		t.Fatalf("want %d distinct committed records in key order, none missing", want)
	}
}
