package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kprod/kprod/internal/testkit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func fill(t *testing.T, dir string, n int) {
	t.Helper()
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		topic := []string{"orders", "orders.DLT"}[i%2]
		e := spool.Entry{Topic: topic, OriginalTopic: "orders", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i), Class: "timeout", Err: "kprod: delivery timed out"}
		e.ID[15] = byte(i)
		if err := s.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	dir := t.TempDir() + "/spool"
	fill(t, dir, 10)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"no args", nil, 2, []string{"usage:"}},
		{"help", []string{"--help"}, 0, []string{"usage:", "exit status", "3 records set aside"}},
		{"unknown", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"inspect", []string{"inspect", "--show", "3", dir}, 0, []string{"records   10", "orders.DLT", "first 3 records", "timeout", "recovery  0 torn", "set aside none"}},
		{"inspect missing dir", []string{"inspect", dir + "-nope"}, 1, []string{"no such file"}},
		{"purge without --yes", []string{"purge", dir}, 2, []string{"add --yes", "records   10"}},
		{"replay without brokers", []string{"replay", dir}, 2, []string{"needs --brokers or KPROD_BROKERS"}},
		{"replay", []string{"replay", "--brokers", c.ListenAddrs()[0], dir}, 0, []string{"replaying 10 record(s)", "replayed  10", "left      0", "quarantined 0 damaged", "rejected  0 record(s)", "set aside none"}},
		{"inspect empty", []string{"inspect", dir}, 0, []string{"records   0", "oldest    -"}},
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
	if n := len(testkit.Consume(t, c.ListenAddrs(), "orders", 5, false, 10*time.Second)); n != 5 {
		t.Fatalf("orders got %d", n)
	}
	testkit.Consume(t, c.ListenAddrs(), "orders.DLT", 5, false, 10*time.Second)

	fill(t, dir, 4)
	if code, out, _ := runCmd(t, "purge", "--yes", dir); code != 0 || !strings.Contains(out, "purged 4 record(s)") {
		t.Fatalf("purge: %d %s", code, out)
	}
}

// TestReplayFromEnv: replay takes its producer settings (brokers, and so
// TLS and SASL) from the KPROD_* variables; --brokers overrides
// KPROD_BROKERS; a bad variable is reported by name.
func TestReplayFromEnv(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		code     int
		contains string
	}{
		{"brokers from KPROD_BROKERS", map[string]string{"KPROD_BROKERS": c.ListenAddrs()[0]}, nil, 0, "replayed  2"},
		{"--brokers overrides KPROD_BROKERS", map[string]string{"KPROD_BROKERS": "127.0.0.1:1"}, []string{"--brokers", c.ListenAddrs()[0]}, 0, "replayed  2"},
		{"bad variable named", map[string]string{"KPROD_BROKERS": c.ListenAddrs()[0], "KPROD_LINGER": "soon"}, nil, 1, "LINGER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir() + "/spool"
			fill(t, dir, 2)
			args := append(append([]string{"replay"}, tt.args...), dir)
			code, out, errs := runCmd(t, args...)
			if code != tt.code || !strings.Contains(out+errs, tt.contains) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tt.code, tt.contains, out, errs)
			}
		})
	}
}

// TestInspectReadOnly: inspect of a damaged spool reports the damage and
// changes no file (spool.TestReadOnlyOpen also opens beside the owner).
func TestInspectReadOnly(t *testing.T) {
	dir := t.TempDir() + "/spool"
	fill(t, dir, 6)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	var seg string
	for _, f := range segs {
		if fi, err := os.Stat(f); err == nil && fi.Size() > 16 {
			seg = f
		}
	}
	if seg == "" {
		t.Fatalf("no segment with records in %v", segs)
	}
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, 0x6b, 0x70) // a torn tail
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd(t, "inspect", dir)
	if code != 0 || !strings.Contains(out, "records   6") || !strings.Contains(out, "1 torn tail(s) (2 bytes)") || !strings.Contains(out, "nothing changed") {
		t.Fatalf("inspect: exit %d\n%s%s", code, out, errs)
	}
	after, err := os.ReadFile(seg)
	if err != nil || !bytes.Equal(after, data) {
		t.Fatalf("inspect changed the segment (%d bytes, was %d): %v", len(after), len(data), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "quarantine")); err == nil {
		t.Fatal("inspect created a quarantine directory")
	}
}

// damageHeader flips 4 bytes at offset 2 of the first segment of dir
// that holds records (issue #17).
func damageHeader(t *testing.T, dir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	for _, f := range segs {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) <= 16 {
			continue
		}
		for i := 2; i < 6; i++ {
			data[i] ^= 0xff
		}
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no segment with records in %v", segs)
}

// TestSetAside: a segment with a damaged header keeps its records (only
// the 16 header bytes are quarantined); a dead letter Kafka refuses for
// good is rejected. inspect and replay count both, say so, and exit 3
// while DIR/quarantine or DIR/rejected hold files; once the operator
// moves them out, inspect exits 0.
func TestSetAside(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "orders.DLT"})
	dir := t.TempDir() + "/spool"
	fill(t, dir, 20)
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	big := spool.Entry{Topic: "orders.DLT", OriginalTopic: "orders", Value: make([]byte, 2<<20), Class: "bad_input", Err: "too large"}
	big.ID[0] = 0xbb
	if err := s.Append(context.Background(), big); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	damageHeader(t, dir) // the segment with the 20 small records
	steps := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"inspect sees the damage", []string{"inspect", dir}, 3, []string{
			"records   21", "1 damaged range(s) (16 bytes), 20 intact record(s) in damaged segments", "set aside none",
			"records set aside: 1 damaged range(s) the next writable open quarantines"}},
		{"replay keeps the records, quarantines the header, rejects the big one", []string{"replay", "--brokers", c.ListenAddrs()[0], dir}, 3, []string{
			"replaying 21 record(s)", "1 damaged range(s) quarantined (16 bytes), 20 intact record(s) recovered",
			"replayed  20", "left      0", "quarantined 1 damaged range(s) (16 bytes) by this run",
			"rejected  1 record(s) by this run", "set aside 1 damaged range(s) (16 bytes)", "1 rejected record(s) in 1 file(s)"}},
		{"inspect after replay still reports them", []string{"inspect", dir}, 3, []string{
			"records   0", "set aside 1 damaged range(s) (16 bytes)", "1 rejected record(s) in 1 file(s)"}},
	}
	for _, st := range steps {
		code, out, errs := runCmd(t, st.args...)
		t.Logf("%s: exit %d\n%s%s", st.name, code, out, errs)
		if code != st.code {
			t.Fatalf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", st.name, code, st.code, out, errs)
		}
		for _, w := range st.contains {
			if !strings.Contains(out+errs, w) {
				t.Errorf("%s: output lacks %q:\n%s%s", st.name, w, out, errs)
			}
		}
	}
	if n := len(testkit.Consume(t, c.ListenAddrs(), "orders", 10, false, 10*time.Second)); n != 10 {
		t.Fatalf("orders got %d records, want 10", n)
	}
	testkit.Consume(t, c.ListenAddrs(), "orders.DLT", 10, false, 10*time.Second)

	// The operator takes the files away: nothing is set aside any more.
	for _, sub := range []string{"quarantine", "rejected"} {
		if err := os.Rename(filepath.Join(dir, sub), filepath.Join(t.TempDir(), sub)); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errs := runCmd(t, "inspect", dir); code != 0 || !strings.Contains(out, "set aside none") {
		t.Fatalf("inspect after clean-up: exit %d\n%s%s", code, out, errs)
	}
}

// TestReplayOnBareCluster: replay against a broker with no topics. With
// auto-creation off the records stay in the spool and replay says which
// topic is missing and what to do; with KPROD_AUTO_CREATE_TOPICS on a
// broker that allows it, the topic is created and the records replayed.
func TestReplayOnBareCluster(t *testing.T) {
	t.Run("auto-creation off", func(t *testing.T) {
		c := testkit.Cluster(t, nil)
		t.Setenv("KPROD_BROKERS", c.ListenAddrs()[0])
		dir := t.TempDir() + "/spool"
		fill(t, dir, 2)
		code, out, errs := runCmd(t, "replay", dir)
		if code == 0 || !strings.Contains(out+errs, "does not exist") || !strings.Contains(out+errs, "AutoCreateTopics") {
			t.Fatalf("exit %d, want a failure naming the missing topic and the fixes:\n%s%s", code, out, errs)
		}
		if code, out, _ := runCmd(t, "inspect", dir); code != 0 || !regexp.MustCompile(`records\s+2\n`).MatchString(out) {
			t.Fatalf("inspect after a refused replay: exit %d, want the 2 records still spooled:\n%s", code, out)
		}
	})
	t.Run("auto-creation on", func(t *testing.T) {
		c := testkit.Cluster(t, nil, kfake.AllowAutoTopicCreation())
		t.Setenv("KPROD_BROKERS", c.ListenAddrs()[0])
		t.Setenv("KPROD_AUTO_CREATE_TOPICS", "true")
		dir := t.TempDir() + "/spool"
		fill(t, dir, 2)
		if code, out, errs := runCmd(t, "replay", dir); code != 0 || !strings.Contains(out, "replayed  2") {
			t.Fatalf("exit %d, want 2 replayed:\n%s%s", code, out, errs)
		}
	})
}
