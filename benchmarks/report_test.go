package main

import (
	"encoding/xml"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want float64
	}{
		{"none", nil, 0},
		{"one", []float64{7}, 7},
		{"odd unsorted", []float64{9, 1, 5}, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.in); got != tt.want {
				t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestPercentilesNearestRank(t *testing.T) {
	lat := make([]time.Duration, 100)
	for i := range lat {
		lat[len(lat)-1-i] = time.Duration(i+1) * time.Microsecond // 100..1 µs, unsorted
	}
	var r Result
	percentiles(&r, lat)
	if r.P50us != 50 || r.P99us != 99 {
		t.Errorf("p50 %v p99 %v, want 50 and 99", r.P50us, r.P99us)
	}
}

func TestCommas(t *testing.T) {
	tests := []struct {
		in   int
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1,000"}, {1234567, "1,234,567"}, {-20000, "-20,000"},
	}
	for _, tt := range tests {
		if got := commas(tt.in); got != tt.want {
			t.Errorf("commas(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAggregateTakesMedianPerCase(t *testing.T) {
	rs := []Result{
		{Case: "a/x", Mode: modeThroughput, Round: 1, RecPerSec: 100, CPUus: 3},
		{Case: "b/y", Mode: modeThroughput, Round: 1, RecPerSec: 5},
		{Case: "a/x", Mode: modeThroughput, Round: 2, RecPerSec: 300, CPUus: 1},
		{Case: "a/x", Mode: modeThroughput, Round: 3, RecPerSec: 200, CPUus: 2},
	}
	as := aggregate(rs)
	a, ok := find(as, modeThroughput, "a/x", "")
	if !ok {
		t.Fatal("a/x missing")
	}
	if a.N != 3 || a.RecPerSec != 200 || a.CPU != 2 || a.MinRate != 100 || a.MaxRate != 300 {
		t.Errorf("got %+v", a)
	}
	if len(as) != 2 || as[0].Case != "a/x" {
		t.Errorf("cases out of first-seen order: %+v", as)
	}
}

func TestChartSVGIsWellFormedWithOneBarPairPerCase(t *testing.T) {
	tp := []agg{
		{Case: "kprod-bytes/high-throughput", RecPerSec: 1e6, CPU: 1.5},
		{Case: "franz-go/high-throughput", RecPerSec: 1.2e6, CPU: 1.1},
		{Case: "sarama/best <&>", RecPerSec: 2e5, CPU: 5},
	}
	svg := chartSVG(tp, time.Now())
	d := xml.NewDecoder(strings.NewReader(svg))
	rects := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	// background + 2 bars per case + 2 zebra stripes (rows 0 and 2) + 3 legend swatches
	if want := 1 + 2*len(tp) + 2 + 3; rects != want {
		t.Errorf("%d rects, want %d", rects, want)
	}
	// Sorted by records/s: franz-go first.
	if strings.Index(svg, "franz-go/high-throughput") > strings.Index(svg, "kprod-bytes/high-throughput") {
		t.Error("rows not sorted by records/s")
	}
}

func TestVariantNameIsStable(t *testing.T) {
	got := variantName(map[string]string{"LINGER": "5ms", "COMPRESSION": "none"})
	if got != "compression=none linger=5ms" {
		t.Errorf("got %q", got)
	}
}

func TestPairedTakesPerRoundRatios(t *testing.T) {
	rs := []Result{
		{Case: "k/x", Mode: modeThroughput, Variant: pairVariant, Round: 1, RecPerSec: 90, CPUus: 1.2},
		{Case: "f/x", Mode: modeThroughput, Variant: pairVariant, Round: 1, RecPerSec: 100, CPUus: 1},
		{Case: "f/x", Mode: modeThroughput, Variant: pairVariant, Round: 2, RecPerSec: 200, CPUus: 0.5},
		{Case: "k/x", Mode: modeThroughput, Variant: pairVariant, Round: 2, RecPerSec: 160, CPUus: 0.55},
		{Case: "k/x", Mode: modeThroughput, Variant: pairVariant, Round: 3, RecPerSec: 190, CPUus: 0.5},
		{Case: "f/x", Mode: modeThroughput, Variant: pairVariant, Round: 3, RecPerSec: 200, CPUus: 0.5},
		// Outside the pair section, or without a partner: ignored.
		{Case: "k/x", Mode: modeThroughput, Round: 1, RecPerSec: 1, CPUus: 9},
		{Case: "k/x", Mode: modeThroughput, Variant: pairVariant, Round: 4, RecPerSec: 1, CPUus: 9},
	}
	pr := paired(rs, "k/x", "f/x")
	if pr.N != 3 {
		t.Fatalf("N = %d, want 3", pr.N)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(pr.Rate, 0.9) || !near(pr.RateMin, 0.8) || !near(pr.RateMax, 0.95) {
		t.Errorf("rate ratios %+v, want median 0.9 in [0.8, 0.95]", pr)
	}
	if !near(pr.CPU, 1.1) || !near(pr.CPUMin, 1.0) || !near(pr.CPUMax, 1.2) {
		t.Errorf("CPU ratios %+v, want median 1.1 in [1.0, 1.2]", pr)
	}
	if got := paired(rs, "k/x", "nobody/x"); got.N != 0 {
		t.Errorf("no partner case: %+v", got)
	}
}

func TestRoundsInCountsEachSection(t *testing.T) {
	rs := []Result{
		{Case: "a/x", Mode: modeThroughput, Round: 3},
		{Case: "a/x", Mode: modeThroughput, Round: 1},
		{Case: "a/x", Mode: modeThroughput, Variant: pairVariant, Round: 7},
		{Case: "a/x", Mode: modeConcurrency, Round: 5},
		{Case: "a/x", Mode: modeThroughput, Variant: "tune: linger=none", Round: 2},
	}
	for section, want := range map[string]int{"throughput": 3, "pair": 7, "pool": 5, "tune": 2, "latency": 0} {
		if got := roundsIn(rs, section); got != want {
			t.Errorf("roundsIn(%q) = %d, want %d", section, got, want)
		}
	}
}

func TestMedianCI(t *testing.T) {
	xs := make([]float64, 40)
	for i := range xs {
		xs[len(xs)-1-i] = float64(i + 1) // 40..1, unsorted
	}
	// n = 40: [x(14), x(27)] covers the median with probability
	// 1 - 2·P(B <= 13) = 0.962; [x(15), x(26)] with 0.919.
	if lo, hi := medianCI(xs); lo != 14 || hi != 27 {
		t.Errorf("medianCI of 1..40 = [%v, %v], want [14, 27]", lo, hi)
	}
	// n = 6: [x(1), x(6)] covers with 1 - 2/64 = 0.969, [x(2), x(5)] with 0.781.
	if lo, hi := medianCI([]float64{6, 5, 4, 3, 2, 1}); lo != 1 || hi != 6 {
		t.Errorf("medianCI of 1..6 = [%v, %v], want [1, 6]", lo, hi)
	}
	// n = 100: the tabled interval is [x(40), x(61)].
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(i + 1)
	}
	if lo, hi := medianCI(hundred); lo != 40 || hi != 61 {
		t.Errorf("medianCI of 1..100 = [%v, %v], want [40, 61]", lo, hi)
	}
	if lo, hi := medianCI([]float64{3, 1, 2}); lo != 1 || hi != 3 {
		t.Errorf("medianCI of three values = [%v, %v], want the whole range [1, 3]", lo, hi)
	}
	if lo, hi := medianCI(nil); lo != 0 || hi != 0 {
		t.Errorf("medianCI(nil) = [%v, %v], want [0, 0]", lo, hi)
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name              string
		med, lo, hi, want float64
		atLeast           bool
		verdict           string
	}{
		{"at least, met", 0.98, 0.95, 1.01, 0.97, true, "**met**"},
		{"at least, within noise", 0.96, 0.94, 0.99, 0.97, true, "**within noise**"},
		{"at least, not met", 0.91, 0.88, 0.95, 0.97, true, "**not met**"},
		{"at most, met", 1.01, 0.98, 1.04, 1.05, false, "**met**"},
		{"at most, within noise", 1.06, 1.03, 1.09, 1.05, false, "**within noise**"},
		{"at most, not met", 1.09, 1.051, 1.14, 1.05, false, "**not met**"},
	}
	for _, tt := range tests {
		if got := judge(tt.med, tt.lo, tt.hi, tt.want, tt.atLeast); !strings.HasPrefix(got, tt.verdict) {
			t.Errorf("%s: judge = %q, want %q", tt.name, got, tt.verdict)
		}
	}
}

func TestMedianCISmallAndLarge(t *testing.T) {
	for _, n := range []int{1, 2, 5} {
		xs := make([]float64, n)
		for i := range xs {
			xs[i] = float64(i + 1)
		}
		if lo, hi := medianCI(xs); lo != 1 || hi != float64(n) {
			t.Errorf("medianCI of 1..%d = [%v, %v], want the whole range", n, lo, hi)
		}
	}
	// 2000 rounds: no underflow to a zero-width interval. The 95%
	// interval of 2000 is about ±1.96·√2000/2 = ±44 ranks around 1000.
	xs := make([]float64, 2000)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	lo, hi := medianCI(xs)
	if lo < 950 || lo > 960 || hi < 1041 || hi > 1051 {
		t.Errorf("medianCI of 1..2000 = [%v, %v], want about [956, 1045]", lo, hi)
	}
}

func TestJudgeBoundaries(t *testing.T) {
	if got := judge(0.97, 0.95, 0.99, 0.97, true); got != "**met**" {
		t.Errorf("median at an at-least target: %q", got)
	}
	if got := judge(1.05, 1.0, 1.1, 1.05, false); got != "**met**" {
		t.Errorf("median at an at-most target: %q", got)
	}
	if got := judge(0.96, 0.97, 0.99, 0.97, true); !strings.HasPrefix(got, "**within noise**") {
		t.Errorf("target at the interval's edge: %q", got)
	}
}

// targetRows renders the targets table of rs.
func targetRows(rs []Result) string {
	var b strings.Builder
	targets(&b, aggregate(rs), rs)
	return b.String()
}

func TestTargetsWithoutPairSection(t *testing.T) {
	rs := []Result{
		{Case: "franz-go/high-throughput", Mode: modeThroughput, Round: 1, RecPerSec: 100, CPUus: 1, Allocs: 1},
		{Case: "kprod-err/high-throughput", Mode: modeThroughput, Round: 1, RecPerSec: 98, CPUus: 1.02, Allocs: 1},
		{Case: "kprod-bytes/high-throughput", Mode: modeThroughput, Round: 1, RecPerSec: 90, CPUus: 1.1, Allocs: 1},
	}
	out := targetRows(rs)
	for _, want := range []string{
		"| kprod bytes `SendAsyncErr` ≥ 0.97× franz-go records/s (high-throughput) | 0.980× (98 vs 100) | **met** |",
		"| kprod bytes `SendAsync` ≥ 0.95× `franz-go+result` records/s (high-throughput) | not measured (the pair section did not run) | **not measured** |",
		"| kprod `SendAsyncErr` + metrics ≥ 0.95× franz-go + kprom records/s (high-throughput) | not measured (the pair section did not run) | **not measured** |",
		"| kprod bytes `SendAsync` against franz-go, CPU/record (high-throughput) | 1.100× (1.10 vs 1.00 µs) | reported",
		"| kprod bytes `SendAsync` ≤ franz-go allocs/record + 1 (high-throughput)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing row %q in:\n%s", want, out)
		}
	}
}

func TestTargetsFromPairSectionOnly(t *testing.T) {
	var rs []Result
	for round := 1; round <= 3; round++ {
		for _, c := range []struct {
			name string
			rate float64
		}{{"franz-go", 100}, {"franz-go+result", 92}, {"kprod-bytes", 91}, {"kprod-err", 99},
			{"franz-go+kprom", 90}, {"kprod-err+metrics", 84}, {"kprod-bytes+metrics", 88}} {
			rs = append(rs, Result{Case: c.name + "/reliable", Mode: modeThroughput, Variant: pairVariant, Round: round, RecPerSec: c.rate, CPUus: 100 / c.rate})
		}
	}
	out := targetRows(rs)
	for _, want := range []string{
		"| kprod bytes `SendAsyncErr` ≥ 0.97× franz-go records/s (reliable) | 0.990× [CI",
		"| kprod bytes `SendAsync` ≥ 0.95× `franz-go+result` records/s (reliable) | 0.989× [CI",
		"| kprod bytes `SendAsync` against franz-go, records/s (reliable) | 0.910× [CI",
		"| kprod `SendAsyncErr` + metrics ≥ 0.95× franz-go + kprom records/s (reliable) | 0.933× [CI",
		"| kprod `SendAsyncErr` + metrics ≤ 1.05× franz-go + kprom CPU/record (reliable) | 1.071× [CI",
		"| kprod `SendAsync` + metrics ≥ 0.95× franz-go + kprom records/s (reliable) | 0.978× [CI",
		"| kprod-err+metrics/reliable | 84 | 1.190 |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing row %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "allocs/record + 1") {
		t.Errorf("allocation rows without a throughput section:\n%s", out)
	}
}
