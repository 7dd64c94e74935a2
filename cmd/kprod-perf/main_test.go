package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	err := run(ctx, args, &out)
	return out.String(), err
}

func runJSON(t *testing.T, args ...string) result {
	t.Helper()
	out, err := runArgs(t, append(args, "--json")...)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	var r result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json output is not one JSON object: %v\n%s", err, out)
	}
	return r
}

func checkResult(t *testing.T, r result, n int64) {
	t.Helper()
	if r.Records != n || r.Acked != n || r.Errors != 0 {
		t.Fatalf("records %d acked %d errors %d, want %d, %d, 0 (first error %q)", r.Records, r.Acked, r.Errors, n, n, r.FirstError)
	}
	lat := []float64{r.P50Ms, r.P95Ms, r.P99Ms, r.P999Ms, r.MaxMs}
	if lat[0] <= 0 || !slices.IsSorted(lat) {
		t.Fatalf("latencies p50, p95, p99, p99.9, max = %v: want positive and ordered", lat)
	}
	if r.AvgMs <= 0 || r.AvgMs > r.MaxMs {
		t.Fatalf("avg latency %v ms, max %v ms", r.AvgMs, r.MaxMs)
	}
	if r.RecordsPerSec <= 0 || (r.MBPerSec > 0) != (r.RecordSize > 0) || r.ElapsedSec <= 0 {
		t.Fatalf("rates %v records/s, %v MB/s over %vs", r.RecordsPerSec, r.MBPerSec, r.ElapsedSec)
	}
}

var finalLine = regexp.MustCompile(`(?m)^2000 records sent, [0-9.]+ records/sec \([0-9.]+ MB/sec\), [0-9.]+ ms avg latency, [0-9.]+ ms max latency, ` +
	`[0-9.]+ ms 50th, [0-9.]+ ms 95th, [0-9.]+ ms 99th, [0-9.]+ ms 99.9th, 0 errors\.$`)

var progressLine = regexp.MustCompile(`(?m)^[0-9]+ records sent, [0-9.]+ records/sec \([0-9.]+ MB/sec\), [0-9.]+ ms avg latency, [0-9.]+ ms max latency\.$`)

func TestRunDefaultPrintsProgressAndSummary(t *testing.T) {
	// 2000 records at 5000/s take 0.4s: several 50ms progress windows.
	out, err := runArgs(t, "--num-records", "2000", "--throughput", "5000", "--report-interval", "50ms")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !finalLine.MatchString(out) {
		t.Fatalf("no final summary line in:\n%s", out)
	}
	if n := len(progressLine.FindAllString(out, -1)); n < 3 {
		t.Fatalf("%d progress lines, want at least 3:\n%s", n, out)
	}
	if !strings.Contains(out, "preset reliable: linger 5ms, compression snappy") {
		t.Fatalf("output does not name the preset's settings:\n%s", out)
	}
}

func TestRunJSON(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"keyed", []string{"--num-records", "2000"}},
		{"unkeyed high-throughput", []string{"--num-records", "2000", "--keys", "0", "--preset", "high-throughput", "--partitions", "2"}},
		{"empty values", []string{"--num-records", "2000", "--record-size", "0", "--preset", "low-latency"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runJSON(t, tt.args...)
			checkResult(t, r, 2000)
		})
	}
}

func TestRunThrottles(t *testing.T) {
	// 1000 records at 4000/s cannot finish in less than 0.25s.
	r := runJSON(t, "--num-records", "1000", "--throughput", "4000")
	checkResult(t, r, 1000)
	if r.ElapsedSec < 0.24 || r.RecordsPerSec > 4200 {
		t.Fatalf("throttled to 4000/s but ran %v records/s over %vs", r.RecordsPerSec, r.ElapsedSec)
	}
}

func TestRunCompare(t *testing.T) {
	out, err := runArgs(t, "--compare", "--num-records", "2000")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	header := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "records/s") && strings.Contains(l, "p99.9 ms") })
	if header < 0 || len(lines)-header != 4 {
		t.Fatalf("want a header and three rows at the end:\n%s", out)
	}
	col := strings.Index(lines[header], "errors") + len("errors")
	for i, name := range comparePresets {
		row := lines[header+1+i]
		if f := strings.Fields(row); len(f) != 10 || f[0] != name || f[9] != "0" {
			t.Fatalf("row %d = %q, want 10 columns for %s with 0 errors", i, row, name)
		}
		if len(row) != col {
			t.Fatalf("row %q is not aligned with the header %q", row, lines[header])
		}
	}

	var cmp struct{ Runs []result }
	out, err = runArgs(t, "--compare", "--num-records", "500", "--json")
	if err != nil {
		t.Fatalf("run --json: %v\n%s", err, out)
	}
	if err := json.Unmarshal([]byte(out), &cmp); err != nil {
		t.Fatalf("--compare --json: %v\n%s", err, out)
	}
	if len(cmp.Runs) != 3 {
		t.Fatalf("%d runs, want 3", len(cmp.Runs))
	}
	for i, r := range cmp.Runs {
		if r.Preset != comparePresets[i] {
			t.Fatalf("run %d is %q, want %q", i, r.Preset, comparePresets[i])
		}
		checkResult(t, r, 500)
	}
}

func TestRunTransactional(t *testing.T) {
	c := testkit.Cluster(t, []string{"perf"})
	addrs := c.ListenAddrs()
	r := runJSON(t, "--bootstrap-server", strings.Join(addrs, ","), "--transactional", "--transaction-size", "300", "--num-records", "2000")
	checkResult(t, r, 2000)
	if r.Transactions != 7 { // six of 300 and one of 200
		t.Fatalf("%d transactions committed, want 7", r.Transactions)
	}
	// A read_committed consumer must see exactly the 2000 records, none
	// missing and none twice.
	testkit.ConsumeExactly(t, addrs, "perf", 2000, true, 30*time.Second, time.Second)
}

func TestRunProducerProp(t *testing.T) {
	out, err := runArgs(t, "--num-records", "2000", "--producer-prop", "compression=zstd", "--producer-prop", "linger.ms=1",
		"--producer-prop", "IDEMPOTENCE=false", "--producer-prop", "MAX_IN_FLIGHT=1")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "linger 1ms, compression zstd") || !strings.Contains(out, "max in flight 1") {
		t.Fatalf("the overrides do not show in the settings line:\n%s", out)
	}
	if !finalLine.MatchString(out) {
		t.Fatalf("no final summary line in:\n%s", out)
	}
}

func TestRunFailsWhenRecordsFail(t *testing.T) {
	// A 2 MB value exceeds the 1 MB batch limit: franz-go fails each
	// record at once with MESSAGE_TOO_LARGE.
	out, err := runArgs(t, "--num-records", "3", "--record-size", "2000000", "--json")
	if err == nil || !strings.Contains(err.Error(), "3 of 3 records failed") {
		t.Fatalf("run = %v, want an error counting 3 failed records", err)
	}
	var ue usageError
	if errors.As(err, &ue) {
		t.Fatalf("failed records reported as a usage error: %v", err)
	}
	var r result
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil || r.Errors != 3 || r.Acked != 0 || r.FirstError == "" {
		t.Fatalf("json %v: %+v", jerr, r)
	}
}

// On a broker with no topics, kprod-perf creates its topic with the
// asked partitions, as Kafka's perf test does on an auto-creating broker.
func TestRunCreatesTopic(t *testing.T) {
	c := testkit.Cluster(t, nil)
	addr := strings.Join(c.ListenAddrs(), ",")
	out, err := runArgs(t, "--bootstrap-server", addr, "--topic", "perfbar", "--num-records", "2000", "--partitions", "4")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "topic: created perfbar; existing none") || !finalLine.MatchString(out) {
		t.Fatalf("output:\n%s", out)
	}
	if n := partitionsOf(t, c.ListenAddrs(), "perfbar"); n != 4 {
		t.Fatalf("perfbar has %d partitions, want 4", n)
	}
	// A second run uses the topic as it is and says how it differs.
	out, err = runArgs(t, "--bootstrap-server", addr, "--topic", "perfbar", "--num-records", "2000", "--partitions", "8")
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "topic: created none; existing perfbar; drift perfbar: 4 partitions, want 8") {
		t.Fatalf("output:\n%s", out)
	}
	// Without --partitions, the broker's default (kfake: 10); --json
	// prints only the result.
	r := runJSON(t, "--bootstrap-server", addr, "--topic", "perfdefault", "--num-records", "2000", "--replication-factor", "1")
	checkResult(t, r, 2000)
	if n := partitionsOf(t, c.ListenAddrs(), "perfdefault"); n != 10 {
		t.Fatalf("perfdefault has %d partitions, want the broker's 10", n)
	}
	// A replication factor the cluster cannot meet is refused by it,
	// naming the topic, before anything is sent.
	_, err = runArgs(t, "--bootstrap-server", addr, "--topic", "perfwide", "--num-records", "10", "--replication-factor", "3")
	if err == nil || !strings.Contains(err.Error(), `"perfwide"`) || !strings.Contains(err.Error(), "INVALID_REPLICATION_FACTOR") {
		t.Fatalf("want the broker's refusal naming perfwide, got %v", err)
	}
}

func partitionsOf(t *testing.T, addrs []string, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tds, err := kadm.NewClient(cl).ListTopics(testkit.Ctx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	return len(tds[topic].Partitions)
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown preset", []string{"--preset", "fastest"}, `unknown preset "fastest"`},
		{"unknown prop", []string{"--producer-prop", "bogus=1"}, `unknown producer property "bogus"`},
		{"prop without value", []string{"--producer-prop", "linger"}, "not key=value"},
		{"bad prop value", []string{"--producer-prop", "linger=soon"}, "LINGER"},
		{"bad java ms", []string{"--producer-prop", "linger.ms=5s"}, "milliseconds"},
		{"bad codec named with its property", []string{"--producer-prop", "compression=brotli"}, "COMPRESSION=\"brotli\": unknown codec"},
		{"prop rejected by Validate", []string{"--producer-prop", "batch.size=10"}, "BatchMaxBytes"},
		{"brokers prop", []string{"--producer-prop", "brokers=x:1"}, "--bootstrap-server"},
		{"txn id without txn", []string{"--producer-prop", "transactional.id=x"}, "needs --transactional"},
		{"zero records", []string{"--num-records", "0"}, "--num-records must be positive"},
		{"negative records", []string{"--num-records", "-5"}, "--num-records must be positive"},
		{"negative size", []string{"--record-size", "-1"}, "--record-size must not be negative"},
		{"zero throughput", []string{"--throughput", "0"}, "--throughput"},
		{"negative keys", []string{"--keys", "-1"}, "--keys"},
		{"txn size alone", []string{"--transaction-size", "10"}, "needs --transactional"},
		{"zero txn size", []string{"--transactional", "--transaction-size", "0"}, "--transaction-size must be positive"},
		{"compare and preset", []string{"--compare", "--preset", "reliable"}, "drop --preset"},
		{"negative replication factor", []string{"--replication-factor", "-1"}, "--replication-factor must be between"},
		{"unknown flag", []string{"--acks", "all"}, "not defined"},
		{"stray argument", []string{"perf"}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runArgs(t, tt.args...)
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want a usage error mentioning %q", tt.args, err, tt.want)
			}
			if out != "" {
				t.Fatalf("a bad command line printed %q", out)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	out, err := runArgs(t, "-h")
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out, "-producer-prop") {
		t.Fatalf("-h = %v, %q", err, out)
	}
}

func TestPropsSet(t *testing.T) {
	tests := []struct {
		in, name, value string
	}{
		{"LINGER=5ms", "LINGER", "5ms"},
		{"linger=5ms", "LINGER", "5ms"},
		{"max.in.flight=1", "MAX_IN_FLIGHT", "1"},
		{"retry-backoff-max=2s", "RETRY_BACKOFF_MAX", "2s"},
		{"linger.ms=7", "LINGER", "7ms"},
		{"compression.type=zstd", "COMPRESSION", "zstd"},
		{"batch.size=16384", "BATCH_MAX_BYTES", "16384"},
		{"client.id=a=b", "CLIENT_ID", "a=b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p := props{}
			if err := p.Set(tt.in); err != nil {
				t.Fatal(err)
			}
			if got := p[tt.name]; got != tt.value || len(p) != 1 {
				t.Fatalf("Set(%q) = %v, want %s=%s", tt.in, p, tt.name, tt.value)
			}
		})
	}
	p := props{}
	for _, s := range []string{"linger=5ms", "compression=zstd", "acks=leader", "idempotence=false"} {
		if err := p.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := p.apply(kafkaproducer.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Linger != 5*time.Millisecond || cfg.Compression != kafkaproducer.CompressionZstd ||
		cfg.Acks != kafkaproducer.AcksLeader || !cfg.DisableIdempotence {
		t.Fatalf("apply gave %+v", cfg)
	}
}

func FuzzPropsSet(f *testing.F) {
	for _, s := range []string{"linger=5ms", "linger.ms=5", "bogus=1", "=", "a", "LINGER.MS=x", "brokers=a:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p := props{}
		if err := p.Set(s); err != nil {
			return
		}
		for name := range p {
			if !slices.Contains(kafkaproducer.EnvVars(), name) || name == "BROKERS" {
				t.Fatalf("Set(%q) accepted %q", s, name)
			}
		}
		_, _ = p.apply(kafkaproducer.Config{}) // must not panic
	})
}

func TestPacer(t *testing.T) {
	t0 := time.Unix(1_000, 0)
	tests := []struct {
		name      string
		rate      float64
		elapsed   time.Duration
		record    int64
		wantSleep time.Duration
	}{
		{"unthrottled", -1, 0, 1_000_000, 0},
		{"first record", 100, 0, 0, 0},
		{"ahead", 100, 0, 50, 500 * time.Millisecond},
		{"partly ahead", 100, 200 * time.Millisecond, 50, 300 * time.Millisecond},
		{"less than a millisecond ahead", 100, 499500 * time.Microsecond, 50, 0},
		{"behind", 100, time.Second, 50, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var slept time.Duration
			p := pacer{
				rate:  tt.rate,
				start: t0,
				now:   func() time.Time { return t0.Add(tt.elapsed) },
				sleep: func(_ context.Context, d time.Duration) error { slept += d; return nil },
			}
			if err := p.wait(context.Background(), tt.record); err != nil {
				t.Fatal(err)
			}
			if slept != tt.wantSleep {
				t.Fatalf("slept %v, want %v", slept, tt.wantSleep)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	sorted := make([]int64, 1000)
	for i := range sorted {
		sorted[i] = int64(i + 1)
	}
	tests := []struct {
		p    float64
		want int64
	}{{0.5, 500}, {0.95, 950}, {0.99, 990}, {0.999, 999}, {1, 1000}, {0, 1}}
	for _, tt := range tests {
		if got := percentile(sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%v) = %d, want %d", tt.p, got, tt.want)
		}
	}
	if got := percentile([]int64{7}, 0.999); got != 7 {
		t.Errorf("percentile of one value = %d", got)
	}
}
