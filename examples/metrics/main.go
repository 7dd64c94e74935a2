// Command metrics runs three producers on one Prometheus registry for a
// few seconds: a plain producer under steady load (producer="example"), a
// dead-letter producer (dlq.Producer, producer="dlq") and a transactional
// producer (txn.Producer, producer="txn"), each with its own
// metrics.Metrics as hook and observer. It serves the metrics on /metrics
// and a readiness probe on /healthz, scrapes both over HTTP as Prometheus
// would, and prints what it saw. Every panel of
// docs/grafana-dashboard.json gets data from it.
//
//	go run ./examples/metrics                                  # embedded kfake, 5s
//	go run ./examples/metrics --duration 30s --addr 127.0.0.1:9464
//	go run ./examples/metrics --brokers host:9092 --topic events
//
// Its topics (--topic, payloads, payloads.DLT, billing, ledger, and audit
// on kfake) are created with topics.Ensure where missing, so a cluster
// with no topics works. With no --brokers it starts a bare kfake cluster
// in-process and injects faults: writes to "audit" are refused
// (TOPIC_AUTHORIZATION_FAILED), so failures by class show up; "payloads"
// refuses every record as too large, so the dlq producer dead-letters
// them; "billing" is refused for the first half of the run, so those
// records are spooled and replayed. Point Prometheus at --addr and import
// docs/grafana-dashboard.json to watch it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
)

func main() {
	brokers := flag.String("brokers", "", "comma-separated bootstrap brokers; empty starts an in-process kfake cluster")
	topic := flag.String("topic", "events", "topic to load (created if missing, 3 partitions)")
	duration := flag.Duration("duration", 5*time.Second, "how long to produce")
	rate := flag.Int("rate", 20_000, "records per second to send")
	addr := flag.String("addr", "127.0.0.1:0", "listen address for /metrics and /healthz")
	verbose := flag.Bool("v", false, "log producer events to stderr")
	flag.Parse()
	if err := run(*brokers, *topic, *addr, *duration, *rate, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "metrics:", err)
		os.Exit(1)
	}
}

func run(brokers, topic, addr string, duration time.Duration, rate int, verbose bool) error {
	if rate <= 0 || duration <= 0 {
		return errors.New("--rate and --duration must be positive")
	}
	addrs := strings.Split(brokers, ",")
	auditTopic := ""
	var billingFault *kfake.FaultHandle
	if brokers == "" {
		auditTopic = "audit"
		c, err := kfake.NewCluster(kfake.NumBrokers(1)) // bare: the topics are ensured below
		if err != nil {
			return fmt.Errorf("start embedded kfake: %w", err)
		}
		defer c.Close()
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: auditTopic, Err: kerr.TopicAuthorizationFailed, Count: -1})
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: payloadsTopic, Err: kerr.MessageTooLarge, Count: -1})
		billingFault = c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: billingTopic, Err: kerr.TopicAuthorizationFailed, Count: -1})
		addrs = c.ListenAddrs()
		fmt.Printf("embedded kfake at %s; writes to %q and, for half the run, %q are refused (authorization); %q refuses every record as too large\n",
			strings.Join(addrs, ","), auditTopic, billingTopic, payloadsTopic)
	}
	want := []topics.Topic{{Name: topic, Partitions: 3}, {Name: payloadsTopic, Partitions: 3}, {Name: payloadsTopic + ".DLT", Partitions: 3},
		{Name: billingTopic, Partitions: 3}, {Name: ledgerTopic, Partitions: 3}}
	if auditTopic != "" {
		want = append(want, topics.Topic{Name: auditTopic, Partitions: 3})
	}
	if err := ensureTopics(addrs, want); err != nil {
		return err
	}

	log := zap.NewNop()
	if verbose {
		log, _ = zap.NewDevelopment()
	}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "example"}), metrics.WithLogger(log))
	if err != nil {
		return err
	}
	cfg := m.Instrument(presets.HighThroughput())
	cfg.Brokers = addrs
	cfg.ClientID = "metrics-example"
	cfg.Logger = log
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = p.Close(ctx)
		}
	}()

	// /metrics and /healthz on a loopback listener.
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := p.Ping(ctx); err != nil {
			m.SetHealthy(false)
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		m.SetHealthy(true)
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	var served sync.WaitGroup
	served.Go(func() { _ = srv.Serve(ln) })
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		served.Wait()
	}()
	// The dead-letter and transactional producers, each with its own
	// Metrics on the same registry, run beside the load.
	side, err := startSide(reg, addrs, log)
	if err != nil {
		return err
	}
	defer side.close()

	base := "http://" + ln.Addr().String()
	fmt.Printf("serving %s/metrics and %s/healthz; producing %d records/s to %q for %v\n", base, base, rate, topic, duration)

	// Load: rate records per second in 10ms ticks; 1 in 100 goes to the
	// refused topic on kfake.
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var sent, refused atomic.Int64
	perTick := max(1, rate/100)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	report := time.NewTicker(time.Second)
	defer report.Stop()
	value := make([]byte, 200)
	for i := range value {
		value[i] = "abcdefgh"[i%8]
	}
	n := 0
	start := time.Now()
	var sideDone sync.WaitGroup
	sideDone.Go(func() { side.run(ctx, billingFault, duration) })
load:
	for {
		select {
		case <-ctx.Done():
			break load
		case <-report.C:
			s, err := scrape(base + "/metrics")
			if err != nil {
				return err
			}
			fmt.Printf("  t=%-4s sent %-8.0f failed %-5.0f buffered %-6.0f in-flight %.0f\n", time.Since(start).Round(time.Second),
				s.sum("kprod_records_sent_total"), s.sum("kprod_records_failed_total"),
				s.sum("kprod_buffered_records"), s.sum("kprod_produce_requests_in_flight"))
		case <-tick.C:
			for range perTick {
				r := kafkaproducer.Record{Topic: topic, Key: strconv.AppendInt(nil, int64(n%1000), 10), Value: value}
				if auditTopic != "" && n%100 == 99 {
					r.Topic = auditTopic
				}
				n++
				// A context that outlives the load window: records
				// already handed over must not fail because the
				// window closed.
				if err := p.SendAsync(context.Background(), r, nil); err != nil {
					refused.Add(1)
					continue
				}
				sent.Add(1)
			}
		}
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer fcancel()
	if err := p.Flush(fctx); err != nil {
		return err
	}
	sideDone.Wait()
	if err := side.finish(fctx); err != nil {
		return err
	}

	health, err := get(base + "/healthz")
	if err != nil {
		return err
	}
	all, err := scrape(base + "/metrics")
	if err != nil {
		return err
	}
	s := all.producer("example")
	fmt.Printf("\nGET /healthz: %s", health)
	fmt.Println("GET /metrics (selected lines):")
	for _, prefix := range []string{
		"kprod_records_sent_total", "kprod_records_failed_total", "kprod_send_latency_seconds_count",
		"kprod_batch_records_sum", "kprod_batch_records_count", "kprod_produce_requests_total",
		"kprod_batch_uncompressed_bytes_total", "kprod_batch_compressed_bytes_total",
		"kprod_buffered_records", "kprod_up", "kprod_healthy",
	} {
		for _, l := range s.lines(prefix) {
			fmt.Println("  " + l)
		}
	}
	acked := s.sum("kprod_records_sent_total")
	fmt.Printf("\nsummary: handed over %d records (%d refused at once) in %v; acknowledged %.0f (%.0f/s), failed %.0f\n",
		sent.Load(), refused.Load(), duration, acked, acked/duration.Seconds(), s.sum("kprod_records_failed_total"))
	fmt.Printf("  send latency p50 %s, p99 %s; %.1f records per batch; compression ratio %.2f\n",
		fmtSec(s.quantile("kprod_send_latency_seconds", 0.5)), fmtSec(s.quantile("kprod_send_latency_seconds", 0.99)),
		s.sum("kprod_batch_records_sum")/s.sum("kprod_batch_records_count"),
		s.sum("kprod_batch_uncompressed_bytes_total")/s.sum("kprod_batch_compressed_bytes_total"))

	fmt.Println("\nthe dead-letter and transactional producers (selected lines):")
	for _, prefix := range []string{
		"kprod_records_dead_lettered_total", "kprod_records_spooled_total", "kprod_records_replayed_total",
		"kprod_records_ambiguous_total", "kprod_records_set_aside_total", "kprod_spool_records", "kprod_breaker_state",
		"kprod_transactions_total", "kprod_transaction_retries_total", "kprod_transaction_end_duration_seconds_count",
	} {
		for _, l := range all.lines(prefix) {
			fmt.Println("  " + l)
		}
	}
	fmt.Printf("  dlq: %s\n  txn: %d committed, %d aborted by the function\n", side.dlqSummary(), side.committed.Load(), side.aborted.Load())
	if got := all.producer("txn").sum("kprod_transactions_total"); got != float64(side.committed.Load()+side.aborted.Load()) {
		return fmt.Errorf("kprod_transactions_total = %v, the txn producer ran %d", got, side.committed.Load()+side.aborted.Load())
	}

	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	closed = true
	if err := p.Close(cctx); err != nil {
		return err
	}
	if acked+s.sum("kprod_records_failed_total") != float64(sent.Load()) {
		return fmt.Errorf("metrics account for %.0f outcomes, %d records were handed over", acked+s.sum("kprod_records_failed_total"), sent.Load())
	}
	fmt.Println("every record handed over is accounted for in the metrics")
	return nil
}

func get(url string) (string, error) {
	resp, err := http.Get(url) //nolint:noctx // loopback, bounded by the server's own timeouts
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.Status + " " + string(b), nil
}

// exposition is a scraped /metrics page in the text format.
type exposition []string

// producer keeps the lines of one producer (its producer const label).
func (e exposition) producer(name string) exposition {
	var out exposition
	for _, l := range e {
		if strings.Contains(l, `producer="`+name+`"`) {
			out = append(out, l)
		}
	}
	return out
}

func scrape(url string) (exposition, error) {
	page, err := get(url)
	if err != nil {
		return nil, err
	}
	var out exposition
	sc := bufio.NewScanner(strings.NewReader(page))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "kprod_") {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// lines returns the sample lines of exactly the metric name.
func (e exposition) lines(name string) []string {
	var out []string
	for _, l := range e {
		if rest, ok := strings.CutPrefix(l, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			out = append(out, l)
		}
	}
	return out
}

// sum adds up every series of the metric name.
func (e exposition) sum(name string) float64 {
	var s float64
	for _, l := range e.lines(name) {
		if v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64); err == nil {
			s += v
		}
	}
	return s
}

// quantile estimates quantile q of histogram name over all its series
// from the cumulative buckets (the upper bound of the bucket reaching q).
func (e exposition) quantile(name string, q float64) float64 {
	buckets := map[float64]float64{}
	var total float64
	for _, l := range e.lines(name + "_bucket") {
		_, after, ok := strings.Cut(l, `le="`)
		if !ok {
			continue
		}
		leStr, _, _ := strings.Cut(after, `"`)
		v, _ := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		le, err := strconv.ParseFloat(leStr, 64)
		if err != nil {
			continue
		}
		if math.IsInf(le, 1) {
			total += v
			continue
		}
		buckets[le] += v
	}
	best := 0.0
	for le, v := range buckets {
		if v >= q*total && (best == 0 || le < best) {
			best = le
		}
	}
	return best
}

func fmtSec(s float64) string {
	if s == 0 {
		return "n/a"
	}
	return "<= " + time.Duration(s*float64(time.Second)).String()
}
