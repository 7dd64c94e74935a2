package chaos

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The stream every run sends: about six seconds of records, with the fault
// somewhere in its middle.
const (
	streamCount = 1800
	streamRate  = 300
	// shortTimeout is the delivery timeout of scenarios whose outage must
	// outlast it (a request timeout of 1s goes with it).
	shortTimeout = "4s"
)

// report is the checker's JSON (cmd/kprod-chaos Report).
type report struct {
	Path             string              `json:"path"`
	Sent             int                 `json:"sent"`
	Acked            int                 `json:"acked"`
	Spooled          int                 `json:"spooled"`
	DeadLetters      int                 `json:"dead_lettered"`
	Failed           int                 `json:"failed"`
	Unknown          int                 `json:"unknown"`
	NoOutcome        int                 `json:"no_outcome"`
	InSpool          int                 `json:"in_spool"`
	Read             int                 `json:"read"`
	Distinct         int                 `json:"distinct"`
	Unlogged         int                 `json:"unlogged"`
	Lost             int                 `json:"lost"`
	DupExplained     int                 `json:"dup_explained"`
	DupUnexplained   int                 `json:"dup_unexplained"`
	Reordered        int                 `json:"reordered"`
	AbortedReads     int                 `json:"aborted_reads"`
	TornTransactions int                 `json:"torn_transactions"`
	KcatRecords      int                 `json:"kcat_records"`
	KcatAgrees       string              `json:"kcat_agrees"`
	Promise          string              `json:"promise"`
	Kept             bool                `json:"kept"`
	Evidence         map[string][]string `json:"evidence"`
}

// run is one scenario on one path, once.
type run struct {
	t        *testing.T
	image    string
	dir      string
	path     string
	rng      *rand.Rand
	extra    []string // workload flags of the scenario
	spool    []string // docker run flags mounting /spool
	timeline []string
	start    time.Time
	nextInc  int
}

func (r *run) note(format string, args ...any) {
	s := fmt.Sprintf("%5.1fs ", time.Since(r.start).Seconds()) + fmt.Sprintf(format, args...)
	r.timeline = append(r.timeline, s)
	r.t.Log(s)
}

// between is a random duration in [lo, hi).
func (r *run) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

// midStream waits for a random moment between 15% and 55% of the stream.
func (r *run) midStream() {
	d := time.Duration(float64(streamCount) / streamRate * float64(time.Second))
	time.Sleep(r.between(d*15/100, d*55/100))
}

func (r *run) startBroker() error {
	_, err := docker("run", "-d", "--name", brokerName, "--label", label+"=broker", "--network", netName, "--ip", brokerIP,
		"-v", filepath.Join(r.dir, "data")+":/data", "--entrypoint", "/kfake-broker", r.image,
		"-listen", "0.0.0.0:9092", "-advertise", brokerAddr, "-data-dir", "/data", "-partitions", "3",
		"-topics", "chaos,chaos.DLT", "-log-level", "warn")
	if err != nil {
		return err
	}
	return waitTCP(brokerAddr, 30*time.Second)
}

// startWorkload starts the next incarnation of the producer with count
// records.
func (r *run) startWorkload(count int) (string, error) {
	inc := r.nextInc
	r.nextInc++
	name := workloadName(inc)
	args := []string{"run", "-d", "--name", name, "--label", label + "=workload", "--network", netName, "--ip", producerIP(inc),
		"-v", filepath.Join(r.dir, "state") + ":/state"}
	args = append(args, r.spool...)
	args = append(args, "--entrypoint", "/kprod-chaos", r.image, "workload",
		"-brokers", brokerAddr, "-path", r.path, "-log", "/state/claims.log", "-spool", "/spool",
		"-inc", strconv.Itoa(inc), "-count", strconv.Itoa(count), "-rate", strconv.Itoa(streamRate))
	args = append(args, r.extra...)
	_, err := docker(args...)
	r.note("producer %s started (%d records)", name, count)
	return name, err
}

// waitWorkloads waits (bounded) for every incarnation to exit, keeping
// their output.
func (r *run) waitWorkloads() error {
	var firstErr error
	for inc := 0; inc < r.nextInc; inc++ {
		name := workloadName(inc)
		code, err := sh(4*time.Minute, "docker", "wait", name)
		if err != nil {
			docker("kill", name)
			code = "hung: " + err.Error()
		}
		out, _ := docker("logs", name)
		os.WriteFile(filepath.Join(r.dir, name+".out"), []byte(out), 0o644)
		if code != "0" && code != "137" && firstErr == nil {
			firstErr = fmt.Errorf("producer %s exited %s: %s", name, code, lastLines(out, 5))
		}
	}
	return firstErr
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// outage pauses the broker for d.
func (r *run) pauseBroker(d time.Duration) {
	must(r, "docker", "pause", brokerName)
	r.note("broker paused for %v", d.Round(time.Millisecond))
	time.Sleep(d)
	must(r, "docker", "unpause", brokerName)
	r.note("broker unpaused")
}

// slowBroker stops and continues the broker for d, a fraction of each
// half-second: every request waits up to that long.
func (r *run) slowBroker(d time.Duration) {
	r.note("broker slowed (paused 250ms of every 500ms) for %v", d.Round(time.Millisecond))
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		must(r, "docker", "pause", brokerName)
		time.Sleep(250 * time.Millisecond)
		must(r, "docker", "unpause", brokerName)
		time.Sleep(250 * time.Millisecond)
	}
	r.note("broker at full speed")
}

func must(r *run, name string, args ...string) {
	if _, err := sh(60*time.Second, name, args...); err != nil {
		r.note("FAULT COMMAND FAILED: %v", err)
	}
}

// scenario is one fault, driven while the workload runs. fault returns
// when the fault is healed; it may kill and start producers.
type scenario struct {
	name  string
	what  string // for the report
	paths []string
	short []string // the paths chaos-short runs
	extra []string
	spool string // "", "tmpfs-1m" or "user-dir" (the producer runs as nobody)
	fault func(r *run) error
}

var plainPaths = []string{"reliable", "high-throughput", "low-latency"}

func scenarios() []scenario {
	return []scenario{
		{
			name: "net-disconnect", what: "the producer's container is disconnected from the broker's network for 3-6s mid-stream (`docker network disconnect`), then reconnected",
			paths: append(append([]string{}, plainPaths...), "dlq", "txn", "pool"), short: []string{"reliable"},
			fault: func(r *run) error {
				r.midStream()
				name := workloadName(0)
				must(r, "docker", "network", "disconnect", netName, name)
				hold := r.between(3*time.Second, 6*time.Second)
				r.note("producer disconnected for %v", hold.Round(time.Millisecond))
				time.Sleep(hold)
				must(r, "docker", "network", "connect", "--ip", producerIP(0), netName, name)
				r.note("producer reconnected")
				return nil
			},
		},
		{
			name: "pause", what: "the broker is paused (`docker pause`) for 5-7s, longer than the delivery timeout (4s, request timeout 1s)",
			paths: []string{"reliable", "dlq", "txn"}, short: []string{"dlq"},
			extra: []string{"-delivery-timeout", shortTimeout, "-request-timeout", "1s"},
			fault: func(r *run) error {
				r.midStream()
				r.pauseBroker(r.between(5*time.Second, 7*time.Second))
				return nil
			},
		},
		{
			name: "broker-kill", what: "the broker is SIGKILLed (`docker kill`) and restarted 1-3s later from its data volume (kfake -data-dir)",
			paths: []string{"reliable", "dlq", "txn"}, short: []string{"txn"},
			fault: func(r *run) error {
				r.midStream()
				must(r, "docker", "kill", "-s", "KILL", brokerName)
				r.note("broker SIGKILLed")
				time.Sleep(r.between(time.Second, 3*time.Second))
				must(r, "docker", "start", brokerName)
				err := waitTCP(brokerAddr, 30*time.Second)
				r.note("broker restarted (%v)", err)
				return err
			},
		},
		{
			name: "producer-kill", what: "during a broker outage (paused) the producer is SIGKILLed; the broker comes back and a new producer process starts on the same spool and claims log, replays the spool and sends 600 more records",
			paths: []string{"reliable", "dlq"},
			extra: []string{"-delivery-timeout", shortTimeout, "-request-timeout", "1s"},
			fault: func(r *run) error {
				r.midStream()
				must(r, "docker", "pause", brokerName)
				hold := r.between(3*time.Second, 6*time.Second)
				r.note("broker paused; producer will be killed after %v", hold.Round(time.Millisecond))
				time.Sleep(hold)
				must(r, "docker", "kill", "-s", "KILL", workloadName(0))
				r.note("producer SIGKILLed")
				time.Sleep(time.Second)
				must(r, "docker", "unpause", brokerName)
				r.note("broker unpaused")
				_, err := r.startWorkload(600)
				return err
			},
		},
		{
			name: "one-way", what: "one-way partition: the producer's network namespace drops every packet from the broker for 3-6s (iptables INPUT DROP through nsenter); its requests still leave",
			paths: []string{"reliable", "dlq"},
			fault: func(r *run) error {
				r.midStream()
				if err := nsIptables(workloadName(0), "-A", "INPUT", "-s", brokerIP, "-j", "DROP"); err != nil {
					return fmt.Errorf("%w: %v", errUnsupported, err)
				}
				hold := r.between(3*time.Second, 6*time.Second)
				r.note("packets from the broker dropped for %v", hold.Round(time.Millisecond))
				time.Sleep(hold)
				if err := nsIptables(workloadName(0), "-D", "INPUT", "-s", brokerIP, "-j", "DROP"); err != nil {
					return err
				}
				r.note("partition healed")
				return nil
			},
		},
		{
			name: "slow-broker", what: "a slow broker: paused 250ms of every 500ms for 4-6s (no netem on this kernel; see below)",
			paths: []string{"low-latency", "pool"},
			fault: func(r *run) error {
				r.midStream()
				r.slowBroker(r.between(4*time.Second, 6*time.Second))
				return nil
			},
		},
		{
			name: "cancel-storm", what: "half of the sends (transactions) get a context that ends after 0-20ms, from 4 goroutines with `Send`, while the broker is slow as above",
			paths: []string{"reliable", "dlq", "txn"},
			extra: []string{"-sync", "-workers", "4", "-cancel-frac", "0.5", "-cancel-max", "20ms"},
			fault: func(r *run) error {
				r.midStream()
				r.slowBroker(r.between(4*time.Second, 6*time.Second))
				return nil
			},
		},
		{
			name: "spool-full", what: "the spool is a 1 MiB tmpfs (`--tmpfs /spool:size=1m`) and the broker is paused for 8-10s while 1 KiB records keep coming",
			paths: []string{"dlq"}, spool: "tmpfs-1m",
			extra: []string{"-delivery-timeout", shortTimeout, "-request-timeout", "1s", "-value-bytes", "1000"},
			fault: func(r *run) error {
				r.midStream()
				r.pauseBroker(r.between(8*time.Second, 10*time.Second))
				return nil
			},
		},
		{
			name: "spool-read-only", what: "during a broker outage (paused 4.5s) the spool directory turns read-only (`chmod 0500`, the producer running as an unprivileged user) for 5.5s, across the broker's return, then writable again. (Remounting the file system read-only is refused while the spool holds a segment open for writing: EBUSY.)",
			paths: []string{"dlq"}, spool: "user-dir",
			extra: []string{"-delivery-timeout", shortTimeout, "-request-timeout", "1s"},
			fault: func(r *run) error {
				r.midStream()
				must(r, "docker", "pause", brokerName)
				r.note("broker paused")
				time.Sleep(2500 * time.Millisecond)
				q := filepath.Join(r.dir, "spool", "q")
				if err := os.Chmod(q, 0o500); err != nil {
					must(r, "docker", "unpause", brokerName)
					return fmt.Errorf("%w: %v", errUnsupported, err)
				}
				r.note("spool directory read-only")
				time.Sleep(2 * time.Second)
				must(r, "docker", "unpause", brokerName)
				r.note("broker unpaused")
				time.Sleep(3500 * time.Millisecond)
				if err := os.Chmod(q, 0o700); err != nil {
					return err
				}
				r.note("spool directory writable")
				return nil
			},
		},
	}
}

var errUnsupported = fmt.Errorf("fault cannot be injected here")

// outcome is one run's result.
type outcome struct {
	Scenario  string   `json:"scenario"`
	Path      string   `json:"path"`
	Iteration int      `json:"iteration"`
	Seed      uint64   `json:"seed"`
	Skipped   string   `json:"skipped,omitempty"`
	Error     string   `json:"error,omitempty"`
	Report    *report  `json:"report,omitempty"`
	Timeline  []string `json:"timeline"`
	Seconds   float64  `json:"seconds"`
}

func TestCampaign(t *testing.T) {
	if why := dockerAvailable(); why != "" {
		t.Skip("chaos: skipped: " + why)
	}
	mode := os.Getenv("CHAOS_MODE")
	if mode == "" {
		mode = "short"
	}
	iterations := 1
	if mode == "full" {
		iterations = 2
	}
	if v := os.Getenv("CHAOS_ITERATIONS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10 {
			t.Fatalf("CHAOS_ITERATIONS=%q: want 1..10", v)
		}
		iterations = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		seed = s
	}
	var only *regexp.Regexp
	if v := os.Getenv("CHAOS_ONLY"); v != "" {
		only = regexp.MustCompile(v)
	}
	t.Logf("chaos: mode %s, %d iteration(s), seed %d (CHAOS_SEED=%d reproduces the fault moments)", mode, iterations, seed, seed)

	cleanup()
	t.Cleanup(cleanup)
	work := t.TempDir()
	image, checker := buildImage(t, work)
	campaignStart := time.Now()
	var outcomes []outcome
	rng := rand.New(rand.NewPCG(seed, 0))
	for _, sc := range scenarios() {
		paths := sc.paths
		if mode != "full" {
			paths = sc.short
		}
		for _, path := range paths {
			if only != nil && !only.MatchString(sc.name+"/"+path) {
				continue
			}
			for it := 0; it < iterations; it++ {
				runSeed := rng.Uint64()
				o := runOnce(t, sc, path, it, runSeed, image, checker, work)
				outcomes = append(outcomes, o)
				if o.Report != nil && !o.Report.Kept {
					t.Errorf("%s/%s #%d: promise broken (%s): %+v\nevidence: %v\ntimeline: %v", sc.name, path, it, o.Report.Promise, *o.Report, o.Report.Evidence, o.Timeline)
				}
				if o.Error != "" {
					t.Errorf("%s/%s #%d: %s", sc.name, path, it, o.Error)
				}
			}
		}
	}
	elapsed := time.Since(campaignStart)
	t.Logf("chaos: %d runs in %v", len(outcomes), elapsed.Round(time.Second))
	js, _ := json.MarshalIndent(outcomes, "", "  ")
	os.WriteFile(filepath.Join(os.TempDir(), "kprod-chaos-results.json"), js, 0o644)
	if dst := os.Getenv("CHAOS_REPORT"); dst != "" {
		if err := writeReport(dst, mode, iterations, seed, elapsed, outcomes); err != nil {
			t.Errorf("report: %v", err)
		} else {
			t.Logf("chaos: results written to %s", dst)
		}
	}
}

var runMu sync.Mutex // one run at a time: they share the network and names

func runOnce(t *testing.T, sc scenario, path string, it int, seed uint64, image, checker, work string) (o outcome) {
	runMu.Lock()
	defer runMu.Unlock()
	o = outcome{Scenario: sc.name, Path: path, Iteration: it, Seed: seed}
	began := time.Now()
	t.Logf("=== %s/%s #%d (seed %d)", sc.name, path, it, seed)
	dir := filepath.Join(work, fmt.Sprintf("%s-%s-%d", sc.name, path, it))
	for _, d := range []string{"data", "state", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			o.Error = err.Error()
			return o
		}
	}
	r := &run{t: t, image: image, dir: dir, path: path, rng: rand.New(rand.NewPCG(seed, 1)), extra: sc.extra, start: time.Now()}
	defer func() {
		o.Timeline = r.timeline
		o.Seconds = time.Since(began).Seconds()
		if ids, _ := docker("ps", "-aq", "--filter", "label="+label); ids != "" {
			docker(append([]string{"rm", "-f", "-v"}, strings.Fields(ids)...)...)
		}
		docker("network", "rm", netName)
		if os.Getenv("CHAOS_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			t.Logf("kept %s", dir)
		}
	}()
	switch sc.spool {
	case "tmpfs-1m":
		r.spool = []string{"--tmpfs", "/spool:size=1m,mode=0700"}
	case "user-dir":
		// The producer runs as nobody, so a directory mode binds it.
		sp := filepath.Join(dir, "spool")
		for _, d := range []string{sp, filepath.Join(sp, "q"), filepath.Join(dir, "state")} {
			err := os.MkdirAll(d, 0o700)
			if err == nil {
				err = os.Chown(d, 65534, 65534)
			}
			if err != nil {
				o.Skipped = "cannot hand the spool to an unprivileged user (needs root): " + err.Error()
				return o
			}
		}
		r.spool = []string{"--user", "65534:65534", "-v", sp + ":/spool"}
	default:
		r.spool = []string{"-v", filepath.Join(dir, "spool") + ":/spool"}
	}
	if _, err := docker("network", "create", "--label", label+"=net", "--subnet", subnet, netName); err != nil {
		o.Error = err.Error()
		return o
	}
	if err := r.startBroker(); err != nil {
		o.Error = err.Error()
		return o
	}
	if _, err := r.startWorkload(streamCount); err != nil {
		o.Error = err.Error()
		return o
	}
	if err := sc.fault(r); err != nil {
		if strings.Contains(err.Error(), errUnsupported.Error()) {
			o.Skipped = err.Error()
		} else {
			o.Error = "fault: " + err.Error()
		}
	}
	if err := r.waitWorkloads(); err != nil && o.Error == "" {
		o.Error = err.Error()
	}
	if o.Skipped != "" {
		return o
	}
	r.note("producers exited; checking")
	out, err := sh(3*time.Minute, checker, "check", "-brokers", brokerAddr, "-path", path,
		"-log", filepath.Join(dir, "state", "claims.log"), "-out", filepath.Join(dir, "result.json"), "-kcat", "-idle", "2s")
	if err != nil {
		o.Error = strings.TrimSpace(o.Error + " check: " + err.Error())
		return o
	}
	var rep report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		o.Error = "check output: " + err.Error()
		return o
	}
	o.Report = &rep
	r.note("checked: sent %d acked %d lost %d dup %d/%d reordered %d aborted-reads %d torn %d in-spool %d kept %t",
		rep.Sent, rep.Acked, rep.Lost, rep.DupExplained, rep.DupUnexplained, rep.Reordered, rep.AbortedReads, rep.TornTransactions, rep.InSpool, rep.Kept)
	return o
}
