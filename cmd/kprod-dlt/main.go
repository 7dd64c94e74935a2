// Command kprod-dlt inspects a dead-letter topic and replays selected dead
// letters to their original topic once the cause is fixed (see package
// dlq/dlt, which it is a thin shell over).
//
//	kprod-dlt inspect [filters] [--show N] [--format text|hex|json] DLT
//	kprod-dlt replay  [filters] [--to-topic T] [--group G] [--rate N] [--dry-run] DLT
//
// Both read with read_committed isolation. inspect writes and commits
// nothing. replay keeps its position in a consumer group (by default one
// per selection: derived from DLT, filters and --to-topic) and commits it
// only after the replayed records are acknowledged, so an interrupted or
// killed replay run again with the same arguments sends nothing twice.
//
// Connection settings come from presets.Reliable() overlaid with the
// KPROD_* environment variables (kafkaproducer.FromEnv), TLS and SASL
// included (KPROD_TLS_ENABLED, KPROD_TLS_CA_FILE, KPROD_TLS_CERT_FILE,
// KPROD_TLS_KEY_FILE, KPROD_TLS_SERVER_NAME, KPROD_SASL_MECHANISM,
// KPROD_SASL_USERNAME, KPROD_SASL_PASSWORD_FILE or KPROD_SASL_PASSWORD);
// --brokers overrides KPROD_BROKERS and --client-id KPROD_CLIENT_ID
// (default "kprod-dlt").
//
// Exit status: 0 ok; 1 failure (or interrupted: run again to resume); 2
// usage; 3 replay: some records failed again and went back to the
// dead-letter topic.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kprod/kprod/dlq/dlt"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal ends ctx; stop then restores Go's default
	// handling, so a second one kills the process at once.
	unwatch := context.AfterFunc(ctx, func() {
		stop()
		fmt.Fprintln(os.Stderr, "kprod-dlt: stopping; a replay waits up to 10s for records in flight, then commits (signal again to quit at once)")
	})
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	unwatch()
	stop()
	os.Exit(code)
}

// closeTimeout bounds closing the producer when replay returns. Replay
// has waited for its records by then (an interrupted one for
// dlt.DefaultGrace, and Close then for a second at most); what is still
// unacknowledged after this is abandoned, and the next run looks for it
// on the destination.
const closeTimeout = 10 * time.Second

const usage = `usage:
  kprod-dlt inspect [filters] [--show N] [--format text|hex|json] DLT
        count dead letters by original topic, error class and error; --show lists records with
        their headers decoded (kprod's and Spring's)
  kprod-dlt replay [filters] [--to-topic T] [--group G] [--rate N] [--chunk N] [--dry-run] [--keep-timestamps] DLT
        send the selected dead letters back to their original topic (or --to-topic)

Run "kprod-dlt inspect --help" or "kprod-dlt replay --help" for every flag.

The connection comes from the KPROD_* variables (KPROD_BROKERS, KPROD_TLS_*,
KPROD_SASL_*, ...; kafkaproducer.FromEnv over presets.Reliable()); --brokers
overrides KPROD_BROKERS.

exit status: 0 ok; 1 failure or interrupted (replay: run again to resume);
2 usage; 3 replay: records failed again and went back to the dead-letter topic.
`

const filterHelp = `filters (all must match; none selects every dead letter):
  --topic T           original topic (kprod-dlt-original-topic, else kafka_dlt-original-topic)
  --class C[,C]       error class of any recorded cause (bad_input, authorization, fatal, ...)
  --error TEXT        substring of any recorded cause's error message
  --since T, --until T  failure time window, since <= t < until; RFC 3339 or a duration ago (24h)
  --key K             record key, exactly (--key-hex H for binary keys)
  --header K=V        a header with exactly this value; repeatable
  --record-id ID[,ID] kprod-record-id values
  --partition P[,P]   partitions of the dead-letter topic
  --from-offset N     first offset (inclusive), in each selected partition
  --to-offset N       last offset (exclusive); 0 means the end
`

const connHelp = `connection:
  --brokers B         host:port[,host:port] (default: KPROD_BROKERS)
  --client-id ID      client ID (default: KPROD_CLIENT_ID, else "kprod-dlt")
  TLS, SASL and every other producer setting: KPROD_* variables (kafkaproducer.EnvVars)
`

const inspectHelp = `usage: kprod-dlt inspect [filters] [--show N] [--offset N --partition P] [--format text|hex|json] DLT

Reads the dead-letter topic DLT from its start to its end (read_committed),
writes and commits nothing. Prints the partitions' offsets, the number of
dead letters read and selected, the failure time range, and the selected
dead letters grouped by original topic, error class and error (the record
key and numbers masked), most first.

  --show N            also list the first N selected dead letters with every header decoded
  --offset N          show the dead letter at offset N (with --partition; implies --show 1)
  --format F          how values are shown: text (default; control bytes as '.'), hex, json
                      (indented; a value that is not JSON is shown as text, marked)

` + filterHelp + "\n" + connHelp + `
exit status: 0 ok; 1 failure; 2 usage.
`

const replayHelp = `usage: kprod-dlt replay [filters] [--to-topic T] [--group G] [--rate N] [--chunk N] [--dry-run] [--keep-timestamps] DLT

Sends the selected dead letters of DLT back to their original topic (or
--to-topic), from the group's committed position up to the end of DLT as
of the start (read_committed). Records written to DLT later, including the
ones that fail again now, are left for the next run.

Replayed records keep their key, value, headers, kprod-record-id and
kprod-original-timestamp; the failure headers (kprod-dlt-*, kafka_dlt-*)
are stripped and kprod-dlt-replay-count (1 on the first replay) and
kprod-dlt-replay-source (DLT/partition/offset) are added. Kafka stamps them
with the replay time unless --keep-timestamps.

A record its topic refuses for a fault of its own (bad_input: too large,
invalid) goes back to DLT with both causes: the new one as kprod-dlt-*, the
earlier ones as kprod-dlt-previous-* (exit status 3). A cause that is not
the record's stops the replay with the position just before it (exit
status 1): a denied write (grant the ACL), a producer-level error (fatal,
abortable), a missing topic, a timeout or an unreachable cluster. The
message names the cause; run the same command again once fixed.

The position is a consumer group's committed offsets on DLT, committed
every --chunk records once all replayed records among them are
acknowledged. One group is one selection: by default
kprod-dlt-replay.<DLT>.<hash of the filters and --to-topic>, so the same
command run again resumes (interrupted with Ctrl-C/SIGTERM: exactly where
it stopped; killed: it first looks for what it sent since its last commit
on the destination and skips it), and a different selection starts from
the beginning. Interrupted, it waits at most 10s for records in flight,
then commits before the first unacknowledged one; a second Ctrl-C quits at
once. Records skipped by the filters move the group's position too. A
selection overlapping an earlier one resends their common records (same
kprod-record-id); --group G reuses a position instead.

  --to-topic T        send every selected record to T instead of its original topic
  --group G           consumer group holding the position (default: derived, printed)
  --rate N            at most N records/s (default 0: no limit)
  --chunk N           records per acknowledged, committed step (default 100)
  --dry-run           read and select, print what would be sent; send and commit nothing
  --keep-timestamps   send with the original timestamp (needs KPROD_DELIVERY_TIMEOUT=0)
  --progress          progress line on stderr: auto (default: when stdout is a terminal), always, never

` + filterHelp + "\n" + connHelp + `
exit status: 0 ok; 1 failure or interrupted (run again to resume); 2 usage;
3 records failed again and went back to DLT.
`

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitFailedAgain = 3
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
		err = inspect(ctx, args[1:], stdout)
	case "replay":
		err = replay(ctx, args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "kprod-dlt: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "kprod-dlt %s: %v\n%s", args[0], err, ue.help)
		return exitUsage
	case errors.Is(err, dlt.ErrFailedAgain):
		fmt.Fprintf(stderr, "kprod-dlt: %v\n", err)
		return exitFailedAgain
	default:
		fmt.Fprintf(stderr, "kprod-dlt: %v\n", err)
		return exitFailure
	}
}

type usageError struct{ msg, help string }

func (e usageError) Error() string { return e.msg }

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// common holds the flags both commands take.
type common struct {
	brokers, clientID                  string
	topic, classes, errText            string
	since, until, key, keyHex, ids, ps string
	headers                            stringList
	from, to                           int64
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", "", "")
	fs.StringVar(&c.clientID, "client-id", "", "")
	fs.StringVar(&c.topic, "topic", "", "")
	fs.StringVar(&c.classes, "class", "", "")
	fs.StringVar(&c.errText, "error", "", "")
	fs.StringVar(&c.since, "since", "", "")
	fs.StringVar(&c.until, "until", "", "")
	fs.StringVar(&c.key, "key", "", "")
	fs.StringVar(&c.keyHex, "key-hex", "", "")
	fs.StringVar(&c.ids, "record-id", "", "")
	fs.StringVar(&c.ps, "partition", "", "")
	fs.Var(&c.headers, "header", "")
	fs.Int64Var(&c.from, "from-offset", 0, "")
	fs.Int64Var(&c.to, "to-offset", 0, "")
}

// parse parses args with fs (help printed to w), returning the one DLT.
func parse(fs *flag.FlagSet, args []string, help string, w io.Writer) (string, error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(w, help)
			return "", err
		}
		return "", usageError{err.Error(), help}
	}
	if fs.NArg() != 1 {
		return "", usageError{"give exactly one dead-letter topic (after the flags)", help}
	}
	return fs.Arg(0), nil
}

func (c *common) filter(now time.Time, help string) (dlt.Filter, error) {
	f := dlt.Filter{OriginalTopic: c.topic, ErrorContains: c.errText, FromOffset: c.from, ToOffset: c.to}
	bad := func(format string, a ...any) (dlt.Filter, error) {
		return dlt.Filter{}, usageError{fmt.Sprintf(format, a...), help}
	}
	if c.from < 0 || c.to < 0 {
		return bad("--from-offset and --to-offset must not be negative")
	}
	if c.classes != "" {
		known := map[string]bool{}
		for _, k := range kafkaproducer.Classes() {
			known[k.String()] = true
		}
		for _, cl := range strings.Split(c.classes, ",") {
			if !known[cl] {
				return bad("--class %q: not a kafkaproducer class (%s)", cl, classNames())
			}
			f.Classes = append(f.Classes, cl)
		}
	}
	var err error
	if f.Since, err = when(c.since, now); err != nil {
		return bad("--since: %v", err)
	}
	if f.Until, err = when(c.until, now); err != nil {
		return bad("--until: %v", err)
	}
	switch {
	case c.key != "" && c.keyHex != "":
		return bad("--key and --key-hex together: give one")
	case c.key != "":
		f.Key, f.KeySet = []byte(c.key), true
	case c.keyHex != "":
		if f.Key, err = hex.DecodeString(c.keyHex); err != nil {
			return bad("--key-hex: %v", err)
		}
		f.KeySet = true
	}
	for _, h := range c.headers {
		k, v, ok := strings.Cut(h, "=")
		if !ok || k == "" {
			return bad("--header %q: want KEY=VALUE", h)
		}
		if f.Headers == nil {
			f.Headers = map[string]string{}
		}
		f.Headers[k] = v
	}
	if c.ids != "" {
		f.RecordIDs = strings.Split(c.ids, ",")
	}
	if c.ps != "" {
		for _, s := range strings.Split(c.ps, ",") {
			n, err := strconv.ParseInt(s, 10, 32)
			if err != nil || n < 0 {
				return bad("--partition %q: want partition numbers", s)
			}
			f.Partitions = append(f.Partitions, int32(n))
		}
	}
	return f, nil
}

func classNames() string {
	var s []string
	for _, c := range kafkaproducer.Classes() {
		s = append(s, c.String())
	}
	return strings.Join(s, ", ")
}

// when parses an RFC 3339 time or a duration before now ("24h").
func when(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (90m)", s)
	}
	return now.Add(-d), nil
}

// config is the producer configuration: KPROD_* over presets.Reliable(),
// then the flags.
func (c *common) config(help string) (kafkaproducer.Config, error) {
	cfg, err := kafkaproducer.FromEnv("KPROD_", presets.Reliable())
	if err != nil {
		return cfg, err
	}
	if c.brokers != "" {
		cfg.Brokers = strings.Split(c.brokers, ",")
	}
	if len(cfg.Brokers) == 0 {
		return cfg, usageError{"needs --brokers or KPROD_BROKERS", help}
	}
	switch {
	case c.clientID != "":
		cfg.ClientID = c.clientID
	case cfg.ClientID == "":
		cfg.ClientID = "kprod-dlt"
	}
	return cfg, nil
}

func inspect(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	var c common
	c.register(fs)
	show := fs.Int("show", 0, "")
	offset := fs.Int64("offset", -1, "")
	format := fs.String("format", "text", "")
	topic, err := parse(fs, args, inspectHelp, w)
	if err != nil {
		return err
	}
	switch *format {
	case "text", "hex", "json":
	default:
		return usageError{fmt.Sprintf("--format %q: want text, hex or json", *format), inspectHelp}
	}
	f, err := c.filter(time.Now(), inspectHelp)
	if err != nil {
		return err
	}
	if *offset >= 0 {
		if len(f.Partitions) != 1 {
			return usageError{"--offset needs exactly one --partition", inspectHelp}
		}
		f.FromOffset, f.ToOffset = *offset, *offset+1
		*show = max(*show, 1)
	}
	cfg, err := c.config(inspectHelp)
	if err != nil {
		return err
	}
	sum, err := dlt.Inspect(ctx, cfg, topic, f)
	if err != nil {
		return err
	}
	printSummary(w, sum, f)
	if *show > 0 {
		fmt.Fprintf(w, "\nfirst %d selected dead letter(s):\n", *show)
		n := 0
		err = dlt.Scan(ctx, cfg, topic, f, func(d dlt.DeadLetter) bool {
			printDeadLetter(w, d, *format)
			n++
			return n < *show
		})
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintln(w, "  none")
		}
	}
	return nil
}

func printSummary(w io.Writer, s dlt.Summary, f dlt.Filter) {
	fmt.Fprintf(w, "topic     %s\n", s.Topic)
	var total int64
	var ps []string
	for _, p := range s.Partitions {
		total += p.End - p.Start
		ps = append(ps, fmt.Sprintf("%d:[%d,%d)", p.Partition, p.Start, p.End))
	}
	fmt.Fprintf(w, "offsets   %s\n", strings.Join(ps, " "))
	fmt.Fprintf(w, "read      %d dead letter(s)\n", s.Records)
	fmt.Fprintf(w, "selected  %d (filter: %s)\n", s.Matched, f)
	if s.Matched > 0 {
		fmt.Fprintf(w, "failed    %s .. %s\n", s.First.UTC().Format(time.RFC3339), s.Last.UTC().Format(time.RFC3339))
	}
	if len(s.Groups) == 0 {
		return
	}
	fmt.Fprintln(w, "by original topic, class and error:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  COUNT\tTOPIC\tCLASS\tFIRST\tLAST\tERROR")
	for _, g := range s.Groups {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", g.Count, orDash(g.OriginalTopic), orDash(g.Class),
			g.First.UTC().Format(time.RFC3339), g.Last.UTC().Format(time.RFC3339), printable([]byte(g.Error), 120))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printDeadLetter(w io.Writer, d dlt.DeadLetter, format string) {
	fmt.Fprintf(w, "\n%s[%d]@%d  written %s\n", d.Topic, d.Partition, d.Offset, d.Timestamp.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(w, "  record id   %s\n", orDash(d.RecordID))
	printFailure(w, "  failure    ", d.Failure)
	for i, p := range d.Previous {
		printFailure(w, fmt.Sprintf("  previous %d ", i+1), p)
	}
	if !d.OriginalTimestamp.IsZero() {
		fmt.Fprintf(w, "  original timestamp %s\n", d.OriginalTimestamp.UTC().Format(time.RFC3339Nano))
	}
	if d.ReplayCount > 0 {
		fmt.Fprintf(w, "  replayed    %d time(s) before\n", d.ReplayCount)
	}
	if sp := d.Spring; sp != nil {
		fmt.Fprintf(w, "  spring      topic %s partition %d offset %d timestamp %s (%s)\n", sp.OriginalTopic, sp.OriginalPartition, sp.OriginalOffset,
			sp.OriginalTimestamp.UTC().Format(time.RFC3339Nano), sp.TimestampType)
		fmt.Fprintf(w, "              exception %s, cause %s: %s\n", sp.ExceptionFQCN, sp.CauseFQCN, sp.Message)
	}
	fmt.Fprintf(w, "  key         %s\n", render(d.Key, format))
	fmt.Fprintf(w, "  value       %s\n", render(d.Value, format))
	fmt.Fprintln(w, "  headers:")
	for _, h := range d.Headers {
		fmt.Fprintf(w, "    %s = %s\n", h.Key, headerValue(h.Key, h.Value))
	}
}

func printFailure(w io.Writer, label string, f dlt.Failure) {
	at := "-"
	if !f.FailedAt.IsZero() {
		at = f.FailedAt.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "%s topic %s partition %d class %s attempts %d at %s client %s\n", label, orDash(f.Topic), f.Partition, orDash(f.Class), f.Attempts, at, orDash(f.ClientID))
	fmt.Fprintf(w, "%s error %s\n", strings.Repeat(" ", len(label)), f.Error)
}

// headerValue shows Spring's binary headers decoded and everything else
// as text.
func headerValue(k string, v []byte) string {
	switch {
	case strings.HasPrefix(k, "kafka_dlt-") && (len(v) == 4 || len(v) == 8) && !isText(v):
		var n int64
		for _, b := range v {
			n = n<<8 | int64(b)
		}
		if len(v) == 4 {
			n = int64(int32(n))
		}
		return fmt.Sprintf("%d (binary, %d bytes)", n, len(v))
	}
	return printable(v, 200)
}

func isText(v []byte) bool {
	for _, b := range v {
		if b < 0x20 || b >= 0x7f {
			return false
		}
	}
	return true
}

func render(b []byte, format string) string {
	if b == nil {
		return "<nil>"
	}
	switch format {
	case "hex":
		return hex.EncodeToString(b)
	case "json":
		var v any
		if json.Unmarshal(b, &v) == nil {
			out, _ := json.MarshalIndent(v, "              ", "  ")
			return string(out)
		}
		return "(not JSON) " + printable(b, 1<<20)
	}
	return printable(b, 1<<20)
}

func printable(b []byte, n int) string {
	s := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '.'
		}
		return r
	}, string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

func replay(ctx context.Context, args []string, w, errw io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	var c common
	c.register(fs)
	toTopic := fs.String("to-topic", "", "")
	group := fs.String("group", "", "")
	rate := fs.Float64("rate", 0, "")
	chunk := fs.Int("chunk", dlt.DefaultChunk, "")
	dry := fs.Bool("dry-run", false, "")
	keepTS := fs.Bool("keep-timestamps", false, "")
	progress := fs.String("progress", "auto", "")
	topic, err := parse(fs, args, replayHelp, w)
	if err != nil {
		return err
	}
	if *rate < 0 || *chunk <= 0 {
		return usageError{"--rate must not be negative and --chunk must be positive", replayHelp}
	}
	var showProgress bool
	switch *progress {
	case "auto":
		showProgress = isTerminal(w)
	case "always":
		showProgress = true
	case "never":
	default:
		return usageError{fmt.Sprintf("--progress %q: want auto, always or never", *progress), replayHelp}
	}
	f, err := c.filter(time.Now(), replayHelp)
	if err != nil {
		return err
	}
	cfg, err := c.config(replayHelp)
	if err != nil {
		return err
	}
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	defer func() {
		// Interrupted, Replay has already waited its grace period for
		// the records in flight: Close gets the ended ctx, and waits at
		// most a second more, not closeTimeout again.
		cctx, cancel := context.WithTimeout(ctx, closeTimeout)
		defer cancel()
		if err := p.Close(cctx); err != nil {
			fmt.Fprintf(errw, "kprod-dlt: %v\n", err)
		}
	}()
	rc := dlt.ReplayConfig{DLT: topic, Group: *group, Filter: f, ToTopic: *toTopic, Rate: *rate, Chunk: *chunk, DryRun: *dry, KeepTimestamps: *keepTS}
	if rc.Group == "" {
		rc.Group = dlt.DefaultGroup(topic, f, *toTopic)
	}
	mode := "replaying"
	if *dry {
		mode = "dry run (nothing sent, nothing committed):"
	}
	fmt.Fprintf(w, "%s %s to %s, group %s, filter: %s\n", mode, topic, orDash(*toTopic), rc.Group, f)
	if showProgress {
		rc.Progress = func(s dlt.ReplayStats) {
			fmt.Fprintf(errw, "\r%d/%d read, %d selected, %d replayed, %d failed again", s.Scanned, s.Total, s.Selected, s.Replayed, s.FailedAgain)
		}
	}
	st, err := dlt.Replay(ctx, p, rc)
	if showProgress {
		fmt.Fprintln(errw)
	}
	if st.Resumed {
		fmt.Fprintf(w, "resumed   from the group's committed position\n")
	}
	fmt.Fprintf(w, "read      %d of %d dead letter(s)\n", st.Scanned, st.Total)
	fmt.Fprintf(w, "selected  %d\n", st.Selected)
	if *dry {
		fmt.Fprintf(w, "would send %d\n", sum(st.ByTopic))
	} else {
		rps := 0.0
		if s := st.Elapsed.Seconds(); s > 0 {
			rps = float64(st.Replayed) / s
		}
		fmt.Fprintf(w, "replayed  %d in %v (%.0f records/s)\n", st.Replayed, st.Elapsed.Round(time.Millisecond), rps)
		fmt.Fprintf(w, "failed again %d (back on %s with both causes)\n", st.FailedAgain, topic)
		if st.AlreadyThere > 0 {
			fmt.Fprintf(w, "already there %d (sent by an earlier run killed before it committed; not sent again)\n", st.AlreadyThere)
		}
	}
	if st.NoTopic > 0 {
		fmt.Fprintf(w, "no topic  %d (no original topic in their headers; use --to-topic)\n", st.NoTopic)
	}
	topics := make([]string, 0, len(st.ByTopic))
	for t := range st.ByTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	for _, t := range topics {
		fmt.Fprintf(w, "  %s  %d\n", t, st.ByTopic[t])
	}
	switch {
	case errors.Is(err, dlt.ErrUnacknowledged):
		return fmt.Errorf("interrupted: %w; run the same command again to resume", err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("interrupted; the position is committed: run the same command again to resume")
	}
	return err
}

func sum(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
