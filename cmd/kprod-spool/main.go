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
// bytes are moved to DIR/quarantine.
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
  kprod-spool inspect [--show N] DIR       count, oldest and per-topic records; --show lists the first N
  kprod-spool replay [--brokers B] [--chunk N] [--to-dead-letter] [--dead-letter-topic P] DIR
                                           send every record to Kafka in spool order, removing each once acknowledged;
                                           the producer is configured by KPROD_* variables (KPROD_BROKERS,
                                           KPROD_TLS_*, KPROD_SASL_*, ...), --brokers overriding KPROD_BROKERS
  kprod-spool purge --yes DIR              delete every record (they are lost)

inspect is read-only (no lock, no repair: it reports what the next open would
repair). replay and purge open the spool as the owning service would (stop it
first), so they repair it: torn tails are cut, damaged bytes moved to
DIR/quarantine.
`

// run is main without the process: it returns the exit code (0 ok, 1
// failure, 2 usage).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
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
		return 0
	default:
		fmt.Fprintf(stderr, "kprod-spool: unknown command %q\n%s", args[0], usage)
		return 2
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "kprod-spool: %v\n%s", err, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "kprod-spool: %v\n", err)
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

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
	return nil
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
	r := s.Recovery()
	if readOnly {
		fmt.Fprintf(w, "recovery  %d torn tail(s) (%d bytes), %d damaged range(s): read-only, nothing changed; the next writable open cuts and quarantines them\n", r.TornTails, r.TornBytes, len(r.Quarantined))
	} else {
		fmt.Fprintf(w, "recovery  %d torn tail(s) cut (%d bytes), %d damaged range(s) quarantined\n", r.TornTails, r.TornBytes, len(r.Quarantined))
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
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx))
	start := time.Now()
	st, err := dlq.Replay(ctx, s, p, dlq.Config{DeadLetterTopic: *dltPattern, Replay: dlq.ReplayConfig{Chunk: *chunk, ToDeadLetter: *toDLT}})
	fmt.Fprintf(w, "replayed  %d record(s) in %v\n", st.Sent, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "left      %d record(s)\n", s.Len())
	if st.Quarantined > 0 {
		fmt.Fprintf(w, "damaged   %d record(s) quarantined during replay\n", st.Quarantined)
	}
	if errors.Is(err, dlq.ErrSetAside) {
		return fmt.Errorf("replayed, but records need an operator: %w", err)
	}
	if err != nil {
		return fmt.Errorf("replay stopped (records kept in order, run again): %w", err)
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
