package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Report is what check prints: the counts of one run and the log lines
// behind each anomaly.
type Report struct {
	Path string `json:"path"`
	// What the workload's log claims.
	Sent        int `json:"sent"`
	Acked       int `json:"acked"` // acknowledged on the topic (transactional: in a committed transaction)
	Spooled     int `json:"spooled"`
	DeadLetters int `json:"dead_lettered"`
	Failed      int `json:"failed"`     // returned to the caller as an error
	Unknown     int `json:"unknown"`    // the caller stopped waiting (ErrOutcomeUnknown, ErrCommitUnknown)
	NoOutcome   int `json:"no_outcome"` // intent logged, no outcome: the producer was killed first
	InSpool     int `json:"in_spool"`   // what the spool held when the last incarnation exited
	// What the topics hold.
	Read     int `json:"read"`     // records read (duplicates included)
	Distinct int `json:"distinct"` // distinct IDs read
	Unlogged int `json:"unlogged"` // IDs read that the log has no intent for
	// The anomalies.
	Lost             int `json:"lost"` // claimed acked, spooled, dead-lettered or committed, and absent
	DupExplained     int `json:"dup_explained"`
	DupUnexplained   int `json:"dup_unexplained"`
	Reordered        int `json:"reordered"` // records read after a later record of their key and incarnation
	AbortedReads     int `json:"aborted_reads"`
	TornTransactions int `json:"torn_transactions"`
	// kcat, read_committed (transactional paths with -kcat).
	KcatRecords int    `json:"kcat_records,omitempty"`
	KcatAgrees  string `json:"kcat_agrees,omitempty"` // "yes", "no: why", or why it did not run
	// Promise is what kprod promises on this path; Kept whether it held.
	Promise  string              `json:"promise"`
	Kept     bool                `json:"kept"`
	Evidence map[string][]string `json:"evidence,omitempty"`
}

type idState struct {
	intent, ack, spooled, dead, fail, unknown, amb bool
	txn                                            string
	lines                                          []string
}

type txnState struct {
	ids     []string
	outcome string // commit, abort, unknown-commit, "" (none logged)
	lines   []string
}

type readRec struct {
	id, key   string
	partition int32
	offset    int64
	topic     string
}

func runCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "bootstrap servers, comma-separated")
	path := fs.String("path", "reliable", "the workload's -path")
	topic := fs.String("topic", "chaos", "the workload's -topic")
	logPath := fs.String("log", "", "the workload's claims log (required)")
	out := fs.String("out", "", "also write the report here")
	useKcat := fs.Bool("kcat", false, "transactional paths: read again with kcat -X isolation.level=read_committed")
	idle := fs.Duration("idle", 3*time.Second, "stop reading after this long without a record")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *logPath == "" {
		return errors.New("-log is required")
	}
	ids, txns, inSpool, err := parseLog(*logPath)
	if err != nil {
		return err
	}
	transactional := *path == pathTxn || *path == pathPool
	addrs := strings.Split(*brokers, ",")
	recs, err := readBack(ctx, addrs, []string{*topic, *topic + ".DLT"}, transactional, *idle)
	if err != nil {
		return err
	}
	rep := judge(*path, ids, txns, inSpool, recs)
	if transactional && *useKcat {
		kcatCompare(ctx, &rep, *brokers, *topic, recs)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if *out != "" {
		if err := os.WriteFile(*out, js, 0o644); err != nil {
			return err
		}
	}
	_, err = fmt.Fprintf(stdout, "%s\n", js)
	return err
}

func parseLog(path string) (map[string]*idState, map[string]*txnState, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	defer f.Close()
	ids := map[string]*idState{}
	txns := map[string]*txnState{}
	get := func(id string) *idState {
		s := ids[id]
		if s == nil {
			s = &idState{}
			ids[id] = s
		}
		return s
	}
	inSpool := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue // a torn last line
		}
		ev, id := fields[0], fields[1]
		switch ev {
		case "intent", "ack", "spooled", "dead", "fail", "unknown":
			s := get(id)
			s.lines = append(s.lines, line)
			amb := strings.Contains(line, " amb=true")
			switch ev {
			case "intent":
				s.intent = true
			case "ack":
				s.ack = true
			case "spooled":
				s.spooled, s.amb = true, s.amb || amb
			case "dead":
				s.dead, s.amb = true, s.amb || amb
			case "fail":
				s.fail, s.amb = true, s.amb || amb
			case "unknown":
				s.unknown, s.amb = true, true
			}
		case "begin":
			t := &txnState{lines: []string{line}}
			if len(fields) > 2 {
				t.ids = strings.Split(strings.TrimPrefix(fields[2], "ids="), ",")
			}
			txns[id] = t
			for _, rid := range t.ids {
				s := get(rid)
				s.intent, s.txn = true, id
			}
		case "commit", "abort", "unknown-commit":
			if t := txns[id]; t != nil {
				t.outcome = ev
				t.lines = append(t.lines, line)
			}
		case "end":
			for _, f := range fields[2:] {
				if v, ok := strings.CutPrefix(f, "spool="); ok {
					inSpool, _ = strconv.Atoi(v)
				}
			}
		}
	}
	return ids, txns, inSpool, sc.Err()
}

// readBack reads every record of topics from the start, read_committed or
// not, until each partition reached its end offset or nothing arrived for
// idle.
func readBack(ctx context.Context, addrs, topics []string, committed bool, idle time.Duration) ([]readRec, error) {
	adm, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return nil, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, topics...)
	adm.Close()
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	want := map[string]map[int32]int64{}
	var present []string
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			return
		}
		if want[o.Topic] == nil {
			want[o.Topic] = map[int32]int64{}
			present = append(present, o.Topic)
		}
		if o.Offset > 0 {
			want[o.Topic][o.Partition] = o.Offset
		}
	})
	if len(present) == 0 {
		return nil, fmt.Errorf("none of %v exists", topics)
	}
	iso := kgo.ReadUncommitted()
	if committed {
		iso = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(present...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(iso))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []readRec
	deadline := time.Now().Add(2 * time.Minute)
	remaining := func() int {
		n := 0
		for _, ps := range want {
			n += len(ps)
		}
		return n
	}
	for remaining() > 0 && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, idle)
		fetches := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		got := 0
		fetches.EachRecord(func(r *kgo.Record) {
			got++
			out = append(out, readRec{id: valueID(r.Value), key: string(r.Key), partition: r.Partition, offset: r.Offset, topic: r.Topic})
			if end, ok := want[r.Topic][r.Partition]; ok && r.Offset+1 >= end {
				delete(want[r.Topic], r.Partition)
			}
		})
		if got == 0 {
			break // idle: read_committed stops short of trailing control records
		}
	}
	return out, nil
}

func judge(path string, ids map[string]*idState, txns map[string]*txnState, inSpool int, recs []readRec) Report {
	rep := Report{Path: path, InSpool: inSpool, Read: len(recs), Evidence: map[string][]string{}}
	evid := func(kind string, lines ...string) {
		if len(rep.Evidence[kind]) < 40 {
			rep.Evidence[kind] = append(rep.Evidence[kind], lines...)
		}
	}
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.id]++
	}
	rep.Distinct = len(seen)
	transactional := path == pathTxn || path == pathPool
	for id, s := range ids {
		if !s.intent {
			continue
		}
		rep.Sent++
		claimed := false
		if transactional {
			t := txns[s.txn]
			switch t.outcome {
			case "commit":
				rep.Acked++
				claimed = true
			case "unknown-commit":
				rep.Unknown++
			case "abort":
				rep.Failed++
			default:
				rep.NoOutcome++
			}
		} else {
			switch {
			case s.ack:
				rep.Acked++
			case s.spooled:
				rep.Spooled++
			case s.dead:
				rep.DeadLetters++
			case s.unknown:
				rep.Unknown++
			case s.fail:
				rep.Failed++
			default:
				rep.NoOutcome++
			}
			claimed = s.ack || s.spooled || s.dead
		}
		if claimed && seen[id] == 0 {
			rep.Lost++
			evid("lost", s.lines...)
		}
	}
	for id, n := range seen {
		s := ids[id]
		if s == nil || !s.intent {
			rep.Unlogged++
			continue
		}
		if n < 2 {
			continue
		}
		explained := s.amb
		if transactional {
			explained = txns[s.txn].outcome == "unknown-commit"
		}
		if explained {
			rep.DupExplained++
		} else {
			rep.DupUnexplained++
			evid("duplicated", append([]string{fmt.Sprintf("read %s %d times", id, n)}, s.lines...)...)
		}
	}
	// Per key and incarnation, record numbers must rise in log order;
	// only each ID's first copy counts (copies are duplicates, not
	// reorders).
	type kk struct{ key, inc string }
	sorted := append([]readRec(nil), recs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].topic != sorted[j].topic {
			return sorted[i].topic < sorted[j].topic
		}
		if sorted[i].partition != sorted[j].partition {
			return sorted[i].partition < sorted[j].partition
		}
		return sorted[i].offset < sorted[j].offset
	})
	last := map[kk]int{}
	lastID := map[kk]string{}
	first := map[string]bool{}
	for _, r := range sorted {
		if first[r.id] || strings.HasSuffix(r.topic, ".DLT") {
			continue
		}
		first[r.id] = true
		inc, num, ok := strings.Cut(r.id, ".")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		k := kk{r.key, inc}
		if prev, ok := last[k]; ok && n < prev {
			rep.Reordered++
			evid("reordered", fmt.Sprintf("key %s: %s at %s/%d@%d after %s", r.key, r.id, r.topic, r.partition, r.offset, lastID[k]))
			continue
		}
		last[k], lastID[k] = n, r.id
	}
	if transactional {
		for tid, t := range txns {
			n := 0
			for _, id := range t.ids {
				if seen[id] > 0 {
					n++
				}
			}
			if t.outcome == "abort" && n > 0 {
				rep.AbortedReads += n
				evid("aborted_read", append([]string{fmt.Sprintf("%s: %d of %d records read committed", tid, n, len(t.ids))}, t.lines...)...)
			}
			if n > 0 && n < len(t.ids) {
				rep.TornTransactions++
				evid("torn", append([]string{fmt.Sprintf("%s: %d of %d records read committed", tid, n, len(t.ids))}, t.lines...)...)
			}
		}
	}
	switch {
	case transactional:
		rep.Promise = "0 aborted reads, 0 torn transactions, 0 lost commits"
		rep.Kept = rep.AbortedReads == 0 && rep.TornTransactions == 0 && rep.Lost == 0
	case path == pathDLQ:
		rep.Promise = "0 lost among accepted (acked, spooled or dead-lettered)"
		rep.Kept = rep.Lost == 0
	default:
		rep.Promise = "0 lost among acknowledged, 0 unexplained duplicates"
		rep.Kept = rep.Lost == 0 && rep.DupUnexplained == 0
	}
	if len(rep.Evidence) == 0 {
		rep.Evidence = nil
	}
	return rep
}

// kcatCompare reads topic again with kcat (librdkafka) read_committed and
// says whether it saw the same records franz-go did.
func kcatCompare(ctx context.Context, rep *Report, brokers, topic string, recs []readRec) {
	bin, err := exec.LookPath("kcat")
	if err != nil {
		rep.KcatAgrees = "not run: kcat is not installed"
		return
	}
	kctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(kctx, bin, "-C", "-b", brokers, "-t", topic, "-o", "beginning", "-e", "-q",
		"-X", "isolation.level=read_committed", "-f", "%s\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		rep.KcatAgrees = fmt.Sprintf("not run: kcat: %v: %s", err, strings.TrimSpace(stderr.String()))
		return
	}
	kc := map[string]int{}
	for _, line := range strings.Split(string(outb), "\n") {
		if line == "" {
			continue
		}
		rep.KcatRecords++
		kc[valueID([]byte(line))]++
	}
	fr := map[string]int{}
	for _, r := range recs {
		if r.topic == topic {
			fr[r.id]++
		}
	}
	diff := 0
	for id, n := range fr {
		if kc[id] != n {
			diff++
		}
	}
	for id := range kc {
		if _, ok := fr[id]; !ok {
			diff++
		}
	}
	if diff == 0 {
		rep.KcatAgrees = "yes"
	} else {
		rep.KcatAgrees = fmt.Sprintf("no: %d IDs read a different number of times", diff)
	}
}
