// Command kbench is kprod's cross-client producer benchmark: the same
// workload through kprod (each preset, bytes and typed JSON sends), raw
// franz-go configured identically, sarama, segmentio/kafka-go and
// confluent-kafka-go, against one kfake broker running in its own process.
//
// It lives in its own Go module so that the competitor clients never enter
// kprod's dependencies. scripts/bench-compare.sh builds and starts the
// broker, runs kbench and writes docs/BENCHMARKS.md and
// docs/benchmarks.svg:
//
//	scripts/bench-compare.sh
//	go run . -brokers 127.0.0.1:19092 -sections throughput -rounds 1 -records 200000
//	go run . -render   # rewrite the doc and the chart from results.json
//
// Each measurement runs in a child process (kbench re-executes itself
// with -child), so one client's threads, buffers and garbage never bill
// the next; the parent interleaves the cases round by round and reports
// medians. kbench is a benchmark program, not a library: nothing in it is
// meant for concurrent use from outside.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbench:", err)
		os.Exit(1)
	}
}

type options struct {
	brokers     string
	topic       string
	partitions  int
	records     int
	rounds      int
	seq         int
	seqTime     time.Duration
	poolRecords int
	poolTime    time.Duration
	tuneRecords int
	pairRounds  int
	sections    string
	results     string
	md          string
	svg         string
	notes       string
	profileDir  string
	render      bool
	child       string
	ab          string
	abCases     string
}

func run(ctx context.Context, args []string) error {
	var o options
	fs := flag.NewFlagSet("kbench", flag.ContinueOnError)
	fs.StringVar(&o.brokers, "brokers", "127.0.0.1:19092", "the kfake broker (cmd/kfake-broker) to write to")
	fs.StringVar(&o.topic, "topic", "bench", "topic; recreated before every throughput run to bound the broker's memory")
	fs.IntVar(&o.partitions, "partitions", 6, "partitions of the recreated topic")
	fs.IntVar(&o.records, "records", 1_000_000, "records per throughput run")
	fs.IntVar(&o.rounds, "rounds", 3, "interleaved rounds; medians are reported")
	fs.IntVar(&o.seq, "seq", 20_000, "sequential sends per latency run")
	fs.DurationVar(&o.seqTime, "seq-time", 6*time.Second, "cap on one latency run")
	fs.IntVar(&o.poolRecords, "pool-records", 40_000, "sends per concurrency run")
	fs.DurationVar(&o.poolTime, "pool-time", 3*time.Second, "cap on one concurrency run")
	fs.IntVar(&o.tuneRecords, "tune-records", 500_000, "records per preset-tuning run")
	fs.IntVar(&o.pairRounds, "pair-rounds", 40, "interleaved rounds of the kprod against franz-go pairs the targets are read from")
	fs.StringVar(&o.sections, "sections", "throughput,pair,latency,pool,tune,profile", "sections to run, comma-separated")
	fs.StringVar(&o.results, "results", "results.json", "raw results, written after every run and read by -render")
	fs.StringVar(&o.md, "md", "../docs/BENCHMARKS.md", "Markdown report to write")
	fs.StringVar(&o.svg, "svg", "../docs/benchmarks.svg", "SVG chart to write")
	fs.StringVar(&o.notes, "notes", "notes.md", "hand-written analysis appended to the report (optional)")
	fs.StringVar(&o.profileDir, "profile-dir", "profiles", "where the profile section writes CPU profiles")
	fs.BoolVar(&o.render, "render", false, "only rewrite the report from -results")
	fs.StringVar(&o.child, "child", "", "internal: run one measurement described by this JSON spec")
	fs.StringVar(&o.ab, "ab", "", "A/B two builds: run -ab-cases through this binary and through the kbench at this path, -pair-rounds paired rounds, print the ratios and save to -results; the report is not rewritten")
	fs.StringVar(&o.abCases, "ab-cases", "kprod-err+metrics/high-throughput,kprod-bytes+metrics/high-throughput", "cases of an -ab run, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.child != "" {
		return runChild(ctx, o.child)
	}
	if o.render {
		rs, err := loadResults(o.results)
		if err != nil {
			return err
		}
		return writeReport(rs, o)
	}
	return runParent(ctx, o)
}

// runChild runs one spec and prints its Result as JSON on stdout.
func runChild(ctx context.Context, js string) error {
	var s Spec
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return fmt.Errorf("-child: %w", err)
	}
	w := newWorkload(s)
	r := Result{Case: s.Case, Mode: s.Mode}
	client, cfg := splitCase(s.Case)
	var err error
	switch client {
	case "kprod-bytes":
		err = runKprod(ctx, w, styleBytes, cfg, false, &r)
	case "kprod-json":
		err = runKprod(ctx, w, styleJSON, cfg, false, &r)
	case "kprod-err":
		err = runKprod(ctx, w, styleErr, cfg, false, &r)
	case "kprod-bytes+metrics":
		err = runKprod(ctx, w, styleBytes, cfg, true, &r)
	case "kprod-err+metrics":
		err = runKprod(ctx, w, styleErr, cfg, true, &r)
	case "franz-go":
		err = runFranz(ctx, w, cfg, franzBare, &r)
	case "franz-go+result":
		err = runFranz(ctx, w, cfg, franzResult, &r)
	case "franz-go+kprom":
		err = runFranz(ctx, w, cfg, franzKprom, &r)
	case "sarama":
		err = runSarama(ctx, w, cfg, &r)
	case "kafka-go":
		err = runKafkaGo(ctx, w, cfg, &r)
	case "confluent":
		err = runConfluent(ctx, w, cfg, &r)
	default:
		err = fmt.Errorf("unknown client %q", client)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", s.Case, s.Mode, err)
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// startProfile starts a CPU profile into path (nothing when empty) and
// returns an idempotent stop, which also writes the allocation profile to
// path+".allocs".
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			pprof.StopCPUProfile()
			f.Close()
			// The allocation profile beside it (sampled, since the
			// process started).
			if af, err := os.Create(path + ".allocs"); err == nil {
				_ = pprof.Lookup("allocs").WriteTo(af, 0)
				af.Close()
			}
		}
	}, nil
}

// Run is everything one kbench invocation measured.
type Run struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	GoVer    string    `json:"go_version"`
	CPU      string    `json:"cpu"`
	Cores    int       `json:"cores"`
	LoadAvg  []string  `json:"load_avg"` // at start and end
	Records  int       `json:"records"`
	Rounds   int       `json:"rounds"`
	Seq      int       `json:"seq"`
	// PairRounds is how many rounds the pair section ran.
	PairRounds int      `json:"pair_rounds,omitempty"`
	Results    []Result `json:"results"`
	// ProfileDiff is `go tool pprof -top -diff_base franz kprod` output.
	ProfileDiff string `json:"profile_diff,omitempty"`
	ProfileKprd string `json:"profile_kprod,omitempty"`
	ProfileFrnz string `json:"profile_franz,omitempty"`
	ProfileRecs int    `json:"profile_records,omitempty"`
}

// The cases of each section.
var (
	throughputCases = []string{
		"kprod-bytes/high-throughput", "kprod-bytes/reliable", "kprod-bytes/low-latency",
		"kprod-err/high-throughput", "kprod-err/reliable", "kprod-err/low-latency",
		"kprod-json/high-throughput", "kprod-json/reliable", "kprod-json/low-latency",
		"franz-go/high-throughput", "franz-go/reliable", "franz-go/low-latency",
		"sarama/best", "sarama/reliable",
		"kafka-go/best", "kafka-go/reliable",
		"confluent/best", "confluent/reliable",
	}
	latencyCases = []string{
		"kprod-bytes/low-latency", "franz-go/low-latency", "kprod-json/low-latency",
		"kprod-bytes/reliable", "franz-go/reliable",
		"sarama/latency", "kafka-go/latency", "confluent/latency",
	}
	// pairPresets are the presets of the pair section, the two the
	// production setup uses: each round runs pairClients back to back
	// for each. The first three are the production setup (metrics
	// on, kprod's metrics package against kprom and a prometheus
	// promise), the rest bare sends.
	pairPresets = []string{"high-throughput", "reliable"}
	pairClients = []string{
		"franz-go+kprom", "kprod-err+metrics", "kprod-bytes+metrics",
		"franz-go", "kprod-err", "franz-go+result", "kprod-bytes",
	}
	poolPresets    = []string{"low-latency", "reliable"}
	poolGoroutines = []int{1, 8, 64}
	poolSizes      = []int{1, 4}
	// tuneVariants are overrides of the high-throughput preset.
	tuneVariants = []map[string]string{
		{},
		{"COMPRESSION": "none"},
		{"COMPRESSION": "snappy"},
		{"COMPRESSION": "zstd"},
		{"LINGER": "none"},
		{"LINGER": "20ms"},
		{"COMPRESSION": "none", "LINGER": "none"},
		{"MAX_BUFFERED_RECORDS": "1000000"},
		{"MAX_BUFFERED_RECORDS": "250000"},
		{"MAX_BUFFERED_RECORDS": "30000"},
		{"BATCH_MAX_BYTES": "262144"},
	}
)

// variantName prints tuning overrides in a stable order.
func variantName(t map[string]string) string {
	if len(t) == 0 {
		return "preset as is (lz4, linger 5ms, 100k records / 256 MiB buffer)"
	}
	keys := []string{"COMPRESSION", "LINGER", "BATCH_MAX_BYTES", "MAX_BUFFERED_RECORDS", "MAX_BUFFERED_BYTES"}
	var parts []string
	for _, k := range keys {
		if v, ok := t[k]; ok {
			parts = append(parts, strings.ToLower(k)+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

func runParent(ctx context.Context, o options) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for s := range strings.SplitSeq(o.sections, ",") {
		want[strings.TrimSpace(s)] = true
	}
	brokers := strings.Split(o.brokers, ",")
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer adm.Close()
	admin := kadm.NewClient(adm)

	run := &Run{Started: time.Now().UTC(), GoVer: runtime.Version(), CPU: cpuModel(), Cores: runtime.NumCPU(),
		LoadAvg: []string{loadAvg()}, Records: o.records, Rounds: o.rounds, Seq: o.seq}
	// Keep earlier sections' results when running only some sections.
	if old, err := loadResults(o.results); err == nil {
		for _, r := range old.Results {
			if !want[sectionOf(r)] {
				run.Results = append(run.Results, r)
			}
		}
		if !want["pair"] {
			run.PairRounds = old.PairRounds
		}
		if !want["profile"] {
			run.ProfileDiff, run.ProfileKprd, run.ProfileFrnz, run.ProfileRecs = old.ProfileDiff, old.ProfileKprd, old.ProfileFrnz, old.ProfileRecs
		}
	}
	base := Spec{Brokers: brokers, Topic: o.topic, ValueSize: 100, Keys: 10_000}
	if o.ab != "" {
		return runAB(ctx, o, self, admin, base, os.Stdout)
	}
	exec1 := func(s Spec, round int, variant string) error {
		if s.Mode == modeThroughput {
			if err := recreateTopic(ctx, admin, o.topic, o.partitions); err != nil {
				return err
			}
		}
		r, err := runSpec(ctx, self, s)
		if err != nil {
			return err
		}
		r.Round, r.Variant = round, variant
		fmt.Fprintf(os.Stderr, "round %d %-12s %-28s %-40s %9.0f rec/s %6.2f µs/rec %5.2f allocs/rec p50 %7.0fµs p99 %7.0fµs errors %d\n",
			round, r.Mode, r.Case, variant, r.RecPerSec, r.CPUus, r.Allocs, r.P50us, r.P99us, r.Errors)
		run.Results = append(run.Results, r)
		run.Finished = time.Now().UTC()
		return saveResults(o.results, run)
	}
	for round := 1; round <= o.rounds; round++ {
		if want["throughput"] {
			for _, c := range throughputCases {
				s := base
				s.Case, s.Mode, s.Records = c, modeThroughput, o.records
				if err := exec1(s, round, ""); err != nil {
					return err
				}
			}
		}
		if want["latency"] {
			for _, c := range latencyCases {
				s := base
				s.Case, s.Mode, s.Records, s.MaxTime = c, modeLatency, o.seq, o.seqTime
				if strings.HasSuffix(c, "/reliable") {
					// Each send waits out the 5ms linger: a few hundred
					// show it.
					s.Records = min(o.seq, 500)
				}
				if err := exec1(s, round, ""); err != nil {
					return err
				}
			}
		}
		if want["pool"] {
			for _, preset := range poolPresets {
				for _, g := range poolGoroutines {
					for _, p := range poolSizes {
						s := base
						s.Case, s.Mode, s.Records, s.MaxTime = "kprod-bytes/"+preset, modeConcurrency, o.poolRecords, o.poolTime
						s.Goroutines, s.Pool = g, p
						if err := exec1(s, round, fmt.Sprintf("%d goroutines, %d producer(s)", g, p)); err != nil {
							return err
						}
					}
				}
			}
		}
		if want["tune"] {
			for _, t := range tuneVariants {
				s := base
				s.Case, s.Mode, s.Records, s.Tune = "kprod-bytes/high-throughput", modeThroughput, o.tuneRecords, t
				if err := exec1(s, round, "tune: "+variantName(t)); err != nil {
					return err
				}
			}
		}
	}
	if want["pair"] {
		// The targets compare kprod with franz-go in the same round:
		// one run of either varies by ±15% on this machine, so the
		// report takes the median of many paired ratios.
		run.PairRounds = o.pairRounds
		for round := 1; round <= o.pairRounds; round++ {
			for _, preset := range pairPresets {
				for _, client := range pairClients {
					s := base
					s.Case, s.Mode, s.Records = client+"/"+preset, modeThroughput, o.records
					if err := exec1(s, round, pairVariant); err != nil {
						return err
					}
				}
			}
		}
	}
	if want["profile"] {
		if err := profile(ctx, self, admin, base, o, run); err != nil {
			return err
		}
	}
	run.LoadAvg = append(run.LoadAvg, loadAvg())
	run.Finished = time.Now().UTC()
	if err := saveResults(o.results, run); err != nil {
		return err
	}
	return writeReport(run, o)
}

// pairVariant marks the results of the pair section.
const pairVariant = "pair"

// sectionOf names the section a result belongs to.
func sectionOf(r Result) string {
	switch {
	case r.Variant == pairVariant:
		return "pair"
	case strings.HasPrefix(r.Variant, "tune:"):
		return "tune"
	case r.Mode == modeConcurrency:
		return "pool"
	}
	return r.Mode
}

// profileCases are the profile section's two cases, franz-go's first: the
// production setup, high-throughput preset.
var profileCases = [2]string{"franz-go+kprom/high-throughput", "kprod-bytes+metrics/high-throughput"}

// profile takes CPU profiles of kprod and raw franz-go sending the same
// records (profileCases), and diffs them with pprof.
func profile(ctx context.Context, self string, admin *kadm.Client, base Spec, o options, run *Run) error {
	if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
		return err
	}
	// Three interleaved runs of each, merged, so one noisy run does not
	// decide the diff.
	files := map[string][]string{}
	for i := range 3 {
		for _, c := range profileCases {
			s := base
			s.Case, s.Mode, s.Records = c, modeThroughput, o.records
			client, _ := splitCase(c)
			path, err := filepath.Abs(filepath.Join(o.profileDir, fmt.Sprintf("%s-%d.pprof", client, i+1)))
			if err != nil {
				return err
			}
			s.CPUProfile = path
			if err := recreateTopic(ctx, admin, o.topic, o.partitions); err != nil {
				return err
			}
			if _, err := runSpec(ctx, self, s); err != nil {
				return err
			}
			files[client] = append(files[client], path)
		}
	}
	merged := map[string]string{}
	for client, fs := range files {
		out := filepath.Join(o.profileDir, client+".pprof")
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-proto", "-output", out}, fs...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("merge profiles: %w: %s", err, b)
		}
		for _, f := range fs {
			_ = os.Remove(f)
			_ = os.Remove(f + ".allocs")
		}
		merged[client] = out
	}
	top := func(args ...string) string {
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-top", "-nodecount=40"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("pprof failed: %v\n%s", err, out)
		}
		return string(out)
	}
	run.ProfileRecs = o.records
	fr, _ := splitCase(profileCases[0])
	kp, _ := splitCase(profileCases[1])
	run.ProfileDiff = top("-diff_base", merged[fr], merged[kp])
	run.ProfileKprd = top(merged[kp])
	run.ProfileFrnz = top(merged[fr])
	return nil
}

// runSpec runs one spec in a child process.
func runSpec(ctx context.Context, self string, s Spec) (Result, error) {
	js, err := json.Marshal(s)
	if err != nil {
		return Result{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, self, "-child", string(js))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("%s %s: %w: %s", s.Case, s.Mode, err, strings.TrimSpace(stderr.String()))
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return r, fmt.Errorf("%s: child output %q: %w", s.Case, stdout.String(), err)
	}
	if r.Errors > 0 {
		return r, fmt.Errorf("%s %s: %d records failed, first: %s", s.Case, s.Mode, r.Errors, r.FirstErr)
	}
	return r, nil
}

// recreateTopic deletes and recreates the topic, so a run's records do
// not stay in the in-memory broker.
func recreateTopic(ctx context.Context, admin *kadm.Client, topic string, partitions int) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := admin.DeleteTopics(cctx, topic); err != nil {
		return fmt.Errorf("delete topic %q: %w", topic, err)
	}
	var last error
	for range 50 {
		resp, err := admin.CreateTopic(cctx, int32(partitions), 1, nil, topic)
		if err == nil && resp.Err == nil {
			return nil
		}
		last = errors.Join(err, resp.Err)
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("recreate topic %q: %w", topic, last)
}

func loadResults(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	return &r, json.Unmarshal(b, &r)
}

func saveResults(path string, r *Run) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
