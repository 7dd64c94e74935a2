package chaos

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

const (
	beginMarker = "<!-- chaos:results:begin (written by make chaos; edits here are overwritten) -->"
	endMarker   = "<!-- chaos:results:end -->"
)

// writeReport rewrites the results section of the Markdown file dst (or
// appends one) with a table per scenario: one row per path, counts summed
// over the iterations.
func writeReport(dst, mode string, iterations int, seed uint64, elapsed time.Duration, outs []outcome) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", beginMarker)
	fmt.Fprintf(&b, "Run of %s: `CHAOS_MODE=%s`, %d iteration(s) of each scenario and path, seed %d, %d runs in %s",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), mode, iterations, seed, len(outs), elapsed.Round(time.Second))
	fmt.Fprintf(&b, " (reproduce the fault moments with `CHAOS_SEED=%d make chaos`). Each run sends %d records at %d/s.\n\n", seed, streamCount, streamRate)
	type agg struct {
		report
		runs, kept, checked int
		skipped, errors     []string
		seconds             float64
	}
	whats := map[string]string{}
	for _, sc := range scenarios() {
		whats[sc.name] = sc.what
	}
	var order []string
	byScenario := map[string][]string{}
	aggs := map[string]*agg{}
	var broken []outcome
	for _, o := range outs {
		if _, ok := byScenario[o.Scenario]; !ok {
			order = append(order, o.Scenario)
		}
		k := o.Scenario + "/" + o.Path
		a := aggs[k]
		if a == nil {
			a = &agg{}
			aggs[k] = a
			byScenario[o.Scenario] = append(byScenario[o.Scenario], o.Path)
		}
		a.runs++
		a.seconds += o.Seconds
		if o.Skipped != "" {
			a.skipped = append(a.skipped, o.Skipped)
		}
		if o.Error != "" {
			a.errors = append(a.errors, o.Error)
		}
		if r := o.Report; r != nil {
			a.checked++
			if r.Kept {
				a.kept++
			} else {
				broken = append(broken, o)
			}
			a.Promise = r.Promise
			a.Sent += r.Sent
			a.Acked += r.Acked
			a.Spooled += r.Spooled
			a.DeadLetters += r.DeadLetters
			a.Failed += r.Failed
			a.Unknown += r.Unknown
			a.NoOutcome += r.NoOutcome
			a.InSpool += r.InSpool
			a.Lost += r.Lost
			a.DupExplained += r.DupExplained
			a.DupUnexplained += r.DupUnexplained
			a.Reordered += r.Reordered
			a.AbortedReads += r.AbortedReads
			a.TornTransactions += r.TornTransactions
			a.Unlogged += r.Unlogged
			if r.KcatAgrees != "" {
				if a.KcatAgrees == "" || a.KcatAgrees == "yes" {
					a.KcatAgrees = r.KcatAgrees
				}
			}
		}
	}
	for _, sc := range order {
		fmt.Fprintf(&b, "#### %s\n\n%s.\n\n", sc, whats[sc])
		b.WriteString("| path | runs | sent | acked | spooled | dead-lettered | failed at call | outcome unknown | no outcome (killed) | **lost** | dup explained | **dup unexplained** | reordered per key | **aborted reads** | **torn txns** | left in spool | kcat read_committed | promise | kept |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|---|\n")
		paths := byScenario[sc]
		for _, p := range paths {
			a := aggs[sc+"/"+p]
			if a.checked == 0 {
				why := strings.Join(append(a.skipped, a.errors...), "; ")
				fmt.Fprintf(&b, "| %s | %d | not run: %s |||||||||||||||||\n", p, a.runs, mdEscape(why))
				continue
			}
			kc := a.KcatAgrees
			if kc == "" {
				kc = "n/a"
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s | %d/%d |\n",
				p, a.runs, a.Sent, a.Acked, a.Spooled, a.DeadLetters, a.Failed, a.Unknown, a.NoOutcome, a.Lost,
				a.DupExplained, a.DupUnexplained, a.Reordered, a.AbortedReads, a.TornTransactions, a.InSpool, mdEscape(kc), a.Promise, a.kept, a.checked)
			for _, e := range a.errors {
				fmt.Fprintf(&b, "| | | run error: %s |||||||||||||||||\n", mdEscape(e))
			}
		}
		b.WriteString("\n")
	}
	if len(broken) > 0 {
		b.WriteString("#### Broken promises: evidence\n\n")
		for _, o := range broken {
			fmt.Fprintf(&b, "%s/%s #%d (seed %d):\n\n```\n", o.Scenario, o.Path, o.Iteration, o.Seed)
			for _, l := range o.Timeline {
				b.WriteString("timeline " + l + "\n")
			}
			kinds := make([]string, 0, len(o.Report.Evidence))
			for k := range o.Report.Evidence {
				kinds = append(kinds, k)
			}
			sort.Strings(kinds)
			for _, k := range kinds {
				lines := o.Report.Evidence[k]
				if len(lines) > 12 {
					lines = lines[:12]
				}
				for _, l := range lines {
					b.WriteString(k + ": " + l + "\n")
				}
			}
			b.WriteString("```\n\n")
		}
	}
	b.WriteString(endMarker + "\n")

	old, err := os.ReadFile(dst)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	if i >= 0 && j > i {
		s = s[:i] + b.String() + s[j+len(endMarker)+1:]
	} else {
		s += "\n" + b.String()
	}
	return os.WriteFile(dst, []byte(s), 0o644)
}

func mdEscape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
