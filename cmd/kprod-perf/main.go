// Command kprod-perf measures kprod producer throughput and latency, in
// the manner of Kafka's kafka-producer-perf-test. With no
// --bootstrap-server it starts an in-process kfake broker, so it runs
// anywhere; figures against kfake measure the client, not a real cluster.
//
//	kprod-perf --num-records 300000 --record-size 100 --preset high-throughput
//	kprod-perf --compare --num-records 300000
//	kprod-perf --bootstrap-server localhost:9092 --topic perf --producer-prop linger=5ms --producer-prop compression=zstd
//	kprod-perf --transactional --transaction-size 1000 --json
//
// Like Kafka's perf tools on a broker with auto.create.topics.enable, it
// works on a cluster with no topics: it creates --topic when missing
// (topics.Ensure; --partitions, default the broker's num.partitions, and
// --replication-factor, default the broker's default.replication.factor;
// that needs CREATE on the topic or the cluster). An existing topic is
// used as it is; fewer partitions than --partitions is reported, not
// changed.
//
// It prints a progress line every 5 seconds and a final summary with
// percentiles, and exits 1 if any record failed, 2 on bad flags.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "kprod-perf: %v\nrun kprod-perf -h for the flags\n", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintf(os.Stderr, "kprod-perf: %v\n", err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// comparePresets is the order of --compare rows.
var comparePresets = [...]string{presets.NameReliable, presets.NameHighThroughput, presets.NameLowLatency}

// run is main without the process. It writes results (and, without
// --json, progress lines) to stdout and returns a usageError for a bad
// command line, flag.ErrHelp after printing help, or an error if the run
// failed or any record failed.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kprod-perf", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		numRecords    = fs.Int64("num-records", 100_000, "records to send")
		recordSize    = fs.Int("record-size", 100, "value size in bytes")
		throughput    = fs.Float64("throughput", -1, "records/s to aim for; -1 sends as fast as possible")
		preset        = fs.String("preset", presets.NameReliable, "preset: "+strings.Join(presets.Names(), ", "))
		transactional = fs.Bool("transactional", false, "send in transactions of --transaction-size records")
		txnSize       = fs.Int64("transaction-size", 1000, "records per transaction (with --transactional)")
		bootstrap     = fs.String("bootstrap-server", "", "host:port[,host:port]; empty starts an in-process kfake broker")
		topic         = fs.String("topic", "perf", "topic to write")
		partitions    = fs.Int("partitions", 6, "partitions of --topic if kprod-perf creates it; the default applies to the in-process\n"+
			"broker, and with --bootstrap-server the broker's num.partitions does unless this flag is given")
		replication = fs.Int("replication-factor", 0, "replication factor of --topic if kprod-perf creates it; 0 is the broker's default\n"+
			"(default.replication.factor)")
		keys        = fs.Int("keys", 10_000, "distinct keys, used round-robin; 0 sends unkeyed records")
		asJSON      = fs.Bool("json", false, "print the result as one JSON object and no progress lines")
		compare     = fs.Bool("compare", false, "run every preset in turn and print one table")
		reportEvery = fs.Duration("report-interval", 5*time.Second, "time between progress lines")
		props       = props{}
	)
	fs.Var(props, "producer-prop", "producer setting `NAME=value`, repeatable: a KPROD_* variable name without the prefix\n"+
		"(LINGER=5ms, COMPRESSION=zstd), any case, '.' for '_', or a Java name (linger.ms=5)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stdout, "usage: kprod-perf [flags]")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError{err.Error()}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return usagef("unexpected argument %q", fs.Arg(0))
	case *numRecords <= 0:
		return usagef("--num-records must be positive, got %d", *numRecords)
	case *recordSize < 0:
		return usagef("--record-size must not be negative, got %d", *recordSize)
	case *throughput == 0:
		return usagef("--throughput 0 would send nothing: use a positive rate or -1 for unthrottled")
	case *keys < 0:
		return usagef("--keys must not be negative, got %d", *keys)
	case *partitions <= 0 || *partitions > 10_000:
		return usagef("--partitions must be between 1 and 10000, got %d", *partitions)
	case *replication < 0 || *replication > 32767:
		return usagef("--replication-factor must be between 0 (the broker's default) and 32767, got %d", *replication)
	case *transactional && *txnSize <= 0:
		return usagef("--transaction-size must be positive, got %d", *txnSize)
	case set["transaction-size"] && !*transactional:
		return usagef("--transaction-size needs --transactional")
	case *compare && set["preset"]:
		return usagef("--compare runs every preset: drop --preset")
	case *reportEvery <= 0:
		return usagef("--report-interval must be positive, got %v", *reportEvery)
	case strings.TrimSpace(*topic) == "":
		return usagef("--topic must not be empty")
	}
	names := []string{*preset}
	if *compare {
		names = comparePresets[:]
	}
	cfgs := make([]kafkaproducer.Config, len(names))
	for i, name := range names {
		base, err := presets.ByName(name)
		if err != nil {
			return usageError{err.Error()}
		}
		cfg, err := props.apply(base)
		if err != nil {
			return usagef("--producer-prop: %v", err)
		}
		if cfg.TransactionalID != "" && !*transactional {
			return usagef("--producer-prop TRANSACTIONAL_ID needs --transactional")
		}
		if *transactional && cfg.TransactionalID == "" {
			cfg.TransactionalID = "kprod-perf-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		}
		check := cfg
		check.Brokers = []string{"127.0.0.1:9092"} // the real ones are known later
		if err := check.Validate(); err != nil {
			return usagef("preset %s with --producer-prop: %v", name, err)
		}
		cfgs[i] = cfg
	}

	brokers := splitBrokers(*bootstrap)
	where := *bootstrap
	if len(brokers) == 0 {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("kprod: start in-process broker: %w", err)
		}
		defer c.Close()
		brokers = c.ListenAddrs()
		where = "in-process kfake"
	}
	want := topics.Topic{Name: *topic, ReplicationFactor: int16(*replication)}
	if len(splitBrokers(*bootstrap)) == 0 || set["partitions"] {
		want.Partitions = int32(*partitions)
	}
	rep, err := ensureTopic(ctx, cfgs[0], brokers, want)
	if err != nil {
		return err
	}

	o := runOpts{
		numRecords:    *numRecords,
		recordSize:    *recordSize,
		throughput:    *throughput,
		topic:         *topic,
		keys:          *keys,
		transactional: *transactional,
		txnSize:       *txnSize,
		reportEvery:   *reportEvery,
	}
	if !*asJSON {
		o.progress = stdout
		fmt.Fprintf(stdout, "kprod-perf: %d records of %d bytes to %q (%s), keys %d, throughput %s, transactional %v\n",
			o.numRecords, o.recordSize, o.topic, where, o.keys, rate(o.throughput), o.transactional)
		fmt.Fprintf(stdout, "topic: %s\n", rep)
	}

	results := make([]result, 0, len(names))
	var runErrs []error
	for i, name := range names {
		cfg := cfgs[i]
		cfg.Brokers = brokers
		if *compare {
			o.label = "[" + name + "] "
		}
		if o.progress != nil {
			fmt.Fprintf(stdout, "%spreset %s: %s\n", o.label, name, summary(cfg))
		}
		res, err := runOne(ctx, cfg, o)
		res.Preset = name
		if err != nil {
			runErrs = append(runErrs, fmt.Errorf("preset %s: %w", name, err))
			if res.Records == 0 {
				continue
			}
		}
		results = append(results, res)
		if o.progress != nil && !*compare {
			printFinal(stdout, res)
		}
	}

	switch {
	case *asJSON && *compare:
		if err := writeJSON(stdout, struct {
			Runs []result `json:"runs"`
		}{results}); err != nil {
			return err
		}
	case *asJSON:
		if len(results) == 1 {
			if err := writeJSON(stdout, results[0]); err != nil {
				return err
			}
		}
	case *compare:
		printTable(stdout, results)
	}

	for _, r := range results {
		if r.Errors > 0 {
			runErrs = append(runErrs, fmt.Errorf("preset %s: %d of %d records failed; first: %s", r.Preset, r.Errors, r.Records, r.FirstError))
		}
	}
	return errors.Join(runErrs...)
}

// ensureTopic creates the topic when it is missing, through a client with
// cfg's connection settings (TLS, SASL), and waits until it takes records.
func ensureTopic(ctx context.Context, cfg kafkaproducer.Config, brokers []string, t topics.Topic) (topics.Report, error) {
	cfg.Brokers = brokers
	cfg.TransactionalID = "" // an admin client, not a transactional producer
	opts, err := cfg.ClientOpts()
	if err != nil {
		return topics.Report{}, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return topics.Report{}, fmt.Errorf("kprod: admin client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep, err := topics.Ensure(ctx, cl, []topics.Topic{t})
	if err == nil {
		err = topics.Ready(ctx, cl, t.Name)
	}
	return rep, err
}

func splitBrokers(s string) []string {
	var out []string
	for b := range strings.SplitSeq(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func rate(r float64) string {
	if r < 0 {
		return "unthrottled"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + " records/s"
}

// summary names the settings that differ between presets.
func summary(c kafkaproducer.Config) string {
	comp := string(c.Compression)
	if comp == "" {
		comp = "default"
	}
	linger := c.Linger.String()
	if c.Linger < 0 {
		linger = "none"
	}
	return fmt.Sprintf("linger %s, compression %s, batch max %d bytes, max buffered %d records, max in flight %d",
		linger, comp, c.BatchMaxBytes, c.MaxBufferedRecords, c.MaxInFlight)
}

func printFinal(w io.Writer, r result) {
	fmt.Fprintf(w, "%d records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, "+
		"%.2f ms 50th, %.2f ms 95th, %.2f ms 99th, %.2f ms 99.9th, %d errors.\n",
		r.Records, r.RecordsPerSec, r.MBPerSec, r.AvgMs, r.MaxMs, r.P50Ms, r.P95Ms, r.P99Ms, r.P999Ms, r.Errors)
	if r.Transactions > 0 {
		fmt.Fprintf(w, "%d transactions committed.\n", r.Transactions)
	}
}

func printTable(w io.Writer, rs []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "preset\trecords/s\tMB/s\tavg ms\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t\n",
			r.Preset, r.RecordsPerSec, r.MBPerSec, r.AvgMs, r.P50Ms, r.P95Ms, r.P99Ms, r.P999Ms, r.MaxMs, r.Errors)
	}
	_ = tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("kprod: write json: %w", err)
	}
	return nil
}
