// Command kfake-broker runs one franz-go kfake broker as a standalone
// process: a Kafka-protocol broker with no JVM and no dependencies, small
// enough to ship as a static binary in a FROM scratch image. kafkatest
// builds it into the kprod/kfake-broker image for container tests.
//
// Usage:
//
//	kfake-broker [-listen 127.0.0.1:9092] [-advertise host:port]
//	             [-topics a,b] [-partitions 3] [-auto-create-topics]
//	             [-data-dir DIR] [-log-level info]
//
// Without -topics the broker starts with no topics, like a fresh cluster:
// clients create theirs (kprod's topics.Ensure does), or, with
// -auto-create-topics, a metadata request that asks for auto-creation
// does. -partitions is the broker's num.partitions: the count of -topics
// and of every topic created without one.
//
// -listen is where the broker accepts connections; -advertise is the
// address it gives clients in metadata (inside a container, listen on
// 0.0.0.0 and advertise the host's published port). With -data-dir the
// broker's state (topics, records, transactions, offsets) is written there
// and reloaded on the next start, so the broker can be stopped and started
// again without losing data.
//
// It prints "kfake-broker listening on ADDR advertised ADDR" on standard
// output once it accepts connections, and runs until SIGTERM or SIGINT,
// then closes the cluster (flushing the data dir) and exits 0.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	if err := run(os.Args[1:], sigs, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kfake-broker:", err)
		os.Exit(1)
	}
}

// run starts the broker and blocks until stop delivers.
func run(args []string, stop <-chan os.Signal, stdout io.Writer) error {
	fs := flag.NewFlagSet("kfake-broker", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9092", "host:port to accept connections on")
	advertise := fs.String("advertise", "", "host:port given to clients in metadata (default: the listen address)")
	topics := fs.String("topics", "", "comma-separated topics to create at start (empty: start with no topics)")
	partitions := fs.Int("partitions", 3, "partitions of each -topics topic and of topics created without a count (num.partitions)")
	dataDir := fs.String("data-dir", "", "persist state here and reload it at start (empty: in memory only)")
	logLevel := fs.String("log-level", "none", "kfake log level: none, error, warn, info, debug")
	autoCreate := fs.Bool("auto-create-topics", false, "create unknown topics on metadata requests, as brokers with auto.create.topics.enable do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	_, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("-listen %q: port must be 1..65535 (a fixed port lets the broker restart on it)", *listen)
	}
	adv := *advertise
	if adv == "" {
		adv = *listen
	}
	if h, p, err := net.SplitHostPort(adv); err != nil || h == "" || p == "" {
		return fmt.Errorf("-advertise %q: want host:port", adv)
	}
	advAddr := advertisedAddr(adv)

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		// kfake listens on 127.0.0.1:port and advertises its
		// listener's address; bind where asked instead and report the
		// advertised address, so clients outside a container reach
		// the published port.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, *listen)
			if err != nil {
				return nil, err
			}
			return advertisedListener{Listener: ln, addr: advAddr}, nil
		}),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	if *topics != "" {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), strings.Split(*topics, ",")...))
	}
	if *partitions > 0 {
		opts = append(opts, kfake.DefaultNumPartitions(*partitions))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(stdout, "kfake-broker listening on %s advertised %s\n", *listen, adv)
	sig := <-stop
	fmt.Fprintf(os.Stderr, "kfake-broker: %v: shutting down\n", sig)
	c.Close()
	return nil
}

func parseLevel(s string) (kfake.LogLevel, error) {
	switch strings.ToLower(s) {
	case "none", "":
		return kfake.LogLevelNone, nil
	case "error":
		return kfake.LogLevelError, nil
	case "warn":
		return kfake.LogLevelWarn, nil
	case "info":
		return kfake.LogLevelInfo, nil
	case "debug":
		return kfake.LogLevelDebug, nil
	}
	return kfake.LogLevelNone, fmt.Errorf("-log-level %q: use none, error, warn, info or debug", s)
}

// advertisedAddr is an address as given, unresolved, so a host name is
// advertised as a host name.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// advertisedListener is a listener that reports the advertised address as
// its own, which is what kfake puts in metadata responses.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

func (l advertisedListener) Addr() net.Addr { return l.addr }
