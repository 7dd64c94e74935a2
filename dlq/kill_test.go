package dlq_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
)

const (
	envHelper = "KPROD_DLQ_KILL_HELPER"
	envBroker = "KPROD_DLQ_KILL_BROKER"
	envSpool  = "KPROD_DLQ_KILL_SPOOL"
)

// TestKillHelperProcess is not a test: it is the producer process that
// TestSIGKILLMidOutage starts (this test binary, re-executed with
// envHelper set) and kills. It sends records to a broker that is down
// and prints "SPOOLED <id>" for each record reported spooled.
func TestKillHelperProcess(t *testing.T) {
	if os.Getenv(envHelper) != "1" {
		t.Skip("helper process for TestSIGKILLMidOutage")
	}
	p, err := kafkaproducer.New(outageConfig([]string{os.Getenv(envBroker)}))
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	d, err := dlq.New(p, dlq.Config{SpoolDir: os.Getenv(envSpool), Breaker: fastBreaker()})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	for i := 0; ; i++ {
		err := d.SendAsync(context.Background(), rec("orders", i), func(r dlq.Result) {
			if r.Disposition != dlq.Spooled {
				return
			}
			// Printed only after the spool's fsync said yes.
			mu.Lock()
			fmt.Fprintf(out, "SPOOLED %s\n", r.RecordID)
			if out.Buffered() > 4096 {
				out.Flush()
			}
			mu.Unlock()
		})
		if err != nil {
			fmt.Println("ERR", err)
			os.Exit(2)
		}
		if i%1000 == 999 {
			mu.Lock()
			out.Flush()
			mu.Unlock()
		}
	}
}

// TestSIGKILLMidOutage: a producer process is killed with SIGKILL while
// the broker is down; every record it had reported as spooled reaches the
// topic after the broker is back and the spool is replayed.
func TestSIGKILLMidOutage(t *testing.T) {
	if os.Getenv(envHelper) == "1" {
		t.Skip("inside the helper")
	}
	b := newBroker(t, "orders")
	b.stop()
	dir := t.TempDir() + "/spool"
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envHelper+"=1", envBroker+"="+b.addrs()[0], envSpool+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reported := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	const killAfter = 20_000
	deadline := time.Now().Add(40 * time.Second)
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "SPOOLED "); ok && len(id) == 32 {
			reported[id] = true
		} else if strings.HasPrefix(line, "ERR") {
			t.Fatalf("helper: %s", line)
		}
		if len(reported) >= killAfter || time.Now().After(deadline) {
			break
		}
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Read what it printed before dying: those were spooled too. The
	// kill can cut the last line short; a partial ID is not a report.
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), "SPOOLED "); ok && len(id) == 32 {
			reported[id] = true
		}
	}
	_ = cmd.Wait()
	if len(reported) < killAfter {
		t.Fatalf("helper reported only %d spooled records before the deadline", len(reported))
	}

	// Restart the broker; a fresh process opens the spool and replays.
	b.start()
	s, err := spool.Open(dir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep := s.Recovery()
	t.Logf("killed after %d reported spooled; spool holds %d; recovery: torn tails %d (%d bytes), quarantined %d",
		len(reported), s.Len(), rep.TornTails, rep.TornBytes, len(rep.Quarantined))
	p, err := kafkaproducer.New(outageConfig(b.addrs()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := testkit.Ctx(t, 60*time.Second)
	total := s.Len()
	var st spool.DrainStats
	for { // the restarted broker may need a moment before it takes writes
		st, err = dlq.Replay(ctx, s, p, dlq.Config{Replay: dlq.ReplayConfig{Chunk: 5000}})
		if err == nil || ctx.Err() != nil {
			break
		}
		t.Logf("replay attempt: %+v: %v", st, err)
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || s.Len() != 0 {
		t.Fatalf("replay: %+v %v, %d left", st, err, s.Len())
	}
	got := consumeAll(t, b.addrs(), "orders", int(total), 30*time.Second)
	seen := map[string]bool{}
	for _, r := range got {
		seen[string(header(r, dlq.DefaultRecordIDHeader))] = true
	}
	missing := 0
	for id := range reported {
		if !seen[id] {
			missing++
		}
	}
	t.Logf("topic holds %d records for %d spooled", len(got), total)
	if missing != 0 {
		t.Fatalf("%d of %d records reported spooled are not on the topic", missing, len(reported))
	}
}
