// Command kfake-broker runs a franz-go kfake cluster as a standalone
// process: Kafka-protocol brokers with no JVM and no dependencies, small
// enough to ship as a static binary in a FROM scratch image. kafkatest
// builds it into the kprod/kfake-broker image for container tests.
//
// Usage:
//
//	kfake-broker [-listen 127.0.0.1:9092] [-advertise host:port[,host:port...]]
//	             [-brokers 1] [-topics a,b] [-partitions 3] [-auto-create-topics]
//	             [-tls-cert FILE -tls-key FILE] [-sasl MECHANISM:USER:PASS ...]
//	             [-data-dir DIR] [-log-level info]
//
// Without -topics the broker starts with no topics, like a fresh cluster:
// clients create theirs (kprod's topics.Ensure does), or, with
// -auto-create-topics, a metadata request that asks for auto-creation
// does. -partitions is the broker's num.partitions: the count of -topics
// and of every topic created without one.
//
// -listen is where the first broker accepts connections; -advertise is
// the address it gives clients in metadata (inside a container, listen on
// 0.0.0.0 and advertise the host's published port). With -brokers N the
// process runs N brokers, broker i on the -listen port plus i
// (0.0.0.0:9092 gives 9092..9092+N-1). -advertise is then either one
// host:port, the first of N consecutive ports (broker i advertises its
// port plus i), or N comma-separated addresses, one per broker in order,
// for a container whose published host ports are not consecutive.
//
// -tls-cert and -tls-key (PEM files, given together) serve every broker
// over TLS only. -sasl MECHANISM:USER:PASS, repeatable, makes the cluster
// require SASL and creates USER as a superuser for MECHANISM (PLAIN,
// SCRAM-SHA-256 or SCRAM-SHA-512); the password is everything after the
// second colon. With both, clients speak SASL_SSL. Credentials given here
// are visible to anyone who can list the process or inspect the
// container: they are for test clusters.
//
// With -data-dir the cluster's state (topics, records, transactions,
// offsets) is written there and reloaded on the next start, so the
// brokers can be stopped and started again without losing data.
//
// It prints "kfake-broker listening on ADDR[,ADDR...] advertised
// ADDR[,ADDR...]" (followed by the security in use, never a password) on
// standard output once every broker accepts connections, and runs until
// SIGTERM or SIGINT, then closes the cluster (flushing the data dir) and
// exits 0.
package main

import (
	"crypto/tls"
	"errors"
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

// run starts the cluster and blocks until stop delivers.
func run(args []string, stop <-chan os.Signal, stdout io.Writer) error {
	fs := flag.NewFlagSet("kfake-broker", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:9092", "host:port to accept connections on (the first broker's; broker i listens on port+i)")
	advertise := fs.String("advertise", "", "host:port given to clients in metadata: the first broker's (broker i advertises port+i), or one comma-separated address per broker (default: the listen addresses)")
	brokers := fs.Int("brokers", 1, "number of brokers, each on its own port")
	topics := fs.String("topics", "", "comma-separated topics to create at start (empty: start with no topics)")
	partitions := fs.Int("partitions", 3, "partitions of each -topics topic and of topics created without a count (num.partitions)")
	dataDir := fs.String("data-dir", "", "persist state here and reload it at start (empty: in memory only)")
	logLevel := fs.String("log-level", "none", "kfake log level: none, error, warn, info, debug")
	autoCreate := fs.Bool("auto-create-topics", false, "create unknown topics on metadata requests, as brokers with auto.create.topics.enable do")
	tlsCert := fs.String("tls-cert", "", "PEM certificate (chain) file: serve TLS only (needs -tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM private key file of -tls-cert")
	var saslValues saslFlags
	fs.Var(&saslValues, "sasl", "MECHANISM:USER:PASS: require SASL, with USER a superuser for MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level, err := parseLevel(*logLevel)
	if err != nil {
		return err
	}
	l, err := parseListeners(*listen, *advertise, *brokers)
	if err != nil {
		return err
	}
	users, err := parseSASL(saslValues)
	if err != nil {
		return err
	}

	opts := []kfake.Opt{
		kfake.NumBrokers(*brokers),
		kfake.Ports(l.ports...),
		// kfake listens on 127.0.0.1:port and advertises its
		// listener's address; bind where asked instead and report the
		// advertised address, so clients outside a container reach
		// the published port.
		kfake.ListenFn(l.listen),
		kfake.WithLogger(kfake.BasicLogger(os.Stderr, level)),
	}
	var security []string
	if *tlsCert != "" || *tlsKey != "" {
		if *tlsCert == "" || *tlsKey == "" {
			return errors.New("-tls-cert and -tls-key go together: give both, or neither for plaintext")
		}
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return fmt.Errorf("-tls-cert %q -tls-key %q: %w", *tlsCert, *tlsKey, err)
		}
		opts = append(opts, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
		security = append(security, "tls")
	}
	if len(users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range users {
			opts = append(opts, kfake.Superuser(u.mechanism, u.user, u.pass))
			security = append(security, "sasl "+u.mechanism+" user "+u.user)
		}
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
	line := fmt.Sprintf("kfake-broker listening on %s advertised %s", strings.Join(l.listenAddrs, ","), strings.Join(l.advertised, ","))
	if len(security) > 0 {
		line += " (" + strings.Join(security, ", ") + ")"
	}
	fmt.Fprintln(stdout, line)
	sig := <-stop
	fmt.Fprintf(os.Stderr, "kfake-broker: %v: shutting down\n", sig)
	c.Close()
	return nil
}

// listeners are the brokers' addresses: broker i listens on
// listenAddrs[i] (port ports[i]) and advertises advertised[i].
type listeners struct {
	ports       []int
	listenAddrs []string
	advertised  []string
}

func parseListeners(listen, advertise string, n int) (*listeners, error) {
	if n < 1 {
		return nil, fmt.Errorf("-brokers %d: want 1 or more", n)
	}
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port+n-1 > 65535 {
		return nil, fmt.Errorf("-listen %q: port must be 1..%d for %d broker(s) (a fixed port lets the broker restart on it)", listen, 65535-n+1, n)
	}
	l := &listeners{}
	for i := range n {
		l.ports = append(l.ports, port+i)
		l.listenAddrs = append(l.listenAddrs, net.JoinHostPort(host, strconv.Itoa(port+i)))
	}
	switch adv := strings.Split(advertise, ","); {
	case advertise == "":
		l.advertised = l.listenAddrs
	case len(adv) == n:
		for _, a := range adv {
			if _, _, err := hostPort(a, 1); err != nil {
				return nil, err
			}
		}
		l.advertised = adv
	case len(adv) == 1:
		h, base, err := hostPort(advertise, n)
		if err != nil {
			return nil, err
		}
		for i := range n {
			l.advertised = append(l.advertised, net.JoinHostPort(h, strconv.Itoa(base+i)))
		}
	default:
		return nil, fmt.Errorf("-advertise %q: give one host:port (the first of %d consecutive ports) or %d comma-separated addresses, one per broker", advertise, n, n)
	}
	return l, nil
}

// hostPort splits an -advertise address into its host and port, the
// first of n consecutive ports that must all be valid.
func hostPort(a string, n int) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil || h == "" || p == "" {
		return "", 0, fmt.Errorf("-advertise %q: want host:port", a)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port+n-1 > 65535 {
		return "", 0, fmt.Errorf("-advertise %q: port must be 1..%d for %d broker(s)", a, 65535-n+1, n)
	}
	return h, port, nil
}

// listen is kfake's ListenFn: kfake asks for 127.0.0.1:port, one of
// ports; it binds listenAddrs[i] instead and reports advertised[i].
func (l *listeners) listen(network, addr string) (net.Listener, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(p)
	i := port - l.ports[0]
	if i < 0 || i >= len(l.ports) {
		return nil, fmt.Errorf("listen on %s: port %d is not one of the -listen ports %v", addr, port, l.ports)
	}
	ln, err := net.Listen(network, l.listenAddrs[i])
	if err != nil {
		return nil, err
	}
	return advertisedListener{Listener: ln, addr: advertisedAddr(l.advertised[i])}, nil
}

// saslFlags are the -sasl values as given. They are parsed after the
// flags, by parseSASL, so that no error message (the flag package quotes
// a rejected value) ever repeats a password.
type saslFlags []string

func (s *saslFlags) String() string {
	if s == nil || len(*s) == 0 {
		return ""
	}
	return fmt.Sprintf("%d user(s)", len(*s))
}

func (s *saslFlags) Set(v string) error { *s = append(*s, v); return nil }

type saslUser struct{ mechanism, user, pass string }

// parseSASL parses MECHANISM:USER:PASS values; PASS may hold colons,
// USER may not. Errors name the flag by position, never its password.
func parseSASL(flags saslFlags) ([]saslUser, error) {
	var users []saslUser
	for i, v := range flags {
		parts := strings.SplitN(v, ":", 3)
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return nil, fmt.Errorf("-sasl #%d: want MECHANISM:USER:PASS with a non-empty user and password", i+1)
		}
		mech := strings.ToUpper(parts[0])
		switch mech {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			return nil, fmt.Errorf("-sasl #%d: mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", i+1, parts[0])
		}
		users = append(users, saslUser{mechanism: mech, user: parts[1], pass: parts[2]})
	}
	return users, nil
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
