package metrics_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
)

// TestRecordMetricsMatchSends sends real records to kfake, injects
// broker faults of two classes and refuses one record, then checks every
// record-, batch-, broker- and client-level metric against what was sent.
func TestRecordMetricsMatchSends(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "pay", "secret"})
	reg, m := newMetrics(t)
	p := testkit.Producer(t, c, m.Instrument(presets.Reliable()))
	ctx := testkit.Ctx(t, 30*time.Second)

	const n = 200
	recs := make([]kafkaproducer.Record, n)
	for i := range recs {
		recs[i] = rec("orders", i)
	}
	// Half in a batch, half through SendAsyncErr, whose successes reach
	// the metrics without a Result (OnRecordAcked); Flush waits for them.
	if err := p.SendBatch(ctx, recs[:n/2]).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var asyncErrs atomic.Int64
	for _, r := range recs[n/2:] {
		if err := p.SendAsyncErr(ctx, r, func(err error) {
			if err != nil {
				asyncErrs.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}

	faults := []struct {
		topic string
		err   *kerr.Error
		n     int
		class kafkaproducer.Class
	}{
		{"pay", kerr.MessageTooLarge, 3, kafkaproducer.ClassBadInput},
		{"secret", kerr.TopicAuthorizationFailed, 2, kafkaproducer.ClassAuthorization},
	}
	for _, f := range faults {
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: f.topic, Err: f.err, Count: -1})
		for i := range f.n {
			if _, err := p.Send(ctx, rec(f.topic, i)); kafkaproducer.Classify(err) != f.class {
				t.Fatalf("%s: class %v, want %v (%v)", f.topic, kafkaproducer.Classify(err), f.class, err)
			}
		}
	}
	if _, err := p.Send(ctx, kafkaproducer.Record{Value: []byte("no topic")}); !errors.Is(err, kafkaproducer.ErrNoTopic) {
		t.Fatalf("refused record: %v", err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if asyncErrs.Load() != 0 {
		t.Fatalf("%d SendAsyncErr records failed", asyncErrs.Load())
	}

	eq := func(what string, got, want float64) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	eq("records_sent_total{orders}", scrape(t, reg, "kprod_records_sent_total", "topic", "orders").value, n)
	eq("records_sent_total (all)", scrape(t, reg, "kprod_records_sent_total").value, n)
	lat := scrape(t, reg, "kprod_send_latency_seconds", "topic", "orders")
	eq("send_latency_seconds count", float64(lat.count), n)
	if lat.sum <= 0 || lat.sum > n*30 {
		t.Errorf("send latency sum %v s is implausible", lat.sum)
	}
	for _, f := range faults {
		eq("records_failed_total{"+f.topic+"}", scrape(t, reg, "kprod_records_failed_total", "topic", f.topic, "class", f.class.String()).value, float64(f.n))
	}
	eq("records_failed_total{(none)}", scrape(t, reg, "kprod_records_failed_total", "topic", metrics.NoTopic, "class", "bad_input").value, 1)
	eq("records_failed_total (all)", scrape(t, reg, "kprod_records_failed_total").value, 3+2+1)

	// Only acknowledged batches are observed: their records add up to n.
	waitBatchRecords(t, reg, n)
	br := scrape(t, reg, "kprod_batch_records")
	eq("batch_records sum", br.sum, n)
	if br.count == 0 || br.count > n {
		t.Errorf("batch_records count %d", br.count)
	}
	bb := scrape(t, reg, "kprod_batch_bytes")
	if bb.count != br.count || bb.sum < float64(n*len(recs[0].Value)) {
		t.Errorf("batch_bytes count %d sum %v, want %d batches of at least %d bytes in all", bb.count, bb.sum, br.count, n*len(recs[0].Value))
	}
	ratio := scrape(t, reg, "kprod_batch_compression_ratio")
	if ratio.count != br.count || ratio.sum < float64(ratio.count) { // the values repeat: snappy gains
		t.Errorf("compression ratio count %d sum %v", ratio.count, ratio.sum)
	}
	// The per-broker batch counters agree with the histograms.
	eq("batches_total", scrape(t, reg, "kprod_batches_total", "node_id", "0").value, float64(br.count))
	eq("batch_uncompressed_bytes_total", scrape(t, reg, "kprod_batch_uncompressed_bytes_total").value, bb.sum)
	if c := scrape(t, reg, "kprod_batch_compressed_bytes_total").value; c <= 0 || c >= bb.sum {
		t.Errorf("batch_compressed_bytes_total = %v with %v uncompressed (snappy on repetitive values)", c, bb.sum)
	}
	if v := scrape(t, reg, "kprod_client_connects_total").value; v < 1 {
		t.Errorf("client_connects_total = %v", v)
	}

	// Every record was in a produce request: 1 batch per request at
	// least, 1 request per Send at most (+ the batch).
	reqs := scrape(t, reg, "kprod_produce_requests_total").value
	if reqs < float64(br.count) {
		t.Errorf("produce_requests_total %v < %d acknowledged batches", reqs, br.count)
	}
	dur := scrape(t, reg, "kprod_produce_request_duration_seconds", "node_id", "0")
	if float64(dur.count) != reqs {
		t.Errorf("produce request durations %d, requests %v (no connection errors expected)", dur.count, reqs)
	}
	eq("produce_requests_in_flight", scrape(t, reg, "kprod_produce_requests_in_flight").value, 0)
	eq("produce_request_errors_total", scrape(t, reg, "kprod_produce_request_errors_total").value, 0)
	eq("buffered_records", scrape(t, reg, "kprod_buffered_records").value, 0)
	eq("buffered_bytes", scrape(t, reg, "kprod_buffered_bytes").value, 0)
	eq("up", scrape(t, reg, "kprod_up").value, 1)

	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	eq("up after Close", scrape(t, reg, "kprod_up").value, 0)
	if s := scrape(t, reg, "kprod_client_connects_total"); s.found {
		t.Error("franz-go client metrics still registered after Close")
	}
	eq("records_sent_total after Close", scrape(t, reg, "kprod_records_sent_total").value, n)
}

// TestBufferedAndInFlight holds produce requests at the broker and checks
// the buffer and in-flight gauges while they are held and after Close
// fails them.
func TestBufferedAndInFlight(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	reg, m := newMetrics(t)
	cfg := m.Instrument(presets.LowLatency())
	cfg.Partitioner = kafkaproducer.PartitionerRoundRobin
	p := testkit.Producer(t, c, cfg)
	ctx := testkit.Ctx(t, 30*time.Second)
	if _, err := p.Send(ctx, rec("orders", 0)); err != nil { // connect, load metadata
		t.Fatal(err)
	}

	defer testkit.HangProduce(c)()

	const n = 30
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Add(1)
		if err := p.SendAsync(ctx, rec("orders", i), func(r kafkaproducer.Result) {
			defer wg.Done()
			if r.Err != nil {
				failed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitFor(t, 10*time.Second, "a produce request in flight", func() bool {
		return scrape(t, reg, "kprod_produce_requests_in_flight").value >= 1
	})
	if v := scrape(t, reg, "kprod_produce_requests_in_flight").value; v < 1 || v > 5 {
		t.Fatalf("in flight while held = %v, want 1..5 (MaxInFlight)", v)
	}
	if v := scrape(t, reg, "kprod_buffered_records").value; v != n {
		t.Errorf("buffered_records while held = %v, want %d", v, n)
	}
	if v := scrape(t, reg, "kprod_buffered_bytes").value; v < float64(n*len(rec("orders", 0).Value)) {
		t.Errorf("buffered_bytes while held = %v", v)
	}

	closeCtx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var ce *kafkaproducer.CloseError
	if err := p.Close(closeCtx); !errors.As(err, &ce) || len(ce.Undelivered) != n {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if failed.Load() != n {
		t.Fatalf("%d records failed, want %d", failed.Load(), n)
	}
	// franz-go reports the held request's end (OnBrokerE2E) from the
	// dying connection's goroutine, which can run just after Close
	// returns.
	testkit.WaitFor(t, 5*time.Second, "no produce request in flight after Close", func() bool {
		return scrape(t, reg, "kprod_produce_requests_in_flight").value == 0
	})
	if v := scrape(t, reg, "kprod_records_failed_total", "topic", "orders", "class", "closed").value; v != n {
		t.Errorf("failed{closed} = %v, want %d", v, n)
	}
	if v := scrape(t, reg, "kprod_records_sent_total", "topic", "orders").value; v != 1 {
		t.Errorf("sent = %v, want 1", v)
	}
}

// TestTwoProducersOneRegistry: distinct const labels (by option or by a
// wrapping registerer) keep two producers apart on one registry; the same
// labels twice are refused without registering anything.
func TestTwoProducersOneRegistry(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	reg := prometheus.NewRegistry()
	ma, err := metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "a"}))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := metrics.New(prometheus.WrapRegistererWith(prometheus.Labels{"producer": "b"}, reg))
	if err != nil {
		t.Fatal(err)
	}
	_, err = metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "a"}))
	if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
		t.Fatalf("same labels twice: %v, want AlreadyRegisteredError", err)
	}

	pa := testkit.Producer(t, c, ma.Instrument(presets.LowLatency()))
	pb := testkit.Producer(t, c, mb.Instrument(presets.LowLatency()))
	ctx := testkit.Ctx(t, 30*time.Second)
	for i, tt := range []struct {
		p *kafkaproducer.Producer
		n int
	}{{pa, 10}, {pb, 25}} {
		recs := make([]kafkaproducer.Record, tt.n)
		for j := range recs {
			recs[j] = rec("orders", i*100+j)
		}
		if err := tt.p.SendBatch(ctx, recs).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		producer string
		want     float64
	}{{"a", 10}, {"b", 25}} {
		if v := scrape(t, reg, "kprod_records_sent_total", "producer", tt.producer).value; v != tt.want {
			t.Errorf("producer %s sent = %v, want %v", tt.producer, v, tt.want)
		}
		waitBatchRecords(t, reg, tt.want, "producer", tt.producer)
		if v := scrape(t, reg, "kprod_up", "producer", tt.producer).value; v != 1 {
			t.Errorf("producer %s up = %v", tt.producer, v)
		}
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather with two producers: %v", err)
	}
}

// TestTopicLabelCap: topics past the cap, empty and illegal topics never
// create series of their own.
func TestTopicLabelCap(t *testing.T) {
	topics := []string{"t1", "t2", "t3", "t4"}
	tests := []struct {
		name   string
		max    int
		labels map[string]float64 // topic label -> records_sent_total
	}{
		{"cap 2", 2, map[string]float64{"t1": 1, "t2": 2, metrics.OtherTopic: 3 + 4}},
		{"disabled", 0, map[string]float64{metrics.OtherTopic: 1 + 2 + 3 + 4}},
		{"uncapped", -1, map[string]float64{"t1": 1, "t2": 2, "t3": 3, "t4": 4}},
	}
	c := testkit.Cluster(t, topics)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			reg, m := newMetrics(t, metrics.WithMaxTopics(tt.max), metrics.WithLogger(zap.New(core)))
			p := testkit.Producer(t, c, m.Instrument(presets.LowLatency()))
			ctx := testkit.Ctx(t, 30*time.Second)
			for i, topic := range topics { // topic i gets i+1 records, in order
				for j := range i + 1 {
					if _, err := p.Send(ctx, rec(topic, j)); err != nil {
						t.Fatal(err)
					}
				}
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, mf := range mfs {
				if mf.GetName() == "kprod_records_sent_total" {
					for _, s := range mf.GetMetric() {
						got[s.GetLabel()[0].GetValue()] = s.GetCounter().GetValue()
					}
				}
			}
			for label, want := range tt.labels {
				if got[label] != want {
					t.Errorf("topic=%q: %v, want %v", label, got[label], want)
				}
			}
			for label, v := range got {
				if _, ok := tt.labels[label]; !ok && v != 0 {
					t.Errorf("unexpected series topic=%q (%v)", label, v)
				}
			}
			if warned := logs.FilterMessageSnippet("topic label cap reached").Len(); (tt.max > 0) != (warned == 1) {
				t.Errorf("cap warnings logged: %d", warned)
			}
			// Illegal topic names fail and are counted as invalid, not
			// as a series each.
			bad := strings.Repeat("x", 300)
			if _, err := p.Send(ctx, kafkaproducer.Record{Topic: bad, Value: []byte("v")}); err == nil {
				t.Fatal("a 300-character topic was accepted")
			}
			if v := scrape(t, reg, "kprod_records_failed_total", "topic", metrics.InvalidTopic).value; v != 1 {
				t.Errorf("failed{topic=%q} = %v, want 1", metrics.InvalidTopic, v)
			}
		})
	}
}

// TestRecorders drives the methods other packages feed (dead letters,
// spool, breaker, transactions, health) and checks the scraped values.
func TestRecorders(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	reg, m := newMetrics(t, metrics.WithLogger(zap.New(core)))
	m.OnDeadLettered("orders")
	m.OnDeadLettered("orders")
	m.OnSpooled("orders")
	m.OnSpooled("pay")
	m.OnSpooled("pay")
	m.OnReplayed("pay")
	m.OnSetAside("orders", metrics.SetAsideRejected)
	m.OnSetAside("", metrics.SetAsideQuarantined) // a spool entry whose topic is unknown
	m.OnSetAside("pay", "shrug")
	m.OnSpoolSize(42, 4096)
	// "bogus" counts as open (one more transition) and is logged once.
	for _, s := range []string{metrics.BreakerClosed, metrics.BreakerOpen, metrics.BreakerOpen, "half_open", metrics.BreakerClosed, "bogus", "bogus", metrics.BreakerClosed} {
		m.OnBreakerState(s)
	}
	m.OnAmbiguous("pay")
	m.OnTxnAttempt("a-0", txn.OutcomeCommitted, "", false, 20*time.Millisecond)
	m.OnTxnAttempt("a-0", txn.OutcomeCommitted, "", false, 40*time.Millisecond)
	m.OnTxnAttempt("a-1", txn.OutcomeAborted, "abortable", true, 5*time.Millisecond)
	m.OnTxnAttempt("a-1", txn.OutcomeAborted, "fatal", false, 0) // no EndTxn sent: not timed
	m.OnTxnAttempt("a-1", txn.OutcomeUnknown, "timeout", false, time.Second)
	m.OnTxnAttempt("a-1", "exploded", "", false, time.Second)
	m.OnTxnAttempt("a-1", "commit", "", false, time.Second) // not an outcome txn reports
	m.SetHealthy(true)

	tests := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"kprod_records_dead_lettered_total", []string{"topic", "orders"}, 2},
		{"kprod_records_spooled_total", []string{"topic", "orders"}, 1},
		{"kprod_records_spooled_total", []string{"topic", "pay"}, 2},
		{"kprod_records_replayed_total", []string{"topic", "pay"}, 1},
		{"kprod_records_set_aside_total", []string{"topic", "orders", "reason", "rejected"}, 1},
		{"kprod_records_set_aside_total", []string{"topic", metrics.NoTopic, "reason", "quarantined"}, 1},
		{"kprod_records_set_aside_total", []string{"topic", "pay", "reason", "other"}, 1},
		{"kprod_spool_records", nil, 42},
		{"kprod_spool_bytes", nil, 4096},
		{"kprod_breaker_state", []string{"state", "closed"}, 1},
		{"kprod_breaker_state", []string{"state", "open"}, 0},
		{"kprod_breaker_state", []string{"state", "half-open"}, 0},
		{"kprod_breaker_transitions_total", []string{"state", "open"}, 2},
		{"kprod_breaker_transitions_total", []string{"state", "half-open"}, 1},
		{"kprod_breaker_transitions_total", []string{"state", "closed"}, 3},
		{"kprod_records_ambiguous_total", []string{"topic", "pay"}, 1},
		{"kprod_transactions_total", []string{"outcome", "committed"}, 2},
		{"kprod_transactions_total", []string{"outcome", "aborted"}, 2},
		{"kprod_transactions_total", []string{"outcome", "unknown"}, 3},
		{"kprod_transaction_retries_total", nil, 1},
		{"kprod_healthy", nil, 1},
		{"kprod_up", nil, 0}, // no client yet
	}
	for _, tt := range tests {
		t.Run(tt.name+strings.Join(tt.labels, "="), func(t *testing.T) {
			s := scrape(t, reg, tt.name, tt.labels...)
			if !s.found || s.value != tt.want {
				t.Errorf("= %v (found %v), want %v", s.value, s.found, tt.want)
			}
		})
	}
	commit := scrape(t, reg, "kprod_transaction_end_duration_seconds", "outcome", "committed")
	if commit.count != 2 || commit.sum < 0.0599 || commit.sum > 0.0601 {
		t.Errorf("commit latency count %d sum %v, want 2 and 0.06", commit.count, commit.sum)
	}
	m.SetHealthy(false)
	if v := scrape(t, reg, "kprod_healthy").value; v != 0 {
		t.Errorf("healthy after SetHealthy(false) = %v", v)
	}
	if n := logs.FilterMessage("unknown transaction outcome counted as unknown").Len(); n != 1 {
		t.Errorf("odd transaction outcomes logged %d times, want once", n)
	}
	if al := scrape(t, reg, "kprod_transaction_end_duration_seconds", "outcome", "aborted"); al.count != 1 {
		t.Errorf("abort latency count %d, want 1 (the attempt without EndTxn is not timed)", al.count)
	}
	if logs.FilterMessage("circuit breaker state changed").Len() != 6 || logs.FilterMessage("unknown circuit-breaker state counted as open").Len() != 1 {
		t.Errorf("breaker logs: %v", logs.All())
	}
	for _, e := range logs.FilterMessage("circuit breaker state changed").All() {
		if e.ContextMap()["to"] == metrics.BreakerOpen && e.Level != zap.WarnLevel {
			t.Errorf("breaker opening logged at %v", e.Level)
		}
	}

	m.Unregister()
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Errorf("%d families left after Unregister", len(mfs))
	}
}

func TestNewRefusesNilRegisterer(t *testing.T) {
	if _, err := metrics.New(nil); !errors.Is(err, metrics.ErrNoRegisterer) {
		t.Fatalf("New(nil): %v", err)
	}
}

// TestNamesLintAndDocumented runs promlint over every family a busy
// producer exposes (with every recorder fed), checks kprom's misnamed
// gauges are gone, and that docs/metrics.md documents every family.
func TestNamesLintAndDocumented(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	reg, m := newMetrics(t)
	p := testkit.Producer(t, c, m.Instrument(presets.HighThroughput()))
	ctx := testkit.Ctx(t, 30*time.Second)
	recs := make([]kafkaproducer.Record, 500)
	for i := range recs {
		recs[i] = rec("orders", i)
	}
	if err := p.SendBatch(ctx, recs).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: 1})
	_, _ = p.Send(ctx, rec("orders", 1))
	m.OnDeadLettered("orders")
	m.OnSpooled("orders")
	m.OnReplayed("orders")
	m.OnDLTReplayed("orders")
	m.OnDLTFailedAgain("orders")
	m.OnSetAside("orders", metrics.SetAsideRejected)
	m.OnSpoolSize(1, 1)
	m.OnBreakerState(metrics.BreakerOpen)
	m.OnAmbiguous("orders")
	m.OnTxnAttempt("a-0", txn.OutcomeCommitted, "", true, time.Millisecond)
	m.SetHealthy(true)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("promlint: %s: %s", pr.Metric, pr.Text)
	}

	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, mm := range regexp.MustCompile("(?m)^\\| `(kprod_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[mm[1]] = true
	}
	if len(mfs) < 30 {
		t.Errorf("only %d families exposed", len(mfs))
	}
	// And the other way round: every documented metric is fed by kprod
	// (here, by a busy producer and every observer method), except
	// kprom's that only an event this test does not cause creates.
	onlyOnEvent := map[string]string{
		"kprod_client_connect_errors_total":      "a failed connection",
		"kprod_client_write_errors_total":        "a failed write",
		"kprod_client_read_errors_total":         "a failed read",
		"kprod_client_disconnects_total":         "a closed connection",
		"kprod_client_request_throttled_seconds": "broker throttling",
	}
	exposed := map[string]bool{}
	for _, mf := range mfs {
		exposed[mf.GetName()] = true
	}
	for name := range documented {
		if _, ok := onlyOnEvent[name]; !exposed[name] && !ok {
			t.Errorf("%s is documented but nothing fed it", name)
		}
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.Contains(name, "buffered_produce") || strings.Contains(name, "buffered_fetch") {
			t.Errorf("kprom's misnamed gauge %s is exposed", name)
		}
		if !documented[name] {
			t.Errorf("%s is not in the docs/metrics.md reference table", name)
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "key" || lp.GetName() == "partition" {
					t.Errorf("%s has an unbounded label %q", name, lp.GetName())
				}
			}
		}
	}
}

// TestGrafanaDashboard: docs/grafana-dashboard.json is valid JSON, every
// query names only documented metrics, and the panels cover what an
// operator needs.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, mm := range regexp.MustCompile("(?m)^\\| `(kprod_[a-z0-9_]+)`").FindAllStringSubmatch(string(doc), -1) {
		documented[mm[1]] = true
	}
	used := map[string]bool{}
	name := regexp.MustCompile(`kprod_[a-z0-9_]+`)
	suffix := regexp.MustCompile(`_(bucket|sum|count)$`)
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced query %s", p.Title, tg.Expr)
			}
			for _, n := range name.FindAllString(tg.Expr, -1) {
				base := n
				if !documented[base] {
					base = suffix.ReplaceAllString(n, "")
				}
				if !documented[base] {
					t.Errorf("panel %q queries %s, which is not documented", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for _, must := range []string{
		"kprod_records_sent_total", "kprod_send_latency_seconds", "kprod_records_failed_total",
		"kprod_produce_requests_total", "kprod_produce_request_errors_total", "kprod_batch_records",
		"kprod_batch_compressed_bytes_total", "kprod_records_dead_lettered_total",
		"kprod_spool_records", "kprod_breaker_state", "kprod_transactions_total", "kprod_up", "kprod_healthy",
	} {
		if !used[must] {
			t.Errorf("dashboard does not show %s", must)
		}
	}
}

// TestOneMetricsTwoProducers is the misuse the docs warn about: record
// and batch counts add up across both producers, the buffer gauges and
// kprom's metrics follow the first, and the second is logged.
func TestOneMetricsTwoProducers(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	core, logs := observer.New(zap.WarnLevel)
	reg, m := newMetrics(t, metrics.WithLogger(zap.New(core)))
	cfg := m.Instrument(presets.LowLatency())
	p1 := testkit.Producer(t, c, cfg)
	p2 := testkit.Producer(t, c, cfg)
	ctx := testkit.Ctx(t, 30*time.Second)
	for i, p := range []*kafkaproducer.Producer{p1, p2, p2} {
		if _, err := p.Send(ctx, rec("orders", i)); err != nil {
			t.Fatal(err)
		}
	}
	if v := scrape(t, reg, "kprod_records_sent_total").value; v != 3 {
		t.Errorf("sent = %v, want 3", v)
	}
	waitBatchRecords(t, reg, 3)
	if logs.FilterMessageSnippet("already instrument another open client").Len() != 1 {
		t.Errorf("misuse not logged: %v", logs.All())
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}
