package txn_test

import (
	"context"
	"errors"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/txn"
)

// TestKcatReadCommitted: librdkafka (through kcat) with
// isolation.level=read_committed sees exactly the committed records:
// not those of the aborted transaction between them.
func TestKcatReadCommitted(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat (librdkafka CLI) not installed: apt-get install kcat")
	}
	c := cluster(t)
	p := newTxnProducer(t, c, txn.Config{ID: "interop"})
	ctx := testkit.Ctx(t, 60*time.Second)
	errAbort := errors.New("abort")
	for _, step := range []struct {
		tag    string
		commit bool
	}{{"first", true}, {"aborted", false}, {"second", true}} {
		err := p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
			for i := range 6 {
				if _, err := tx.Send(ctx, rec("orders", step.tag, i).AtPartition(int32(i%3))); err != nil {
					return err
				}
			}
			if !step.commit {
				return errAbort
			}
			return nil
		})
		if step.commit != (err == nil) {
			t.Fatalf("%s: Run = %v", step.tag, err)
		}
	}
	read := func(isolation string) []string {
		kctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(kctx, kcat, "-C", "-b", c.ListenAddrs()[0], "-t", "orders",
			"-X", "isolation.level="+isolation, "-o", "beginning", "-e", "-q", "-f", "%k %s\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kcat: %v\n%s", err, out)
		}
		var vals []string
		for line := range strings.Lines(strings.TrimSpace(string(out))) {
			if f := strings.Fields(line); len(f) == 2 {
				vals = append(vals, f[1])
			}
		}
		sort.Strings(vals)
		return vals
	}
	want := append(tags("first", 6), tags("second", 6)...)
	sort.Strings(want)
	if got := read("read_committed"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("kcat read_committed saw %v, want %v", got, want)
	}
	// The aborted records are in the log: read_uncommitted shows them.
	if got := read("read_uncommitted"); len(got) != 18 {
		t.Fatalf("kcat read_uncommitted saw %d records %v, want all 18", len(got), got)
	}
}
