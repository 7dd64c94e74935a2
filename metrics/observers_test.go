package metrics_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
)

// *Metrics is a txn.Observer and a dlq.Observer as it is; package
// metrics imports neither (TestNoTxnOrDLQDependency).
var (
	_ txn.Observer = (*metrics.Metrics)(nil)
	_ dlq.Observer = (*metrics.Metrics)(nil)
)

// TestNoTxnOrDLQDependency: importing metrics pulls in neither txn nor
// dlq, nor what dlq brings (the circuit breaker, the spool).
func TestNoTxnOrDLQDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == "github.com/kprod/kprod/txn",
			strings.HasPrefix(dep, "github.com/kprod/kprod/dlq"),
			strings.Contains(dep, "gobreaker"):
			t.Errorf("package metrics depends on %s", dep)
		}
	}
}

// attempt is one OnTxnAttempt call.
type attempt struct {
	outcome    string
	retrying   bool
	endLatency time.Duration
}

// TestTxnObserver runs real transactions on kfake through a txn.Producer
// whose Observer is m: a commit, an abort by the function, and an
// abortable Kafka error that aborts and retries before committing. The
// scraped counts by outcome, the retries and the latency histograms must
// match the attempts txn reported.
func TestTxnObserver(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	reg, m := newMetrics(t)
	var mu sync.Mutex
	var seen []attempt
	obs := txn.ObserverFunc(func(id, outcome, class string, retrying bool, endLatency time.Duration) { // m, plus a copy for the assertions
		mu.Lock()
		seen = append(seen, attempt{outcome, retrying, endLatency})
		mu.Unlock()
		m.OnTxnAttempt(id, outcome, class, retrying, endLatency)
	})
	cfg := presets.LowLatency()
	cfg.Brokers = c.ListenAddrs()
	cfg.TransactionTimeout = 20 * time.Second
	p, err := txn.New(m.Instrument(cfg), txn.Config{ID: "metrics-txn", Observer: obs,
		InitTimeout: 10 * time.Second, Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	testkit.CloseAtEnd(t, p.Close)
	ctx := testkit.Ctx(t, 30*time.Second)
	send := func(n int) txn.Func {
		return func(ctx context.Context, tx *txn.Tx) error {
			for i := range n {
				if _, err := tx.Send(ctx, rec("orders", i)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	errRule := errors.New("business rule says no")

	if err := p.Run(ctx, send(2)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		if err := send(1)(ctx, tx); err != nil {
			return err
		}
		return errRule
	}); !errors.Is(err, errRule) {
		t.Fatalf("abort: %v, want %v", err, errRule)
	}
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.TransactionAbortable, Count: 1})
	err = p.Run(ctx, send(3))
	h.Remove()
	if err != nil {
		t.Fatalf("abortable then commit: %v", err)
	}

	mu.Lock()
	attempts := append([]attempt(nil), seen...)
	mu.Unlock()
	var committed, aborted, retries, abortTimed int
	for _, a := range attempts {
		switch a.outcome {
		case txn.OutcomeCommitted:
			committed++
		case txn.OutcomeAborted:
			aborted++
			if a.endLatency > 0 {
				abortTimed++
			}
		}
		if a.retrying {
			retries++
		}
	}
	if committed != 2 || aborted != 2 || retries != 1 || len(attempts) != 4 {
		t.Fatalf("txn reported %d attempts (%d committed, %d aborted, %d retrying), want 4 (2, 2, 1): %+v",
			len(attempts), committed, aborted, retries, attempts)
	}
	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kprod_transactions_total", []string{"outcome", "committed"}, float64(committed)},
		{"kprod_transactions_total", []string{"outcome", "aborted"}, float64(aborted)},
		{"kprod_transactions_total", nil, float64(len(attempts))},
		{"kprod_transaction_retries_total", nil, float64(retries)},
	}
	for _, tt := range tests {
		if s := scrape(t, reg, tt.name, tt.labels...); s.value != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, s.value, tt.want)
		}
	}
	if s := scrape(t, reg, "kprod_transactions_total", "outcome", "unknown"); s.value != 0 {
		t.Errorf("unknown outcomes: %v", s.value)
	}
	lat := scrape(t, reg, "kprod_transaction_end_duration_seconds", "outcome", "committed")
	if lat.count != uint64(committed) || lat.sum <= 0 || lat.sum > 20 {
		t.Errorf("commit latency count %d sum %vs, want %d commits timed", lat.count, lat.sum, committed)
	}
	if al := scrape(t, reg, "kprod_transaction_end_duration_seconds", "outcome", "aborted"); al.count != uint64(abortTimed) {
		t.Errorf("abort latency count %d, want %d (aborts that sent EndTxn)", al.count, abortTimed)
	}
	// The instrumented transactional producer's records are counted
	// too. Sends are sequential and stop at the first error: 2 + 1
	// acknowledged (the second in a transaction later aborted), then
	// the faulted record fails as abortable, then the retry's 3.
	sent := scrape(t, reg, "kprod_records_sent_total", "topic", "orders").value
	failed := scrape(t, reg, "kprod_records_failed_total", "topic", "orders").value
	abortable := scrape(t, reg, "kprod_records_failed_total", "topic", "orders", "class", "abortable").value
	if sent != 6 || failed != 1 || abortable != 1 {
		t.Errorf("records sent %v, failed %v (abortable %v), want 6, 1 (1)", sent, failed, abortable)
	}
}

// TestDLQObserver drives a real dlq.Producer on kfake whose Observer is
// m: a MESSAGE_TOO_LARGE record goes to its dead-letter
// topic, the broker goes away (the breaker opens and records are
// spooled), then comes back on the same port with its data (the breaker
// closes and the spool is replayed). Each step is checked by scraping.
func TestDLQObserver(t *testing.T) {
	topics := []string{"orders", "orders.DLT"}
	dir := t.TempDir()
	c := testkit.Cluster(t, topics, kfake.DataDir(dir))
	_, portS, _ := net.SplitHostPort(c.ListenAddrs()[0])
	port, _ := strconv.Atoi(portS)

	reg, m := newMetrics(t)
	pcfg := m.Instrument(presets.Reliable())
	pcfg.Brokers = []string{net.JoinHostPort("127.0.0.1", portS)}
	pcfg.RequestTimeout = time.Second
	pcfg.DeliveryTimeout = 1500 * time.Millisecond
	pcfg.RetryBackoff = kafkaproducer.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}
	p, err := kafkaproducer.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dlq.New(p, dlq.Config{
		SpoolDir: t.TempDir() + "/spool",
		Observer: m,
		Breaker: dlq.BreakerConfig{
			ConsecutiveFailures: 3,
			OpenTimeout:         300 * time.Millisecond,
			HalfOpenProbes:      2,
			PingInterval:        50 * time.Millisecond,
			PingTimeout:         500 * time.Millisecond,
		},
		Replay: dlq.ReplayConfig{Interval: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	testkit.CloseAtEnd(t, d.Close)
	ctx := testkit.Ctx(t, 60*time.Second)
	eq := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}

	if res, err := d.Send(ctx, rec("orders", 0)); err != nil || res.Disposition != dlq.Delivered {
		t.Fatalf("healthy send: %v / %v", res.Disposition, err)
	}
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: 1})
	if res, err := d.Send(ctx, rec("orders", 1)); err != nil || res.Disposition != dlq.DeadLettered {
		t.Fatalf("too large: %v / %v, want dead-lettered", res.Disposition, err)
	}
	eq("records_dead_lettered_total{orders}", scrape(t, reg, "kprod_records_dead_lettered_total", "topic", "orders").value, 1)
	eq("records_failed_total{orders,bad_input}", scrape(t, reg, "kprod_records_failed_total", "topic", "orders", "class", "bad_input").value, 1)
	eq("records_spooled_total before the outage", scrape(t, reg, "kprod_records_spooled_total").value, 0)

	// Outage: failed pings open the breaker; sends go to the spool.
	c.Close()
	testkit.WaitFor(t, 15*time.Second, "breaker to open", func() bool { return d.BreakerState().String() == metrics.BreakerOpen })
	testkit.WaitFor(t, 5*time.Second, "breaker_state{open} = 1", func() bool {
		return scrape(t, reg, "kprod_breaker_state", "state", metrics.BreakerOpen).value == 1
	})
	const spooled = 5
	for i := range spooled {
		if res, err := d.Send(ctx, rec("orders", 10+i)); err != nil || res.Disposition != dlq.Spooled {
			t.Fatalf("send during outage: %v / %v, want spooled", res.Disposition, err)
		}
	}
	eq("records_spooled_total{orders}", scrape(t, reg, "kprod_records_spooled_total", "topic", "orders").value, spooled)
	testkit.WaitFor(t, 5*time.Second, "spool_records to match the spool", func() bool {
		return scrape(t, reg, "kprod_spool_records").value == float64(d.Stats().SpoolRecords)
	})
	eq("spool_records", scrape(t, reg, "kprod_spool_records").value, spooled)
	if b := scrape(t, reg, "kprod_spool_bytes").value; b <= 0 {
		t.Errorf("spool_bytes = %v with %d records spooled", b, spooled)
	}
	eq("breaker_transitions_total{open}", scrape(t, reg, "kprod_breaker_transitions_total", "state", metrics.BreakerOpen).value, 1)
	eq("breaker_state{closed}", scrape(t, reg, "kprod_breaker_state", "state", metrics.BreakerClosed).value, 0)

	// Recovery: the broker returns on the same port with its data; the
	// breaker closes and the spool is replayed to "orders".
	var c2 *kfake.Cluster
	for range 50 { // the port may take a moment to be free again
		if c2, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topics...), kfake.DataDir(dir), kfake.Ports(port)); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart kfake: %v", err)
	}
	t.Cleanup(c2.Close)
	testkit.WaitFor(t, 30*time.Second, "replay to drain the spool", func() bool {
		return d.Stats().SpoolRecords == 0 && scrape(t, reg, "kprod_records_replayed_total", "topic", "orders").value == spooled
	})
	testkit.WaitFor(t, 5*time.Second, "spool_records = 0", func() bool { return scrape(t, reg, "kprod_spool_records").value == 0 })
	eq("breaker_state{closed}", scrape(t, reg, "kprod_breaker_state", "state", metrics.BreakerClosed).value, 1)
	eq("breaker_state{open}", scrape(t, reg, "kprod_breaker_state", "state", metrics.BreakerOpen).value, 0)
	if v := scrape(t, reg, "kprod_breaker_transitions_total", "state", metrics.BreakerHalfOpen).value; v < 1 {
		t.Errorf("breaker_transitions_total{half-open} = %v, want at least 1", v)
	}
	eq("records_ambiguous_total = Stats().Ambiguous", scrape(t, reg, "kprod_records_ambiguous_total").value, float64(d.Stats().Ambiguous))
	eq("records_dead_lettered_total{orders} at the end", scrape(t, reg, "kprod_records_dead_lettered_total", "topic", "orders").value, 1)
}
