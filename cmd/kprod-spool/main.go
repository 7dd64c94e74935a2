// Command kprod-spool inspects, replays and purges a kprod spool
// directory (see package dlq/spool). Stop the service that owns the spool
// before replay or purge: a spool is locked by the process that has it
// open (inspect takes no lock).
//
//	kprod-spool inspect [--show N] DIR
//	kprod-spool replay [--brokers host:port[,host:port]] [--chunk N] [--to-dead-letter] DIR
//	kprod-spool purge --yes DIR
//
// inspect is read-only: it takes no lock (it works while the service
// runs, showing a snapshot) and changes nothing on disk; its recovery line
// says what the next writable open would repair. replay and purge open the
// spool as the service does (stop the service first: they take its lock),
// so they also repair it: a torn tail left by a crash is cut and damaged
// bytes are moved to DIR/quarantine (a damaged segment header costs only
// its 16 bytes: the segment's intact records are kept).
//
// inspect and replay report the records recovered from damaged segments,
// the damaged ranges quarantined and the records rejected (moved to
// DIR/rejected because Kafka refuses them for good), and exit with status
// 3 when anything is set aside: DIR/quarantine or DIR/rejected hold files
// (from this run or an earlier one), or, for inspect, the next writable
// open would quarantine damage. Move the files out of DIR once dealt with.
// Exit status 1 is a failure, 2 a usage error.
//
// replay builds its producer from presets.Reliable() overlaid with the
// KPROD_* environment variables (kafkaproducer.FromEnv), so TLS and SASL
// come from KPROD_TLS_ENABLED, KPROD_TLS_CA_FILE, KPROD_TLS_CERT_FILE,
// KPROD_TLS_KEY_FILE, KPROD_SASL_MECHANISM, KPROD_SASL_USERNAME and
// KPROD_SASL_PASSWORD_FILE (or KPROD_SASL_PASSWORD); --brokers, when
// given, overrides KPROD_BROKERS, and --client-id overrides
// KPROD_CLIENT_ID (default "kprod-spool").
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  kprod-spool inspect [--show N] DIR       count, oldest and per-topic records, damage and records set aside;
                                           --show lists the first N records
  kprod-spool replay [--brokers B] [--chunk N] [--to-dead-letter] [--dead-letter-topic P] [--client-id ID] DIR
                                           send every record to Kafka in spool order, removing each once acknowledged;
                                           the producer is configured by KPROD_* variables (KPROD_BROKERS,
                                           KPROD_TLS_*, KPROD_SASL_*, ...), --brokers overriding KPROD_BROKERS
  kprod-spool purge --yes DIR              delete every record (they are lost)

inspect is read-only (no lock, no repair: it reports what the next open would
repair). replay and purge open the spool as the owning service would (stop it
first), so they repair it: torn tails are cut, damaged bytes moved to
DIR/quarantine; the intact records of a damaged segment are kept.

Records that leave the spool unsent are set aside: damaged bytes in
DIR/quarantine, records Kafka refuses for good in DIR/rejected (segment
format). inspect and replay count them.

exit status: 0 ok; 1 failure; 2 usage; 3 records set aside (inspect, replay):
DIR/quarantine or DIR/rejected hold files, from this run or an earlier one,
or (inspect) the next open would quarantine damage. Move the files out of DIR
once dealt with.
`

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitSetAside = 3
)

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	var err error
	switch args[0] {
	case "inspect":
		err = inspect(args[1:], stdout)
	case "replay":
		err = replay(ctx, args[1:], stdout)
	case "purge":
		err = purge(ctx, args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "kprod-spool: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	var ue usageError
	var se setAsideError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kprod-spool: %v\n%s", err, usage)
		return exitUsage
	case errors.As(err, &se):
		fmt.Fprintf(stderr, "kprod-spool: %v\n", err)
		return exitSetAside
	default:
		fmt.Fprintf(stderr, "kprod-spool: %v\n", err)
		return exitFailure
	}
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// setAsideError says the command did its work but records are set aside
// and wait for an operator (exit status 3).
type setAsideError struct{ msg string }

func (e setAsideError) Error() string { return e.msg }

func parse(fs *flag.FlagSet, args []string) (string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		return "", usageError{"give exactly one spool directory"}
	}
	return fs.Arg(0), nil
}

func openSpool(dir string, readOnly bool) (*spool.Spool, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("spool directory: %w", err)
	}
	return spool.Open(dir, spool.Options{MaxBytes: 1 << 62, ReadOnly: readOnly})
}

func inspect(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	show := fs.Int("show", 0, "list the first N records")
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	s, err := openSpool(dir, true)
	if err != nil {
		return err
	}
	defer s.Close()
	printStats(w, s, true)
	aside, err := printSetAside(w, s)
	if err != nil {
		return err
	}
	if *show > 0 {
		fmt.Fprintf(w, "\nfirst %d records:\n", *show)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  SPOOLED AT\tTOPIC\tRECORD ID\tCLASS\tKEY\tVALUE BYTES\tERROR")
		n := 0
		err := s.Entries(func(e spool.Entry) bool {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.SpooledAt.UTC().Format(time.RFC3339), e.Topic,
				hex.EncodeToString(e.ID[:]), e.Class, printable(e.Key, 24), len(e.Value), printable([]byte(e.Err), 60))
			n++
			return n < *show
		})
		tw.Flush()
		if err != nil {
			return err
		}
	}
	var why []string
	if r := s.Recovery(); len(r.Quarantined) > 0 {
		why = append(why, fmt.Sprintf("%d damaged range(s) the next writable open quarantines", len(r.Quarantined)))
	}
	if !aside.Empty() {
		why = append(why, asideSummary(dir, aside))
	}
	if len(why) > 0 {
		return setAsideError{"records set aside: " + strings.Join(why, "; ")}
	}
	return nil
}

// printSetAside prints what DIR/quarantine and DIR/rejected hold.
func printSetAside(w io.Writer, s *spool.Spool) (spool.SetAside, error) {
	a, err := s.SetAside()
	if err != nil {
		return a, err
	}
	if a.Empty() {
		fmt.Fprintf(w, "set aside none\n")
	} else {
		fmt.Fprintf(w, "set aside %s\n", asideSummary(s.Dir(), a))
	}
	return a, nil
}

func asideSummary(dir string, a spool.SetAside) string {
	return fmt.Sprintf("%d damaged range(s) (%d bytes) in %s, %d rejected record(s) in %d file(s) in %s",
		a.QuarantineFiles, a.QuarantineBytes, filepath.Join(dir, "quarantine"), a.RejectedRecords, a.RejectedFiles, filepath.Join(dir, "rejected"))
}

func printStats(w io.Writer, s *spool.Spool, readOnly bool) {
	st := s.Stats()
	fmt.Fprintf(w, "spool     %s\n", s.Dir())
	fmt.Fprintf(w, "records   %d\n", st.Records)
	fmt.Fprintf(w, "bytes     %d (%s) in %d segment file(s)\n", st.Bytes, human(st.Bytes), st.Segments)
	if st.Oldest.IsZero() {
		fmt.Fprintf(w, "oldest    -\n")
	} else {
		fmt.Fprintf(w, "oldest    %s (%s ago)\n", st.Oldest.UTC().Format(time.RFC3339), time.Since(st.Oldest).Round(time.Second))
	}
	if len(st.PerTopic) > 0 {
		fmt.Fprintf(w, "per topic:\n")
		topics := make([]string, 0, len(st.PerTopic))
		for t := range st.PerTopic {
			topics = append(topics, t)
		}
		sort.Strings(topics)
		width := 0
		for _, t := range topics {
			width = max(width, len(t))
		}
		for _, t := range topics {
			fmt.Fprintf(w, "  %-*s  %d\n", width, t, st.PerTopic[t])
		}
	}
	printRecovery(w, s, readOnly)
}

// printRecovery prints what Open found and repaired (or, read-only, would
// repair).
func printRecovery(w io.Writer, s *spool.Spool, readOnly bool) {
	r := s.Recovery()
	var qBytes int64
	for _, q := range r.Quarantined {
		qBytes += q.Bytes
	}
	switch {
	case r.TornTails == 0 && len(r.Quarantined) == 0:
		fmt.Fprintf(w, "recovery  0 torn tail(s), 0 damaged range(s)\n")
	case readOnly:
		fmt.Fprintf(w, "recovery  %d torn tail(s) (%d bytes), %d damaged range(s) (%d bytes), %d intact record(s) in damaged segments: read-only, nothing changed; the next writable open cuts and quarantines them, keeping the intact records\n",
			r.TornTails, r.TornBytes, len(r.Quarantined), qBytes, r.Recovered)
	default:
		fmt.Fprintf(w, "recovery  %d torn tail(s) cut (%d bytes), %d damaged range(s) quarantined (%d bytes), %d intact record(s) recovered from damaged segments\n",
			r.TornTails, r.TornBytes, len(r.Quarantined), qBytes, r.Recovered)
	}
	for _, q := range r.Quarantined {
		dest := q.File
		if dest == "" {
			dest = "(not moved)"
		}
		fmt.Fprintf(w, "  %s offset %d: %d bytes -> %s (%s)\n", q.Segment, q.Offset, q.Bytes, dest, q.Reason)
	}
}

func printable(b []byte, n int) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\t' {
			return '.'
		}
		return r
	}, string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	if b == nil {
		return "<nil>"
	}
	return s
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func replay(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "bootstrap brokers, host:port[,host:port] (default: KPROD_BROKERS)")
	chunk := fs.Int("chunk", 1000, "records per round trip")
	toDLT := fs.Bool("to-dead-letter", false, "send records to their dead-letter topic instead of their original topic")
	dltPattern := fs.String("dead-letter-topic", dlq.DefaultDeadLetterTopic, "dead-letter topic pattern ({topic} is replaced)")
	clientID := fs.String("client-id", "", `client ID (default: KPROD_CLIENT_ID, else "kprod-spool")`)
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	cfg, err := kafkaproducer.FromEnv("KPROD_", presets.Reliable())
	if err != nil {
		return err
	}
	if *brokers != "" {
		cfg.Brokers = strings.Split(*brokers, ",")
	}
	if len(cfg.Brokers) == 0 {
		return usageError{"replay needs --brokers or KPROD_BROKERS"}
	}
	switch {
	case *clientID != "":
		cfg.ClientID = *clientID
	case cfg.ClientID == "":
		cfg.ClientID = "kprod-spool"
	}
	s, err := openSpool(dir, false)
	if err != nil {
		return err
	}
	defer s.Close()
	before := s.Len()
	fmt.Fprintf(w, "replaying %d record(s) from %s to %s\n", before, dir, strings.Join(cfg.Brokers, ","))
	printRecovery(w, s, false)
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx))
	start := time.Now()
	st, err := dlq.Replay(ctx, s, p, dlq.Config{DeadLetterTopic: *dltPattern, Replay: dlq.ReplayConfig{Chunk: *chunk, ToDeadLetter: *toDLT}})
	fmt.Fprintf(w, "replayed  %d record(s) in %v\n", st.Sent, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "left      %d record(s)\n", s.Len())
	// This run: Open's recovery and the replay.
	ss := s.Stats()
	fmt.Fprintf(w, "quarantined %d damaged range(s) (%d bytes) by this run, %d of them found while replaying\n", ss.QuarantinedRanges, ss.QuarantinedBytes, st.Quarantined)
	fmt.Fprintf(w, "rejected  %d record(s) by this run (Kafka refuses them for good)\n", ss.Rejected)
	aside, asideErr := printSetAside(w, s)
	switch {
	case err != nil && !errors.Is(err, dlq.ErrSetAside):
		return fmt.Errorf("replay stopped (records kept in order, run again): %w", err)
	case asideErr != nil:
		return asideErr
	case ss.QuarantinedRanges+ss.Rejected > 0 || !aside.Empty():
		return setAsideError{fmt.Sprintf("records set aside: %d damaged range(s) quarantined and %d record(s) rejected by this run; in all %s", ss.QuarantinedRanges, ss.Rejected, asideSummary(dir, aside))}
	}
	return nil
}

func purge(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("purge", flag.ContinueOnError)
	yes := fs.Bool("yes", false, "really delete every record")
	dir, err := parse(fs, args)
	if err != nil {
		return err
	}
	s, err := openSpool(dir, false)
	if err != nil {
		return err
	}
	defer s.Close()
	if !*yes {
		printStats(w, s, false)
		return usageError{fmt.Sprintf("purge deletes %d record(s) for good: add --yes", s.Len())}
	}
	n, err := s.Purge(ctx)
	fmt.Fprintf(w, "purged %d record(s) from %s\n", n, dir)
	return err
}
