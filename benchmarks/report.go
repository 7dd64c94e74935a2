package main

import (
	"cmp"
	"fmt"
	"html"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// configDoc says how each case is configured, for the report.
var configDoc = map[string]string{
	"kprod-bytes/high-throughput": "`presets.HighThroughput()`: lz4, linger 5ms, 1 MB batches, 100k records / 256 MiB buffer, idempotent, acks=all; `SendAsync` of `Record{Topic, Key, Value}` with one shared callback",
	"kprod-bytes/reliable":        "`presets.Reliable()`: snappy, linger 5ms, 1 MB batches, 100k records / 64 MiB buffer, idempotent, acks=all; `SendAsync`",
	"kprod-bytes/low-latency":     "`presets.LowLatency()`: no compression, no linger, 64 KiB batches, 10k records / 16 MiB buffer, idempotent, acks=all; `SendAsync` (latency mode: `Send`)",
	"kprod-err/high-throughput":   "as kprod-bytes/high-throughput, through `SendAsyncErr`: the callback gets the record's error (nil on success), no `Result`",
	"kprod-err/reliable":          "as kprod-bytes/reliable, through `SendAsyncErr`",
	"kprod-err/low-latency":       "as kprod-bytes/low-latency, through `SendAsyncErr`",
	"kprod-json/high-throughput":  "as kprod-bytes/high-throughput, through `kafkaproducer.NewTyped(p, BytesSerializer{}, JSON[Event]())` `SendAsync` of a struct encoding to ~100 bytes of JSON",
	"kprod-json/reliable":         "as kprod-bytes/reliable, typed JSON sends",
	"kprod-json/low-latency":      "as kprod-bytes/low-latency, typed JSON sends",
	"franz-go/high-throughput":    "raw `kgo.NewClient(presets.HighThroughput().ClientOpts()...)`, `cl.Produce(ctx, &kgo.Record{Topic, Key, Value, Partition: -1}, promise)` with one shared promise",
	"franz-go/reliable":           "raw kgo client from `presets.Reliable().ClientOpts()`",
	"franz-go/low-latency":        "raw kgo client from `presets.LowLatency().ClientOpts()` (latency mode: `ProduceSync`)",
	"sarama/best":                 "AsyncProducer, Version 3.6, `Idempotent=true`, `Net.MaxOpenRequests=1` (idempotence requires it), acks=all, no compression, `Flush.Bytes=1MB`, `Flush.Frequency=5ms`, `ChannelBufferSize=65536`, `Return.Successes=true`, go-metrics off (`metrics.UseNilMetrics=true`), hash partitioner (probed: `Flush.Frequency=1ms` or `Flush.Messages=10000` lose; lz4/snappy cost CPU)",
	"sarama/reliable":             "as sarama/best but snappy (kprod reliable's codec; its 5ms linger is sarama/best's flush frequency)",
	"sarama/latency":              "SyncProducer, same idempotent settings, no compression, no flush batching",
	"kafka-go/best":               "Writer, **no idempotence (kafka-go has none)**, `RequiredAcks=RequireAll`, `Async=true`, `BatchSize=10000`, `BatchBytes=1MB`, `BatchTimeout=20ms`, no compression, `Murmur2Balancer`, `Completion` callback for per-record outcome, 1,000 messages per `WriteMessages` call",
	"kafka-go/reliable":           "as kafka-go/best but snappy and `BatchTimeout=5ms` (kprod reliable's linger)",
	"kafka-go/latency":            "Writer, synchronous, `BatchSize=1`, `BatchTimeout=1ms`, one message per `WriteMessages`, acks=all, no idempotence",
	"confluent/best":              "librdkafka 2.11.1 (bundled): `enable.idempotence=true`, acks=all, `linger.ms=5`, `batch.size=1000000`, lz4, `queue.buffering.max.messages=100000`, `queue.buffering.max.kbytes=65536`, `max.in.flight=5`, `murmur2_random`, `go.delivery.report.fields=none`; `Produce(msg, nil)` + `Events()` (probed: a 1M-message queue, `batch.num.messages=100000`, no compression or snappy were slower; linger 1–20 ms within noise)",
	"confluent/reliable":          "as confluent/best but snappy (kprod reliable's codec; the queue limits equal kprod reliable's 100k records / 64 MiB buffer)",
	"confluent/latency":           "`linger.ms=0`, no compression, idempotent, acks=all; `Produce` with a delivery channel, wait for each",

	// The pair section's own cases (each pair preset).
	"franz-go+kprom/<preset>":      "**production setup, franz-go side**: raw kgo client from the preset's `ClientOpts()` plus `kgo.WithHooks(kprom.NewMetrics(...))` on its own `prometheus.NewRegistry()`, with the request-duration and throttle histograms kprod's metrics enable (classic buckets); one shared promise observes `time.Since(r.Timestamp)` in a per-topic `prometheus.HistogramVec` (kprod's default send-latency buckets) and increments a per-topic sent counter, or a per-topic failed counter; the per-topic series resolved once (franz-go calls promises one at a time)",
	"kprod-err+metrics/<preset>":   "**production setup**: the preset with `m.Instrument(cfg)`, `m` from `metrics.New(prometheus.NewRegistry())`; `SendAsyncErr`",
	"kprod-bytes+metrics/<preset>": "as kprod-err+metrics, through `SendAsync` (a `Result` per record to the callback)",
	"franz-go+result/<preset>":     "raw franz-go doing per record what kprod does to report a `SendAsync` record: the record wrapped with its callback and send time in one allocation, the wrapper as the record's context (the promise finds it with a type assertion), a `kafkaproducer.Result` with the latency built in the promise and passed to the callback",
}

// pairOnlyCases name the cases that run in the pair section only, in the
// configuration table.
var pairOnlyCases = []string{"franz-go+kprom/<preset>", "kprod-err+metrics/<preset>", "kprod-bytes+metrics/<preset>", "franz-go+result/<preset>"}

// agg is the median of one case's rounds.
type agg struct {
	Case, Mode, Variant     string
	N                       int
	RecPerSec, MB, CPU      float64
	Allocs, Bytes, P50, P99 float64
	GCs                     float64
	MinRate, MaxRate        float64
	Goroutines, Pool        int
}

func aggregate(rs []Result) []agg {
	type key struct{ c, m, v string }
	groups := map[key][]Result{}
	var order []key
	for _, r := range rs {
		k := key{r.Case, r.Mode, r.Variant}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	out := make([]agg, 0, len(order))
	for _, k := range order {
		g := groups[k]
		col := func(f func(Result) float64) float64 {
			xs := make([]float64, len(g))
			for i, r := range g {
				xs[i] = f(r)
			}
			return median(xs)
		}
		a := agg{Case: k.c, Mode: k.m, Variant: k.v, N: len(g),
			RecPerSec: col(func(r Result) float64 { return r.RecPerSec }),
			MB:        col(func(r Result) float64 { return r.MBPerSec }),
			CPU:       col(func(r Result) float64 { return r.CPUus }),
			Allocs:    col(func(r Result) float64 { return r.Allocs }),
			Bytes:     col(func(r Result) float64 { return r.AllocBytes }),
			P50:       col(func(r Result) float64 { return r.P50us }),
			P99:       col(func(r Result) float64 { return r.P99us }),
			GCs:       col(func(r Result) float64 { return float64(r.GCs) }),
			MinRate:   g[0].RecPerSec, MaxRate: g[0].RecPerSec,
			Goroutines: g[0].Goroutines, Pool: g[0].Pool,
		}
		for _, r := range g {
			a.MinRate = min(a.MinRate, r.RecPerSec)
			a.MaxRate = max(a.MaxRate, r.RecPerSec)
		}
		out = append(out, a)
	}
	return out
}

func find(as []agg, mode, c, variant string) (agg, bool) {
	for _, a := range as {
		if a.Mode == mode && a.Case == c && a.Variant == variant {
			return a, true
		}
	}
	return agg{}, false
}

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func writeReport(run *Run, o options) error {
	as := aggregate(run.Results)
	var tp []agg
	for _, a := range as {
		if a.Mode == modeThroughput && a.Variant == "" {
			tp = append(tp, a)
		}
	}
	svg := chartSVG(tp, run.Finished)
	if err := os.WriteFile(o.svg, []byte(svg), 0o644); err != nil {
		return err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmarks: kprod against franz-go, sarama, kafka-go and confluent-kafka-go\n\n")
	p("Generated by `scripts/bench-compare.sh` (the `benchmarks/` module, `kbench`) on %s UTC; do not edit by hand, rerun the script. ",
		run.Finished.Format("2006-01-02 15:04"))
	p("Machine: %s, %d cores, %s; load average %s at the start and %s at the end (the machine is shared: figures are noisy, read ratios measured in the same run, not absolute rates).\n\n",
		run.CPU, run.Cores, run.GoVer, first(run.LoadAvg), last(run.LoadAvg))
	p("![records/s and CPU µs per record, median of %d rounds](benchmarks.svg)\n\n", roundsIn(run.Results, "throughput"))

	p("## Method\n\n")
	p("- **Broker**: one `cmd/kfake-broker` (franz-go's kfake, in memory) in its own process on 127.0.0.1, topic `bench` with 6 partitions, recreated before every throughput run so that no run's records stay in the broker's memory. kfake validates every batch (CRC, sequence numbers) and stores it as sent: it never decompresses, so compression only costs the client CPU and saves loopback bytes. Broker and client share the same 2 cores.\n")
	p("- **Workload**: %s records of 100-byte values (one payload for all records), 10,000 distinct keys used round-robin, acks=all, idempotent where the client supports it (kafka-go has no idempotent producer: it runs with `RequiredAcks=all` only). Every client reports each record's delivery to the program (callback, promise, channel), and a run ends when the last record is acknowledged.\n", commas(run.Records))
	p("- **Isolation**: every run is a fresh child process (`kbench -child`), which connects, sends one warm-up record and waits for it (metadata, connection, producer ID), then measures. Closing the client is not measured.\n")
	p("- **records/s, MB/s**: records (values) acknowledged per wall-clock second, from the first send to the last acknowledgement.\n")
	p("- **CPU µs/record**: `getrusage(RUSAGE_SELF)` user+system time of the client process over the run, divided by records. It counts every thread, so librdkafka's C threads count for confluent; the broker is another process and is not counted.\n")
	p("- **allocs/record, B/record**: `runtime.MemStats` Mallocs and TotalAlloc deltas divided by records. For confluent-kafka-go this is the **Go side only**: librdkafka's C allocations are invisible to it. GCs is the number of Go garbage collections during the run.\n")
	p("- **Latency**: sequential sends, one record at a time, each waited for (kprod `Send`, franz-go `ProduceSync`, sarama `SyncProducer`, kafka-go synchronous `WriteMessages`, confluent `Produce` + delivery channel), timed around the call; %s sends or %s, whichever first. p50/p99 nearest rank.\n", commas(run.Seq), "6 s")
	p("- **Rounds**: %d rounds; in each, every case runs once, in the same order (interleaved, so a noisy minute hits all cases alike). Tables give the **median** of the rounds, and for throughput the min–max of records/s.\n", roundsIn(run.Results, "throughput"))
	if run.PairRounds > 0 {
		p("- **Pairs**: the kprod-to-franz-go targets come from a section of their own: %d rounds, each running %s back to back for each of the %s presets, every run a fresh process on a recreated topic, as above. A run of the same binary varies by about ±15%% on this machine (CPU per record and records/s move together: the client uses all the CPU it gets), so the ratio is taken within each round and the median of the rounds reported, with the median's distribution-free 95%% confidence interval (from the binomial distribution of the ratios' ranks) and the range of the rounds.\n", run.PairRounds, strings.Join(pairClients, ", "), strings.Join(pairPresets, " and "))
	}
	p("\n")

	p("### Client configurations\n\n| case | configuration |\n|---|---|\n")
	for _, c := range throughputCases {
		p("| %s | %s |\n", c, configDoc[c])
	}
	for _, c := range []string{"sarama/latency", "kafka-go/latency", "confluent/latency"} {
		p("| %s | %s |\n", c, configDoc[c])
	}
	for _, c := range pairOnlyCases {
		p("| %s | %s |\n", c, configDoc[c])
	}
	p("\nThe *best* configurations were chosen by trying each client's throughput knobs on this broker (compression none/snappy/lz4, linger or flush frequency 1–5 ms, batch limits, and for kafka-go the number of messages per call); the *reliable* ones copy kprod's reliable preset wherever the client has the setting.\n\n")

	p("## Throughput (%s records, median of %d)\n\n", commas(run.Records), roundsIn(run.Results, "throughput"))
	p("| case | records/s | min–max records/s | MB/s | CPU µs/record | allocs/record | B/record | GCs |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	sorted := slices.Clone(tp)
	slices.SortStableFunc(sorted, func(a, b agg) int { return cmp.Compare(b.RecPerSec, a.RecPerSec) })
	for _, a := range sorted {
		p("| %s | %s | %s–%s | %.1f | %.2f | %.2f | %.0f | %.0f |\n", a.Case, commas(int(a.RecPerSec)), commas(int(a.MinRate)), commas(int(a.MaxRate)), a.MB, a.CPU, a.Allocs, a.Bytes, a.GCs)
	}
	p("\n")

	p("## Targets\n\n")
	targets(&b, as, run.Results)
	resultCost(&b, run.Results)

	p("\n## Sequential latency (median of %d)\n\n", roundsIn(run.Results, "latency"))
	p("| case | sends | p50 µs | p99 µs | sends/s | CPU µs/send | allocs/send |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range latencyCases {
		if a, ok := find(as, modeLatency, c, ""); ok {
			p("| %s | %s | %.0f | %.0f | %s | %.1f | %.1f |\n", c, commas(int(a.RecPerSec*0+float64(recordsOf(run.Results, modeLatency, c)))), a.P50, a.P99, commas(int(a.RecPerSec)), a.CPU, a.Allocs)
		}
	}
	p("\nkprod's `Send` goes through franz-go's `ProduceSync`, which stops the linger of the partitions it just produced to, so a lone record goes at once whatever the preset's linger.\n\n")

	poolSection(&b, as, run)
	tuneSection(&b, as, run)

	if run.ProfileDiff != "" {
		base, _ := splitCase(profileCases[0])
		kp, _ := splitCase(profileCases[1])
		p("## CPU profile: the production setup, %s against %s\n\n", profileCases[1], profileCases[0])
		p("`runtime/pprof` CPU profiles of three %s-record runs each, interleaved and merged (profiles in `benchmarks/profiles/`, rerun `go tool pprof -top -diff_base benchmarks/profiles/%s.pprof benchmarks/profiles/%s.pprof`; a `kbench -child` spec with a `cpu_profile` also writes that run's allocation profile beside it). Positive flat values are CPU kprod spends that franz-go does not; profile sampling on a shared machine is noisy, so small entries (under ~1%% of total) are within noise.\n\n", commas(run.ProfileRecs), base, kp)
		p("<details><summary>pprof -diff_base (kprod minus franz-go), top 40</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(run.ProfileDiff))
		p("<details><summary>kprod profile, top 40</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(run.ProfileKprd))
		p("<details><summary>franz-go profile, top 40</summary>\n\n```\n%s```\n</details>\n\n", trimPprof(run.ProfileFrnz))
	}

	if notes, err := os.ReadFile(o.notes); err == nil {
		p("## Analysis\n\nWritten by hand from the run above (`benchmarks/notes.md`); if you rerun the script, check that it still matches the tables.\n\n%s\n", strings.TrimSpace(string(notes)))
	}
	p("\n## Reproduce\n\n```sh\nscripts/bench-compare.sh                 # everything: about 10 minutes on 2 cores (9m54s measured, builds cached)\nBENCH_ARGS='-sections pair' scripts/bench-compare.sh              # the targets only (about 5 minutes), other sections kept\nBENCH_ARGS='-rounds 1 -records 200000' scripts/bench-compare.sh   # a quick look\n(cd benchmarks && go run . -render)   # rewrite this page and the chart from results.json\n```\n\nRaw per-round results are in `benchmarks/results.json`.\n")
	return os.WriteFile(o.md, []byte(b.String()), 0o644)
}

// roundsIn is how many rounds a section ran: sections can be rerun on
// their own (-sections) with another -rounds.
func roundsIn(rs []Result, section string) int {
	n := 0
	for _, r := range rs {
		if sectionOf(r) == section {
			n = max(n, r.Round)
		}
	}
	return n
}

func recordsOf(rs []Result, mode, c string) int {
	var xs []float64
	for _, r := range rs {
		if r.Mode == mode && r.Case == c && r.Variant == "" {
			xs = append(xs, float64(r.Records))
		}
	}
	return int(median(xs))
}

// ratios is the spread of per-round ratios of one case to another.
type ratios struct {
	N                      int
	Rate, RateMin, RateMax float64 // records/s, median and range
	CPU, CPUMin, CPUMax    float64 // CPU µs per record
	// RateLo..RateHi and CPULo..CPUHi are 95% confidence intervals of
	// the medians (medianCI).
	RateLo, RateHi, CPULo, CPUHi float64
}

// paired returns the ratios of case num to case den (records/s and CPU
// per record), round by round, over the pair section's results.
func paired(rs []Result, num, den string) ratios {
	type pair struct{ n, d *Result }
	rounds := map[int]*pair{}
	for i := range rs {
		r := &rs[i]
		if r.Variant != pairVariant || r.Mode != modeThroughput || (r.Case != num && r.Case != den) {
			continue
		}
		pr := rounds[r.Round]
		if pr == nil {
			pr = &pair{}
			rounds[r.Round] = pr
		}
		if r.Case == num {
			pr.n = r
		} else {
			pr.d = r
		}
	}
	var rate, cpu []float64
	for _, pr := range rounds {
		if pr.n != nil && pr.d != nil && pr.d.RecPerSec > 0 && pr.d.CPUus > 0 {
			rate = append(rate, pr.n.RecPerSec/pr.d.RecPerSec)
			cpu = append(cpu, pr.n.CPUus/pr.d.CPUus)
		}
	}
	if len(rate) == 0 {
		return ratios{}
	}
	out := ratios{N: len(rate),
		Rate: median(rate), RateMin: slices.Min(rate), RateMax: slices.Max(rate),
		CPU: median(cpu), CPUMin: slices.Min(cpu), CPUMax: slices.Max(cpu)}
	out.RateLo, out.RateHi = medianCI(rate)
	out.CPULo, out.CPUHi = medianCI(cpu)
	return out
}

// medianCI is the distribution-free 95% confidence interval of the median
// of xs: the order statistics x(j) and x(n+1-j) for the largest j whose
// interval still covers the median with probability at least 95% (each
// value falls below the median with probability 1/2, so the coverage is
// 1 - 2·P(Binomial(n, 1/2) < j)). With fewer than 6 values no j qualifies
// and it is the whole range, whose coverage is then below 95% (93.75% for
// 5 values): the pair section runs 40 rounds.
func medianCI(xs []float64) (lo, hi float64) {
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n == 0 {
		return 0, 0
	}
	// [x(j), x(n+1-j)] covers with 1 - 2·P(B <= j-1): j = 1 always
	// serves, a larger j while that stays at least 95%. The binomial
	// terms are taken from logarithms, so that no power of 1/2
	// underflows however many rounds ran.
	fn := float64(n)
	lgN, _ := math.Lgamma(fn + 1)
	pmf := func(k int) float64 {
		a, _ := math.Lgamma(float64(k) + 1)
		b, _ := math.Lgamma(fn - float64(k) + 1)
		return math.Exp(lgN - a - b - fn*math.Ln2)
	}
	j := 1
	cdf := pmf(0) // P(B <= 0)
	for cand := 2; cand <= n/2; cand++ {
		cdf += pmf(cand - 1) // P(B <= cand-1)
		if 1-2*cdf < 0.95 {
			break
		}
		j = cand
	}
	return s[j-1], s[n-j]
}

// judge says whether a median ratio meets its target (at least the target
// when atLeast, else at most): met, within noise when the target lies
// inside the median's 95% interval [lo, hi] but the median misses it, or
// not met.
func judge(med, lo, hi, target float64, atLeast bool) string {
	met := atLeast && med >= target || !atLeast && med <= target
	if !met && lo <= target && target <= hi {
		return "**within noise** (the target is inside the 95% interval)"
	}
	return verdict(met)
}

// A target compares a kprod case with a raw franz-go case, preset by
// preset: from the pair section's per-round ratios where it ran.
type target struct {
	num, numName, den, denName string
	// minRate and maxCPU are the targets for records/s and CPU per
	// record; zero means reported, not judged.
	minRate, maxCPU float64
}

// prodTargets are the production setup's targets (issue #19): kprod with
// metrics.Instrument against raw franz-go with kprom and a prometheus
// promise.
var prodTargets = []target{
	{"kprod-err+metrics", "kprod `SendAsyncErr` + metrics", "franz-go+kprom", "franz-go + kprom", 0.95, 1.05},
	{"kprod-bytes+metrics", "kprod `SendAsync` + metrics", "franz-go+kprom", "franz-go + kprom", 0.95, 1.05},
}

// bareTargets compare sends without hooks: like for like, SendAsyncErr
// with a franz-go promise that sees the error, SendAsync with franz-go
// building the same Result; SendAsync against a bare promise is the price
// of the Result, reported.
var bareTargets = []target{
	{"kprod-err", "kprod bytes `SendAsyncErr`", "franz-go", "franz-go", 0.97, 1.05},
	{"kprod-bytes", "kprod bytes `SendAsync`", "franz-go+result", "`franz-go+result`", 0.95, 1.05},
	{"kprod-bytes", "kprod bytes `SendAsync`", "franz-go", "franz-go", 0, 0},
}

// targetRow prints one target's two rows (records/s, CPU) for a preset,
// and the allocation row when the throughput section has both cases.
func targetRow(b *strings.Builder, as []agg, rs []Result, t target, preset string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	judged := t.minRate > 0
	f, fok := find(as, modeThroughput, t.den+"/"+preset, "")
	k, kok := find(as, modeThroughput, t.num+"/"+preset, "")
	pr := paired(rs, t.num+"/"+preset, t.den+"/"+preset)
	var rateNote, cpuNote, rateVerdict, cpuVerdict string
	switch {
	case pr.N > 0:
		rateNote = fmt.Sprintf("%.3f× [CI %.3f–%.3f; range %.2f–%.2f], %d pairs", pr.Rate, pr.RateLo, pr.RateHi, pr.RateMin, pr.RateMax, pr.N)
		cpuNote = fmt.Sprintf("%.3f× [CI %.3f–%.3f; range %.2f–%.2f], %d pairs", pr.CPU, pr.CPULo, pr.CPUHi, pr.CPUMin, pr.CPUMax, pr.N)
		rateVerdict = judge(pr.Rate, pr.RateLo, pr.RateHi, t.minRate, true)
		cpuVerdict = judge(pr.CPU, pr.CPULo, pr.CPUHi, t.maxCPU, false)
	case fok && kok:
		rr, cr := k.RecPerSec/f.RecPerSec, k.CPU/f.CPU
		rateNote = fmt.Sprintf("%.3f× (%s vs %s)", rr, commas(int(k.RecPerSec)), commas(int(f.RecPerSec)))
		cpuNote = fmt.Sprintf("%.3f× (%.2f vs %.2f µs)", cr, k.CPU, f.CPU)
		rateVerdict, cpuVerdict = verdict(rr >= t.minRate), verdict(cr <= t.maxCPU)
	case judged:
		// The case runs in the pair section only: say the target went
		// unmeasured rather than leave it out.
		rateNote, cpuNote = "not measured (the pair section did not run)", "not measured (the pair section did not run)"
		rateVerdict, cpuVerdict = "**not measured**", "**not measured**"
	default:
		return
	}
	if judged {
		p("| %s ≥ %.2f× %s records/s (%s) | %s | %s |\n", t.numName, t.minRate, t.denName, preset, rateNote, rateVerdict)
		p("| %s ≤ %.2f× %s CPU/record (%s) | %s | %s |\n", t.numName, t.maxCPU, t.denName, preset, cpuNote, cpuVerdict)
	} else {
		p("| %s against %s, records/s (%s) | %s | reported: a `Result`'s price |\n", t.numName, t.denName, preset, rateNote)
		p("| %s against %s, CPU/record (%s) | %s | reported: a `Result`'s price |\n", t.numName, t.denName, preset, cpuNote)
	}
	if t.den == "franz-go" && fok && kok {
		p("| %s ≤ franz-go allocs/record + 1 (%s) | %.2f vs %.2f (%+.2f) | %s |\n", t.numName, preset, k.Allocs, f.Allocs, k.Allocs-f.Allocs, verdict(k.Allocs-f.Allocs <= 1.0))
	}
}

func targets(b *strings.Builder, as []agg, rs []Result) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("The kprod-to-franz-go rows are the median of the pair section's per-round ratios where it ran, with the 95%% confidence interval of that median and the range of the rounds in brackets (otherwise ratios of the throughput medians); the others are ratios of medians. A median that misses its target while the target is inside its 95%% interval is marked *within noise*.\n\n")
	p("**Production setup** (issue #19): kprod's high-throughput and reliable presets with `metrics.Instrument`, as the metrics package documents it, against raw franz-go doing the same work: kprom on its own registry with the request histograms kprod enables, and a promise that observes each record's latency in a per-topic prometheus histogram and counts successes and failures per topic (`franz-go+kprom`, configurations above). Targets: at least 0.95× its records/s, at most 1.05× its CPU per record.\n\n")
	p("| target | measured | result |\n|---|---|---|\n")
	for _, preset := range pairPresets {
		for _, t := range prodTargets {
			targetRow(b, as, rs, t, preset)
		}
	}
	p("\n")
	prodTable(b, rs)
	p("**Bare sends** (no hooks). The targets are like for like: `SendAsyncErr` against raw franz-go (each reports a record's error; at least 0.97×, at most 1.05×), and `SendAsync` against `franz-go+result` (each builds a `Result` per record; at least 0.95× records/s, at most 1.05× CPU). `SendAsync` against raw franz-go is reported, not judged: its difference is the price of building a `Result` per record, which raw franz-go pays too (the table after the next one).\n\n")
	p("| target | measured | result |\n|---|---|---|\n")
	for _, preset := range pairPresets {
		for _, t := range bareTargets {
			targetRow(b, as, rs, t, preset)
		}
	}
	if ht, ok := find(as, modeThroughput, "kprod-bytes/high-throughput", ""); ok {
		// Each competitor's best measured configuration: the fastest of
		// its throughput cases for records/s, the cheapest for CPU.
		for _, client := range []string{"sarama", "kafka-go", "confluent"} {
			var fast, cheap agg
			for _, a := range as {
				if a.Mode != modeThroughput || a.Variant != "" || !strings.HasPrefix(a.Case, client+"/") {
					continue
				}
				if fast.Case == "" || a.RecPerSec > fast.RecPerSec {
					fast = a
				}
				if cheap.Case == "" || a.CPU < cheap.CPU {
					cheap = a
				}
			}
			if fast.Case == "" {
				continue
			}
			p("| kprod high-throughput beats %s's fastest (%s) on records/s | %.2f× (%s vs %s) | %s |\n", client, fast.Case, ht.RecPerSec/fast.RecPerSec, commas(int(ht.RecPerSec)), commas(int(fast.RecPerSec)), verdict(ht.RecPerSec > fast.RecPerSec))
			p("| kprod high-throughput beats %s's cheapest (%s) on CPU/record | %.2f× (%.2f vs %.2f µs) | %s |\n", client, cheap.Case, ht.CPU/cheap.CPU, ht.CPU, cheap.CPU, verdict(ht.CPU < cheap.CPU))
		}
	}
	k, ok1 := find(as, modeLatency, "kprod-bytes/low-latency", "")
	f, ok2 := find(as, modeLatency, "franz-go/low-latency", "")
	if ok1 && ok2 {
		p("| low-latency `Send` p50 ≤ 1.1× franz-go `ProduceSync` | %.3f× (%.0f vs %.0f µs) | %s |\n", k.P50/f.P50, k.P50, f.P50, verdict(k.P50/f.P50 <= 1.1))
		p("| low-latency `Send` p99 ≤ 1.1× franz-go `ProduceSync` | %.3f× (%.0f vs %.0f µs) | %s |\n", k.P99/f.P99, k.P99, f.P99, verdict(k.P99/f.P99 <= 1.1))
	}
	p("\n**Typed JSON over bytes** (same preset, same run):\n\n| preset | records/s | CPU µs/record | allocs/record | B/record |\n|---|---|---|---|---|\n")
	for _, preset := range []string{"high-throughput", "reliable", "low-latency"} {
		j, ok1 := find(as, modeThroughput, "kprod-json/"+preset, "")
		by, ok2 := find(as, modeThroughput, "kprod-bytes/"+preset, "")
		if !ok1 || !ok2 {
			continue
		}
		p("| %s | %.2f× (%s vs %s) | +%.2f µs (%.2f vs %.2f) | +%.2f | +%.0f |\n", preset, j.RecPerSec/by.RecPerSec, commas(int(j.RecPerSec)), commas(int(by.RecPerSec)),
			j.CPU-by.CPU, j.CPU, by.CPU, j.Allocs-by.Allocs, j.Bytes-by.Bytes)
	}
}

// prodTable prints the production setup's cases side by side: the
// medians of the pair section's rounds.
func prodTable(b *strings.Builder, rs []Result) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var pair []Result
	for _, r := range rs {
		if r.Variant == pairVariant {
			pair = append(pair, r)
		}
	}
	as := aggregate(pair)
	var rows []string
	for _, preset := range pairPresets {
		for _, c := range []string{"franz-go+kprom", "kprod-err+metrics", "kprod-bytes+metrics", "franz-go", "kprod-err"} {
			if a, ok := find(as, modeThroughput, c+"/"+preset, pairVariant); ok {
				rows = append(rows, fmt.Sprintf("| %s | %s | %.3f | %.2f | %.0f | %.0f |\n", a.Case, commas(int(a.RecPerSec)), a.CPU, a.Allocs, a.Bytes, a.GCs))
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	p("The same cases' medians over the pair section's rounds (absolute figures move with the machine's load; the ratios above are paired):\n\n")
	p("| case | records/s | CPU µs/record | allocs/record | B/record | GCs |\n|---|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		p("%s", r)
	}
	p("\n")
}

// resultCost prices kprod's per-record Result: raw franz-go doing only
// what kprod does to report each record (franz-go+result), against raw
// franz-go and against kprod, from the pair section.
func resultCost(b *strings.Builder, rs []Result) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var rows []string
	for _, preset := range pairPresets {
		fr := paired(rs, "franz-go+result/"+preset, "franz-go/"+preset)
		kr := paired(rs, "kprod-bytes/"+preset, "franz-go+result/"+preset)
		if fr.N == 0 || kr.N == 0 {
			continue
		}
		rows = append(rows, fmt.Sprintf("| %s | %.3f× [%.2f–%.2f] | %.3f× [%.2f–%.2f] | %.3f× [%.2f–%.2f] | %.3f× [%.2f–%.2f] |\n", preset,
			fr.Rate, fr.RateMin, fr.RateMax, fr.CPU, fr.CPUMin, fr.CPUMax, kr.Rate, kr.RateMin, kr.RateMax, kr.CPU, kr.CPUMin, kr.CPUMax))
	}
	if len(rows) == 0 {
		return
	}
	p("\n**What a per-record Result costs raw franz-go** (pair section, median of per-round ratios [range]). `franz-go+result` is raw franz-go doing per record only what kprod does to report it: the record wrapped with its callback and send time in one allocation, the wrapper found from the record's context, a `kafkaproducer.Result` built from the record and its latency in the promise, the callback called. No checks, no buffer bound of its own, no safe close.\n\n")
	p("| preset | franz-go+result / franz-go records/s | CPU/record | kprod / franz-go+result records/s | CPU/record |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		p("%s", r)
	}
	p("\n")
}

func poolSection(b *strings.Builder, as []agg, run *Run) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var any bool
	for _, a := range as {
		any = any || a.Mode == modeConcurrency
	}
	if !any {
		return
	}
	p("## One producer or a pool of four? (sync `Send` from many goroutines)\n\n")
	p("Each goroutine calls `Send` and waits, as request handlers do; the pool hands calls to 4 producers round-robin. Up to 40,000 sends or 3 s per run, median of %d.\n\n", roundsIn(run.Results, "pool"))
	p("| preset | goroutines | producers | sends/s | p50 µs | p99 µs | CPU µs/send | pool / single sends/s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, preset := range poolPresets {
		for _, g := range poolGoroutines {
			single, ok := find(as, modeConcurrency, "kprod-bytes/"+preset, fmt.Sprintf("%d goroutines, %d producer(s)", g, 1))
			for _, n := range poolSizes {
				a, ok2 := find(as, modeConcurrency, "kprod-bytes/"+preset, fmt.Sprintf("%d goroutines, %d producer(s)", g, n))
				if !ok2 {
					continue
				}
				ratio := ""
				if ok && n > 1 {
					ratio = fmt.Sprintf("%.2f×", a.RecPerSec/single.RecPerSec)
				}
				p("| %s | %d | %d | %s | %.0f | %.0f | %.1f | %s |\n", preset, g, n, commas(int(a.RecPerSec)), a.P50, a.P99, a.CPU, ratio)
			}
		}
	}
	p("\n")
}

func tuneSection(b *strings.Builder, as []agg, run *Run) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var rows []agg
	for _, a := range as {
		if strings.HasPrefix(a.Variant, "tune:") {
			rows = append(rows, a)
		}
	}
	if len(rows) == 0 {
		return
	}
	p("## Tuning the high-throughput preset on this broker\n\n")
	p("The high-throughput preset with one or two settings changed, %s records per run, median of %d rounds, sorted by records/s. The preset rows of the main table are the reference.\n\n", commas(recordsOfVariant(run.Results, rows[0].Variant)), roundsIn(run.Results, "tune"))
	p("| variant | records/s | min–max | CPU µs/record | allocs/record |\n|---|---:|---:|---:|---:|\n")
	slices.SortStableFunc(rows, func(a, b agg) int { return cmp.Compare(b.RecPerSec, a.RecPerSec) })
	for _, a := range rows {
		p("| %s | %s | %s–%s | %.2f | %.2f |\n", strings.TrimPrefix(a.Variant, "tune: "), commas(int(a.RecPerSec)), commas(int(a.MinRate)), commas(int(a.MaxRate)), a.CPU, a.Allocs)
	}
	p("\n")
}

func recordsOfVariant(rs []Result, v string) int {
	for _, r := range rs {
		if r.Variant == v {
			return r.Records
		}
	}
	return 0
}

// trimPprof drops pprof's header lines about the binary and build id.
func trimPprof(s string) string {
	var out []string
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func first(s []string) string {
	if len(s) == 0 {
		return "?"
	}
	return s[0]
}

func last(s []string) string {
	if len(s) == 0 {
		return "?"
	}
	return s[len(s)-1]
}

// commas prints n with thousands separators.
func commas(n int) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// chartSVG draws two horizontal bar panels, records/s and CPU µs per
// record, one row per throughput case sorted by records/s. kprod rows are
// blue, franz-go green, the other clients grey.
func chartSVG(tp []agg, date time.Time) string {
	rows := slices.Clone(tp)
	slices.SortStableFunc(rows, func(a, b agg) int { return cmp.Compare(b.RecPerSec, a.RecPerSec) })
	const (
		labelW = 230
		panelW = 330
		gap    = 40
		rowH   = 24
		top    = 64
	)
	width := labelW + 2*panelW + gap + 80
	height := top + rowH*len(rows) + 58
	var maxRate, maxCPU float64
	for _, r := range rows {
		maxRate = max(maxRate, r.RecPerSec)
		maxCPU = max(maxCPU, r.CPU)
	}
	maxRate, maxCPU = max(maxRate, 1), max(maxCPU, 0.01)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	p(`<text x="10" y="22" font-size="15" font-weight="bold">Producer throughput, %s records of 100 B, 6 partitions, acks=all (median)</text>`+"\n", "1M")
	x1 := labelW
	x2 := labelW + panelW + gap
	p(`<text x="%d" y="50" font-weight="bold">records/s (longer is better)</text>`+"\n", x1)
	p(`<text x="%d" y="50" font-weight="bold">client CPU µs per record (shorter is better)</text>`+"\n", x2)
	for i, r := range rows {
		y := top + i*rowH
		color := "#9aa0a6"
		switch {
		case strings.HasPrefix(r.Case, "kprod"):
			color = "#1a73e8"
		case strings.HasPrefix(r.Case, "franz-go"):
			color = "#34a853"
		}
		if i%2 == 0 {
			p(`<rect x="0" y="%d" width="%d" height="%d" fill="#f6f8fa"/>`+"\n", y-2, width, rowH)
		}
		label := r.Case
		if strings.HasPrefix(label, "kafka-go/") {
			label += " *"
		}
		p(`<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelW-8, y+14, html.EscapeString(label))
		w1 := float64(panelW-60) * r.RecPerSec / maxRate
		p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x1, y+2, w1, rowH-8, color)
		p(`<text x="%.1f" y="%d">%s</text>`+"\n", float64(x1)+w1+4, y+14, compact(r.RecPerSec))
		w2 := float64(panelW-60) * r.CPU / maxCPU
		p(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x2, y+2, w2, rowH-8, color)
		p(`<text x="%.1f" y="%d">%.2f</text>`+"\n", float64(x2)+w2+4, y+14, r.CPU)
	}
	ly := top + rowH*len(rows) + 22
	p(`<rect x="10" y="%d" width="12" height="12" fill="#1a73e8"/><text x="28" y="%d">kprod</text>`+"\n", ly-10, ly)
	p(`<rect x="80" y="%d" width="12" height="12" fill="#34a853"/><text x="98" y="%d">raw franz-go, same options</text>`+"\n", ly-10, ly)
	p(`<rect x="270" y="%d" width="12" height="12" fill="#9aa0a6"/><text x="288" y="%d">sarama, kafka-go, confluent-kafka-go (its CPU includes librdkafka's threads); kfake broker in its own process, %s</text>`+"\n", ly-10, ly, date.Format("2006-01-02"))
	p(`<text x="10" y="%d">* kafka-go has no idempotent producer: acks=all only. Everything else is idempotent, acks=all.</text>`+"\n", ly+18)
	p("</svg>\n")
	return b.String()
}

func compact(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.0fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}
