package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq/spool"
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
		{"unknown", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"inspect", []string{"inspect", "--show", "3", dir}, 0, []string{"records   10", "orders.DLT", "first 3 records", "timeout", "recovery  0 torn"}},
		{"inspect missing dir", []string{"inspect", dir + "-nope"}, 1, []string{"no such file"}},
		{"purge without --yes", []string{"purge", dir}, 2, []string{"add --yes", "records   10"}},
		{"replay without brokers", []string{"replay", dir}, 2, []string{"needs --brokers"}},
		{"replay", []string{"replay", "--brokers", c.ListenAddrs()[0], dir}, 0, []string{"replaying 10 record(s)", "replayed  10", "left      0"}},
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
