// Command kprod-chaos is the workload and the checker of kprod's fault
// campaign (chaos/, docs/RELIABILITY.md), checked the way Jepsen checks a
// database: a workload claims what each send returned, in a log it
// fsyncs, and a checker reads every topic back and compares.
//
//	kprod-chaos workload -brokers ADDR -path PATH -log FILE [-spool DIR] [-inc N] ...
//	kprod-chaos check -brokers ADDR -path PATH -log FILE [-out result.json] [-kcat]
//
// workload sends -count records, -rate a second, through one of kprod's
// send paths (-path): the plain Producer with a preset ("reliable",
// "high-throughput", "low-latency"), "dlq" (a dlq.Producer with its spool
// in -spool), "txn" (a txn.Producer, -txn-size records a transaction) or
// "pool" (a txn.Pool of -workers members). Every record has a unique ID,
// "<inc>.<n>" (-inc tells restarted processes apart), as its value and a
// key chosen from -keys keys. Before a record is sent the workload logs
// an intent line; when its send returns it logs what it returned: ack,
// fail (with the error class and whether it may have been written),
// unknown (the caller stopped waiting: ErrOutcomeUnknown), spooled, dead
// (dead-lettered); transactions log begin, commit, abort or unknown. The
// log is written by one goroutine and fsync'd every few milliseconds, so a
// SIGKILL loses at most the last few lines: claims it never made, never a
// claim it did not mean. With -count 0 and -path dlq the workload only
// replays the spool it finds (a restarted producer) and exits.
//
// check reads the topic and its dead-letter topic back with franz-go
// (read_committed for the transactional paths, and kcat with
// isolation.level=read_committed beside it with -kcat) and prints one
// JSON object: sent, acknowledged, lost, duplicated (explained by an
// ambiguous outcome the log holds, or not), reordered per key, aborted
// reads, torn transactions, records left in the spool, and the log lines
// behind every anomaly. It exits 0 whatever it finds: judging the counts
// against the promises is the campaign's job.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "workload":
		err = runWorkload(ctx, os.Args[2:], os.Stdout)
	case "check":
		err = runCheck(ctx, os.Args[2:], os.Stdout)
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kprod-chaos:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kprod-chaos workload|check [flags] (see go doc ./cmd/kprod-chaos)")
}
