package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// The variants of an A/B run's results.
const (
	abBase = "ab:A" // this binary
	abAlt  = "ab:B" // the -ab binary
)

// runAB compares two builds of kbench: this one (A) and the one at
// o.ab (B, typically built from a scratch worktree with a changed core).
// Each of o.pairRounds rounds runs every case of o.abCases through both
// binaries back to back, A first in odd rounds and B first in even ones,
// each in a fresh child process on a recreated topic. The results go to
// o.results and a summary of the per-round ratios B/A to out; the report
// is not rewritten.
func runAB(ctx context.Context, o options, self string, admin *kadm.Client, base Spec, out io.Writer) error {
	alt, err := os.Stat(o.ab)
	if err != nil {
		return fmt.Errorf("-ab: %w", err)
	}
	if alt.IsDir() {
		return fmt.Errorf("-ab %s: a directory, want a kbench binary", o.ab)
	}
	cases := strings.Split(o.abCases, ",")
	run := &Run{Started: time.Now().UTC(), Records: o.records, PairRounds: o.pairRounds}
	for round := 1; round <= o.pairRounds; round++ {
		for _, c := range cases {
			order := []struct{ bin, variant string }{{self, abBase}, {o.ab, abAlt}}
			if round%2 == 0 {
				order[0], order[1] = order[1], order[0]
			}
			for _, b := range order {
				s := base
				s.Case, s.Mode, s.Records = strings.TrimSpace(c), modeThroughput, o.records
				if err := recreateTopic(ctx, admin, o.topic, o.partitions); err != nil {
					return err
				}
				r, err := runSpec(ctx, b.bin, s)
				if err != nil {
					return err
				}
				r.Round, r.Variant = round, b.variant
				fmt.Fprintf(os.Stderr, "round %d %-4s %-36s %9.0f rec/s %6.3f µs/rec %5.3f allocs/rec\n",
					round, b.variant, r.Case, r.RecPerSec, r.CPUus, r.Allocs)
				run.Results = append(run.Results, r)
				if err := saveResults(o.results, run); err != nil {
					return err
				}
			}
		}
	}
	run.Finished = time.Now().UTC()
	if err := saveResults(o.results, run); err != nil {
		return err
	}
	abSummary(out, run.Results, cases)
	return nil
}

// abSummary prints, per case, the medians of A and B and the median of
// the per-round ratios B/A with its 95% interval.
func abSummary(out io.Writer, rs []Result, cases []string) {
	fmt.Fprintf(out, "%-36s %5s %23s %23s %15s %15s\n", "case", "pairs", "B/A records/s [95% CI]", "B/A CPU/record [95% CI]", "allocs/rec A", "allocs/rec B")
	for _, c := range cases {
		c = strings.TrimSpace(c)
		var rate, cpu, allocA, allocB []float64
		byRound := map[int][2]*Result{}
		for i := range rs {
			r := &rs[i]
			if r.Case != c {
				continue
			}
			p := byRound[r.Round]
			switch r.Variant {
			case abBase:
				p[0] = r
				allocA = append(allocA, r.Allocs)
			case abAlt:
				p[1] = r
				allocB = append(allocB, r.Allocs)
			}
			byRound[r.Round] = p
		}
		for _, p := range byRound {
			if p[0] != nil && p[1] != nil && p[0].RecPerSec > 0 && p[0].CPUus > 0 {
				rate = append(rate, p[1].RecPerSec/p[0].RecPerSec)
				cpu = append(cpu, p[1].CPUus/p[0].CPUus)
			}
		}
		if len(rate) == 0 {
			continue
		}
		rl, rh := medianCI(rate)
		cl, ch := medianCI(cpu)
		fmt.Fprintf(out, "%-36s %5d %7.3f× [%.3f–%.3f] %7.3f× [%.3f–%.3f] %6.3f (%.3f–%.3f) %6.3f (%.3f–%.3f)\n", c, len(rate),
			median(rate), rl, rh, median(cpu), cl, ch,
			median(allocA), slices.Min(allocA), slices.Max(allocA), median(allocB), slices.Min(allocB), slices.Max(allocB))
	}
}
