package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var causes = []error{
	&kafkaproducer.BadInputError{Topic: "orders", Side: kafkaproducer.SideValue, Err: errors.New("json: cannot unmarshal")},
	kafkaproducer.WithClass(kafkaproducer.ClassFatal, errors.New("schema registry: subject not found")),
	kafkaproducer.WithClass(kafkaproducer.ClassAuthorization, errors.New("payment gateway denied")),
}

// fill writes n dead letters for "orders" with cause i%3 and returns the
// record IDs of each cause.
func fill(t *testing.T, c *kfake.Cluster, n int) [3][]string {
	t.Helper()
	p := testkit.Producer(t, c, presets.Reliable())
	d, err := dlq.New(p, dlq.Config{SpringHeaders: true, Replay: dlq.ReplayConfig{Disable: true}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 60*time.Second)
	var ids [3][]string
	for i := range n {
		res, err := d.DeadLetter(ctx, kafkaproducer.Record{Topic: "orders", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n":%d}`, i)}, causes[i%3])
		if err != nil {
			t.Fatal(err)
		}
		ids[i%3] = append(ids[i%3], dlq.RecordID(res.DeadLetter.Record, dlq.DefaultRecordIDHeader))
	}
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// ids counts the records on topic by record ID.
func ids(t *testing.T, c *kfake.Cluster, topic string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range testkit.ConsumeAll(t, c.ListenAddrs(), topic, 30*time.Second) {
		for _, h := range r.Headers {
			if h.Key == dlq.DefaultRecordIDHeader {
				got[string(h.Value)]++
			}
		}
	}
	return got
}

func exactlyOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	dups := 0
	for _, n := range got {
		dups += max(0, n-1)
	}
	if len(got) != len(want) || dups > 0 {
		t.Errorf("%d distinct record IDs (%d duplicates), want %d once each", len(got), dups, len(want))
	}
	for _, id := range want {
		if got[id] != 1 {
			t.Errorf("record %s %d times", id, got[id])
			return
		}
	}
}

func TestCommands(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	want := fill(t, c, 12)
	b := c.ListenAddrs()[0]
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"no args", nil, 2, []string{"usage:"}},
		{"help", []string{"--help"}, 0, []string{"usage:", "exit status", "3 replay"}},
		{"unknown", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"inspect help", []string{"inspect", "--help"}, 0, []string{"--show N", "--format F", "--class", "--header K=V", "--brokers", "KPROD_", "exit status"}},
		{"replay help", []string{"replay", "--help"}, 0, []string{"--to-topic", "--group", "--rate", "--dry-run", "--chunk", "--keep-timestamps", "--progress", "kprod-dlt-previous-", "kprod-dlt-replay-count", "--since", "--from-offset", "exit status", "3 records failed again"}},
		{"bad flag", []string{"inspect", "--bogus", "orders.DLT"}, 2, []string{"flag provided but not defined", "usage: kprod-dlt inspect"}},
		{"no topic", []string{"replay", "--brokers", b}, 2, []string{"give exactly one dead-letter topic"}},
		{"bad class", []string{"replay", "--brokers", b, "--class", "oops", "orders.DLT"}, 2, []string{`--class "oops"`}},
		{"no brokers", []string{"inspect", "orders.DLT"}, 2, []string{"needs --brokers or KPROD_BROKERS"}},
		{"inspect", []string{"inspect", "--brokers", b, "orders.DLT"}, 0, []string{"read      12 dead letter(s)", "selected  12", "bad_input", "fatal", "authorization", `key "*"`}},
		{"inspect one", []string{"inspect", "--brokers", b, "--partition", "0", "--offset", "0", "--format", "json", "orders.DLT"}, 0, []string{"orders.DLT[0]@0", "kafka_dlt-original-offset = -1 (binary, 8 bytes)", `"n":`, "failure", "spring"}},
		{"inspect missing topic", []string{"inspect", "--brokers", b, "nope.DLT"}, 1, []string{"does not exist"}},
		{"dry run", []string{"replay", "--brokers", b, "--dry-run", "--class", "fatal", "orders.DLT"}, 0, []string{"dry run", "selected  4", "would send 4", "orders  4"}},
		{"replay one cause", []string{"replay", "--brokers", b, "--class", "bad_input", "orders.DLT"}, 0, []string{"selected  4", "replayed  4", "failed again 0"}},
		{"replay again resumes", []string{"replay", "--brokers", b, "--class", "bad_input", "orders.DLT"}, 0, []string{"resumed", "read      0 of 0", "replayed  0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCmd(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errs)
			}
			for _, w := range tt.contains {
				if !strings.Contains(out+errs, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errs)
				}
			}
		})
	}
	exactlyOnce(t, ids(t, c, "orders"), want[0])
}

func TestFailedAgainExits3(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	fill(t, c, 6)
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "orders", Err: kerr.MessageTooLarge, Count: -1})
	code, out, errs := runCmd(t, "replay", "--brokers", c.ListenAddrs()[0], "--class", "fatal", "orders.DLT")
	if code != 3 || !strings.Contains(out, "failed again 2") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCmd(t, "inspect", "--brokers", c.ListenAddrs()[0], "--show", "10", "--class", "fatal", "--from-offset", "0", "orders.DLT")
	if code != 0 || !strings.Contains(out, "previous 1") || !strings.Contains(out, "MESSAGE_TOO_LARGE") || !strings.Contains(out, "replayed    1 time(s) before") {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
}

// buildBinary builds kprod-dlt for a test that runs it as a process; a
// short run skips such tests.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "kprod-dlt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Skipf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestKillAndResume runs the built binary, kills it mid-replay (SIGTERM,
// then SIGKILL) and runs it again: every selected record reaches its
// topic exactly once.
func TestKillAndResume(t *testing.T) {
	bin := buildBinary(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
			want := fill(t, c, 1500)
			sel := append(append([]string(nil), want[0]...), want[2]...) // bad_input, authorization: 1000
			args := []string{"replay", "--brokers", c.ListenAddrs()[0], "--class", "bad_input,authorization", "--rate", "1000", "--chunk", "50", "orders.DLT"}
			cmd := exec.Command(bin, args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			testkit.WaitFor(t, 30*time.Second, "300 records replayed", func() bool { return endOffset(t, c, "orders") >= 300 })
			_ = cmd.Process.Signal(sig)
			err := cmd.Wait()
			first := endOffset(t, c, "orders")
			t.Logf("%v after %d records: %v\n%s", sig, first, err, out.String())
			if first >= int64(len(sel)) {
				t.Fatalf("the first run finished before the %v", sig)
			}
			// The same selection, without the rate limit.
			code, stdout, stderr := runCmd(t, append(args[:5:5], "orders.DLT")...)
			if code != 0 || !strings.Contains(stdout, "resumed") {
				t.Fatalf("rerun exit %d\n%s%s", code, stdout, stderr)
			}
			t.Logf("rerun:\n%s", stdout)
			exactlyOnce(t, ids(t, c, "orders"), sel)
		})
	}
}

// TestInterrupt runs the built binary against a broker that never
// answers produce requests and interrupts it: after one SIGINT it waits
// out the replay's grace period (10s) and Close's second, not Close's own
// 10s again, and exits 1; a second SIGINT kills it at once.
func TestInterrupt(t *testing.T) {
	bin := buildBinary(t)
	t.Run("once", func(t *testing.T) {
		t.Parallel()
		cmd, out := interruptedReplay(t, bin)
		sent := time.Now()
		kill := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
		err := cmd.Wait()
		kill.Stop()
		took := time.Since(sent)
		if code := cmd.ProcessState.ExitCode(); code != 1 || took > 14*time.Second || !strings.Contains(out.String(), "interrupted") {
			t.Fatalf("after SIGINT: %v (exit %d), %v later; want exit 1, interrupted, within the 10s grace and Close's second\n%s", err, code, took, out)
		}
	})
	t.Run("twice", func(t *testing.T) {
		t.Parallel()
		cmd, out := interruptedReplay(t, bin)
		sent := time.Now()
		_ = cmd.Process.Signal(os.Interrupt)
		kill := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() }) // a second signal ignored
		err := cmd.Wait()
		kill.Stop()
		ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if took := time.Since(sent); !ws.Signaled() || ws.Signal() != syscall.SIGINT || took > 5*time.Second {
			t.Fatalf("after the second SIGINT: %v, %v later (want killed by SIGINT at once)\n%s", err, took, out)
		}
	})
}

// interruptedReplay starts bin replaying to a broker that never answers
// produce requests, sends it SIGINT once a produce request is in flight,
// and returns once it says it is stopping: the command is then waiting
// for its records, and its stdout and stderr go to out.
func interruptedReplay(t *testing.T, bin string) (*exec.Cmd, *lockedBuffer) {
	t.Helper()
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	fill(t, c, 6)
	inFlight := make(chan struct{})
	var once sync.Once
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		once.Do(func() { close(inFlight) })
		return nil, nil, true // never answered
	})
	cmd := exec.Command(bin, "replay", "--brokers", c.ListenAddrs()[0], "orders.DLT")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	select {
	case <-inFlight:
	case <-time.After(30 * time.Second):
		t.Fatal("no produce request within 30s")
	}
	_ = cmd.Process.Signal(os.Interrupt)
	testkit.WaitFor(t, 10*time.Second, "the stopping message after SIGINT", func() bool {
		return strings.Contains(out.String(), "signal again to quit at once")
	})
	return cmd, out
}

// lockedBuffer is a bytes.Buffer safe for the command's stdout copier and
// the stderr scanner.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func endOffset(t *testing.T, c *kfake.Cluster, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
