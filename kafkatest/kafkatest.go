package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Backend names where a cluster comes from.
type Backend string

// The backends, in the order Start tries them when none is chosen.
const (
	// BackendExternal is a running cluster named by the
	// KAFKATEST_BOOTSTRAP_SERVERS environment variable. kafkatest never
	// stops or reconfigures it: Stop and Pause skip the test, and the
	// topics a test creates are unique to it and deleted at the end.
	BackendExternal Backend = "external"
	// BackendImage is a real Kafka-compatible image run through
	// testcontainers-go: apache/kafka (and apache/kafka-native),
	// confluentinc/confluent-local (testcontainers' kafka module) or
	// redpandadata/redpanda (its redpanda module). Chosen when an image
	// is named by WithImage or KAFKATEST_IMAGE.
	BackendImage Backend = "image"
	// BackendKfakeContainer is kprod's kfake-broker binary in a FROM
	// scratch image built locally, run through testcontainers-go. It
	// needs a Docker engine and a Go toolchain, never a registry.
	BackendKfakeContainer Backend = "kfake-container"
	// BackendInProcess is franz-go's kfake broker inside the test
	// process. It needs nothing.
	BackendInProcess Backend = "kfake"
)

// Backends lists every backend in the order Start tries them.
func Backends() []Backend {
	return []Backend{BackendExternal, BackendImage, BackendKfakeContainer, BackendInProcess}
}

// Environment variables read by Start. kafkatest reads no other variable
// of its own: in particular never KAFKA_BOOTSTRAP_SERVERS, which a
// service's own configuration may point at a real cluster. (The Docker
// client reads DOCKER_HOST, testcontainers its TESTCONTAINERS_ ones.)
const (
	// EnvBootstrap names an existing cluster ("host:port,host:port")
	// for BackendExternal.
	EnvBootstrap = "KAFKATEST_BOOTSTRAP_SERVERS"
	// EnvBackend chooses a backend by name, like WithBackend.
	EnvBackend = "KAFKATEST_BACKEND"
	// EnvImage names a Kafka image for BackendImage, like WithImage.
	EnvImage = "KAFKATEST_IMAGE"
	// EnvRequire lists backends (comma-separated) that must be
	// available: when Start tries one of them and it is unavailable, the
	// test fails instead of skipping or falling back. Set it in CI so a
	// broken Docker engine cannot pass as a skip.
	EnvRequire = "KAFKATEST_REQUIRE"
	// EnvKfakeBinary is a prebuilt static kfake-broker binary (built
	// with CGO_ENABLED=0 for the engine's OS and architecture) to put
	// in the image instead of building one with the go command.
	EnvKfakeBinary = "KAFKATEST_KFAKE_BINARY"
)

// ErrUnsupported is returned by a fault helper the backend cannot do,
// for example Restart on an external cluster (Stop and Pause skip the
// test there instead).
var ErrUnsupported = errors.New("kafkatest: not supported by this backend")

// state is what the fault helpers last did to the broker.
type state int

const (
	running state = iota
	stopped
	paused
)

func (s state) String() string {
	return [...]string{"running", "stopped", "paused"}[s]
}

// impl is one backend's way of running a broker.
type impl interface {
	brokers() []string
	stop(ctx context.Context) error
	start(ctx context.Context) error
	pause(ctx context.Context) error
	unpause(ctx context.Context) error
	close(ctx context.Context) error
}

// Cluster is a running Kafka cluster for one test. Its methods are safe
// for concurrent use; the fault helpers (Stop, Restart, Pause, Unpause)
// are serialised.
type Cluster struct {
	t        testing.TB
	backend  Backend
	impl     impl
	addrs    []string
	why      string
	faults   string // why the backend cannot inject faults, or ""
	prefix   string // topic prefix (external clusters)
	sec      *security
	registry string // schema registry URL

	mu      sync.Mutex
	state   state
	cleanup []string // topics to delete at the end (external clusters)
}

// Start returns a running cluster and registers its teardown with
// t.Cleanup. See Backend for the choices and the order they are tried in.
// It logs which backend it used, and why it passed over the others (with
// t.Log, and once per test process on standard error).
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	cfg := config{partitions: 3, startTimeout: 2 * time.Minute, dockerProbe: 2 * time.Second, brokers: 1}
	if img := os.Getenv(EnvImage); img != "" {
		cfg.image = img
	}
	if b := os.Getenv(EnvBackend); b != "" {
		cfg.backend = Backend(b)
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.backend != "" && !slices.Contains(Backends(), cfg.backend) {
		t.Fatalf("kafkatest: unknown backend %q: use one of %v", cfg.backend, Backends())
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.startTimeout)
	defer cancel()

	candidates := Backends()
	if cfg.backend != "" {
		candidates = []Backend{cfg.backend}
	}
	var passed []string
	for _, b := range candidates {
		// A backend the user pointed at (by option, or by naming a
		// cluster or an image) is never passed over for another.
		designated := cfg.backend == b || (b == BackendExternal && os.Getenv(EnvBootstrap) != "") ||
			(b == BackendImage && cfg.image != "")
		if err := precondition(b, &cfg); err == nil {
			if why := cannot(b, &cfg); why != "" {
				reason := fmt.Sprintf("%s: %s", b, why)
				switch {
				case cfg.require && cfg.backend == b:
					t.Fatalf("kafkatest: required backend cannot run this test: %s", reason)
				case designated:
					t.Skipf("kafkatest: %s", reason)
				}
				passed = append(passed, reason)
				continue
			}
		}
		c, err := startBackend(ctx, t, b, &cfg)
		if err != nil {
			reason := fmt.Sprintf("%s: %v", b, err)
			if required(b) || (cfg.require && cfg.backend == b) {
				t.Fatalf("kafkatest: required backend unavailable: %s", reason)
			}
			if cfg.backend != "" {
				t.Skipf("kafkatest: backend unavailable: %s", reason)
			}
			passed = append(passed, reason)
			continue
		}
		c.why = strings.Join(passed, "; ")
		announce(t, b, c.addrs, c.why)
		if err := c.setUp(&cfg); err != nil {
			t.Fatalf("kafkatest: %s backend: %v", b, err)
		}
		return c
	}
	t.Fatalf("kafkatest: no backend available: %s", strings.Join(passed, "; "))
	return nil
}

func (cfg *config) validate() error {
	if cfg.brokers < 1 {
		return fmt.Errorf("WithBrokers(%d): want 1 or more", cfg.brokers)
	}
	if cfg.partitions < 1 && len(cfg.topics) > 0 {
		return fmt.Errorf("WithTopics(%d, ...): want 1 or more partitions", cfg.partitions)
	}
	if s := cfg.sasl; s != nil {
		switch s.Mechanism {
		case kafkaproducer.SASLPlain, kafkaproducer.SASLScramSHA256, kafkaproducer.SASLScramSHA512:
		default:
			return fmt.Errorf("WithSASL: mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.Mechanism)
		}
		if (s.Username == "") != (s.Password == "") {
			return errors.New("WithSASL: give both Username and Password, or neither")
		}
	}
	return nil
}

// precondition reports whether b can be tried at all: an external
// cluster needs its address, an image its name.
func precondition(b Backend, cfg *config) error {
	switch b {
	case BackendExternal:
		if os.Getenv(EnvBootstrap) == "" {
			return errSkip(EnvBootstrap + " is not set")
		}
	case BackendImage:
		if cfg.image == "" {
			return errSkip("no image named (WithImage or " + EnvImage + ")")
		}
	}
	return nil
}

// cannot says which of the options b cannot honour, or "".
func cannot(b Backend, cfg *config) string {
	var no []string
	if why := faultsUnsupported(b, cfg.image); cfg.faults && why != "" {
		no = append(no, "RequireFaults ("+why+")")
	}
	switch b {
	case BackendInProcess, BackendKfakeContainer:
		// Every option: cmd/kfake-broker has a flag for each
		// (-brokers, -tls-cert/-tls-key, -sasl, -auto-create-topics).
		return ""
	case BackendExternal:
		if cfg.brokers > 1 {
			no = append(no, "WithBrokers")
		}
		if cfg.autoCreate {
			no = append(no, "WithAutoCreateTopics")
		}
		if cfg.brokerConfig != nil {
			no = append(no, "WithBrokerConfig")
		}
		if cfg.tls || cfg.sasl != nil {
			no = append(no, "WithTLS or WithSASL")
		}
		if len(no) > 0 {
			return "cannot " + strings.Join(no, ", ") + " (not ours to configure)"
		}
	case BackendImage:
		if cfg.brokers > 1 {
			no = append(no, "WithBrokers")
		}
		if cfg.tls {
			no = append(no, "WithTLS")
		}
		if cfg.sasl != nil {
			no = append(no, "WithSASL")
		}
		if len(no) > 0 {
			return "cannot " + strings.Join(no, ", ") + " (one plaintext broker per container)"
		}
	}
	return ""
}

// faultsUnsupported says why b cannot stop, restart, pause and unpause
// its broker, or "".
func faultsUnsupported(b Backend, img string) string {
	switch b {
	case BackendExternal:
		return "an external cluster is not ours to stop"
	case BackendImage:
		if n := strings.ToLower(img); strings.Contains(n, "redpanda") || strings.Contains(n, "confluent-local") {
			return "its testcontainers module publishes a new port on every start"
		}
	}
	return ""
}

// announced holds the backend choices already written to standard error
// by this process.
var announced sync.Map

// announce logs the backend chosen. t.Log shows only with -v or on
// failure, so the first time a process makes a given choice it is also
// written to standard error, which go test prints in local directory
// mode (go test, go test -run X) even without -v. (In package list mode,
// go test ./..., a passing package's output is hidden entirely: use
// KAFKATEST_REQUIRE there to turn a fallback into a failure.)
func announce(t testing.TB, b Backend, addrs []string, why string) {
	line := "kafkatest: using backend " + string(b)
	if why != "" {
		line += " (passed over: " + why + ")"
	}
	t.Logf("%s at %s", line, strings.Join(addrs, ","))
	if _, dup := announced.LoadOrStore(line, true); !dup && !testing.Verbose() {
		fmt.Fprintln(os.Stderr, line)
	}
}

// required reports whether KAFKATEST_REQUIRE lists b.
func required(b Backend) bool {
	for _, r := range strings.Split(os.Getenv(EnvRequire), ",") {
		if Backend(strings.TrimSpace(r)) == b {
			return true
		}
	}
	return false
}

// errSkip says why a backend was not tried at all.
type errSkip string

func (e errSkip) Error() string { return string(e) }

func startBackend(ctx context.Context, t testing.TB, b Backend, cfg *config) (*Cluster, error) {
	if err := precondition(b, cfg); err != nil {
		return nil, err
	}
	sec, err := newSecurity(t, cfg)
	if err != nil {
		return nil, err
	}
	var im impl
	switch b {
	case BackendExternal:
		im = external{addrs: splitAddrs(os.Getenv(EnvBootstrap))}
	case BackendImage:
		if err := probeDocker(ctx, cfg.dockerProbe); err != nil {
			return nil, err
		}
		im, err = startImage(ctx, t, cfg)
	case BackendKfakeContainer:
		if err := probeDocker(ctx, cfg.dockerProbe); err != nil {
			return nil, err
		}
		im, err = startKfakeContainer(ctx, t, cfg, sec)
	case BackendInProcess:
		im, err = startInProcess(t, cfg, sec)
	}
	if err != nil {
		return nil, err
	}
	c := &Cluster{t: t, backend: b, impl: im, addrs: im.brokers(), sec: sec, faults: faultsUnsupported(b, cfg.image)}
	// A fresh bound: building or pulling an image may have used most of
	// ctx.
	rctx, rcancel := context.WithTimeout(context.Background(), time.Minute)
	defer rcancel()
	if err := c.waitReady(rctx); err != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = im.close(cctx)
		return nil, fmt.Errorf("started but never answered: %w", err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer ccancel()
		c.deleteTopics(cctx, t)
		if err := c.impl.close(cctx); err != nil {
			t.Errorf("kafkatest: tear down %s: %v", c.backend, err)
		}
	})
	return c, nil
}

// setUp applies what the options ask of a running cluster, the same way
// on every backend: broker configs and topics through kadm, a schema
// registry in the test process.
func (c *Cluster) setUp(cfg *config) error {
	if c.backend == BackendExternal {
		c.prefix = "kafkatest-" + topicSafe(c.t.Name(), 100) + "-" + randHex(4) + "-"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(cfg.brokerConfig) > 0 {
		if err := c.alterBrokerConfigs(ctx, cfg.brokerConfig); err != nil {
			return err
		}
	}
	if len(cfg.topics) > 0 {
		names := make([]string, len(cfg.topics))
		for i, n := range cfg.topics {
			names[i] = c.Topic(n)
		}
		if err := c.createTopics(ctx, cfg.partitions, names); err != nil {
			return err
		}
	}
	if cfg.registry {
		c.registry = startRegistry(c.t)
	}
	return nil
}

func (c *Cluster) alterBrokerConfigs(ctx context.Context, configs map[string]string) error {
	cl, err := kgo.NewClient(c.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	var alter []kadm.AlterConfig
	for _, k := range slices.Sorted(maps.Keys(configs)) {
		alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(configs[k])})
	}
	resp, err := kadm.NewClient(cl).AlterBrokerConfigs(ctx, alter)
	if err == nil {
		for _, r := range resp {
			if r.Err != nil {
				err = fmt.Errorf("%w (%s)", r.Err, r.ErrMessage)
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("WithBrokerConfig %v: %w", configs, err)
	}
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Backend returns the backend the cluster runs on.
func (c *Cluster) Backend() Backend { return c.backend }

// Brokers returns the bootstrap addresses, "host:port".
func (c *Cluster) Brokers() []string { return slices.Clone(c.addrs) }

// FellBack says which backends Start passed over and why, or "" if it
// used the first one it tried.
func (c *Cluster) FellBack() string { return c.why }

// Topic returns the name a topic given to WithTopics has on this cluster:
// name itself, except on an external cluster, where every topic the test
// creates by name gets a prefix unique to the test (so tests sharing the
// cluster never see each other's records) and is deleted at the end.
// Write c.Topic("orders") wherever the test names such a topic.
func (c *Cluster) Topic(name string) string { return c.prefix + name }

// SchemaRegistryURL returns the address of the schema registry started by
// WithSchemaRegistry ("http://127.0.0.1:port"), or "" without it.
func (c *Cluster) SchemaRegistryURL() string { return c.registry }

// Stop stops the broker, keeping its data, as a crash-free shutdown does:
// clients see connections refused until Restart. On a backend that cannot
// (an external cluster, a confluent-local or redpanda image) it skips the
// test, so call it from the goroutine running the test that started the
// cluster; RequireFaults skips such tests at Start instead.
func (c *Cluster) Stop(ctx context.Context) error {
	c.skipWithoutFaults("stop")
	return c.transition(ctx, "stop", running, stopped, c.impl.stop)
}

// Restart starts a stopped broker again on the same address with the
// data it had, and waits until it answers. It returns ErrUnsupported on
// a backend that cannot stop the broker.
func (c *Cluster) Restart(ctx context.Context) error {
	if c.faults != "" {
		return fmt.Errorf("%w: restart on the %s backend (%s)", ErrUnsupported, c.backend, c.faults)
	}
	if err := c.transition(ctx, "restart", stopped, running, c.impl.start); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// Pause freezes the broker: connections stay open (and new ones are
// accepted) but nothing is answered until Unpause, like a broker stuck in
// a long GC pause or behind a network partition. Clients see timeouts,
// not refusals. Like Stop, it skips the test on a backend that cannot.
func (c *Cluster) Pause(ctx context.Context) error {
	c.skipWithoutFaults("pause")
	return c.transition(ctx, "pause", running, paused, c.impl.pause)
}

// Unpause resumes a paused broker. It returns ErrUnsupported on a backend
// that cannot pause the broker.
func (c *Cluster) Unpause(ctx context.Context) error {
	if c.faults != "" {
		return fmt.Errorf("%w: unpause on the %s backend (%s)", ErrUnsupported, c.backend, c.faults)
	}
	return c.transition(ctx, "unpause", paused, running, c.impl.unpause)
}

func (c *Cluster) skipWithoutFaults(op string) {
	if c.faults != "" {
		c.t.Helper()
		c.t.Skipf("kafkatest: cannot %s the broker on the %s backend: %s", op, c.backend, c.faults)
	}
}

func (c *Cluster) transition(ctx context.Context, op string, from, to state, fn func(context.Context) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != from {
		return fmt.Errorf("kafkatest: %s: the broker is %s, not %s", op, c.state, from)
	}
	if err := fn(ctx); err != nil {
		if errors.Is(err, ErrUnsupported) {
			return err
		}
		return fmt.Errorf("kafkatest: %s on the %s backend: %w", op, c.backend, err)
	}
	c.state = to
	return nil
}

// waitReady polls until a metadata request succeeds.
func (c *Cluster) waitReady(ctx context.Context) error {
	cl, err := kgo.NewClient(append(c.ClientOpts(), kgo.RequestTimeoutOverhead(2*time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err = cl.Ping(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ClientOpts returns the franz-go options that connect to the cluster:
// its seed brokers, and its TLS and SASL settings if it has them.
func (c *Cluster) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.addrs...)}
	return append(opts, c.sec.clientOpts()...)
}

// Client returns a franz-go client for the cluster, closed when the test
// ends. Pass options to make it a consumer or to tune it.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(c.ClientOpts(), opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopics creates topics with exactly these names and the given
// partitions (the broker's default replication factor) through kadm, and
// waits until they have leaders; it fails the test if one cannot be
// created. A topic that already exists is fine. On an external cluster
// the topics it created (not those that existed) are deleted when the
// test ends.
func (c *Cluster) CreateTopics(t testing.TB, partitions int32, topics ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.createTopics(ctx, partitions, topics); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
}

func (c *Cluster) createTopics(ctx context.Context, partitions int32, topics []string) error {
	cl, err := kgo.NewClient(c.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	resp, err := adm.CreateTopics(ctx, partitions, -1, nil, topics...)
	if err != nil {
		return fmt.Errorf("create topics %v: %w", topics, err)
	}
	var created []string
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			created = append(created, r.Topic)
		case !errors.Is(r.Err, kerr.TopicAlreadyExists):
			return fmt.Errorf("create topic %q: %w", r.Topic, r.Err)
		}
	}
	if c.backend == BackendExternal {
		// Only what this test created: a topic that was already there
		// belongs to someone else.
		c.mu.Lock()
		c.cleanup = append(c.cleanup, created...)
		c.mu.Unlock()
	}
	// Wait until the topics' leaders are known, so the first produce
	// does not race topic creation.
	for {
		md, err := adm.Metadata(ctx, topics...)
		if err == nil && allLed(md, topics) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %v have no leaders after creation: %v", topics, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func allLed(md kadm.Metadata, topics []string) bool {
	for _, name := range topics {
		td, ok := md.Topics[name]
		if !ok || td.Err != nil || len(td.Partitions) == 0 {
			return false
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return false
			}
		}
	}
	return true
}

var unsafeTopicChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// topicSafe is s with characters a topic name cannot hold replaced, cut
// to at most n bytes.
func topicSafe(s string, n int) string {
	s = unsafeTopicChars.ReplaceAllString(s, "_")
	if len(s) > n {
		s = s[:n]
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewTopic creates a topic named after the test and unique to this call
// (so tests sharing an external cluster do not collide) and returns its
// name. On an external cluster it is deleted at the end.
func (c *Cluster) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	name := topicSafe(t.Name(), 180) + "-" + randHex(4)
	c.CreateTopics(t, partitions, name)
	return name
}

func (c *Cluster) deleteTopics(ctx context.Context, t testing.TB) {
	c.mu.Lock()
	topics := c.cleanup
	c.cleanup = nil
	c.mu.Unlock()
	if len(topics) == 0 {
		return
	}
	cl, err := kgo.NewClient(c.ClientOpts()...)
	if err != nil {
		return
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Errorf("kafkatest: delete topics %v from the external cluster: %v", topics, err)
	}
}

// external is a cluster kafkatest does not own.
type external struct{ addrs []string }

func (e external) brokers() []string           { return e.addrs }
func (external) stop(context.Context) error    { return ErrUnsupported }
func (external) start(context.Context) error   { return ErrUnsupported }
func (external) pause(context.Context) error   { return ErrUnsupported }
func (external) unpause(context.Context) error { return ErrUnsupported }
func (external) close(context.Context) error   { return nil }

// Producer builds a kprod producer for the cluster from cfg (a preset,
// say): its Brokers are replaced, and so are TLS and SASL when the
// cluster has them. It closes the producer when the test ends if the
// test has not. Close it yourself to check what Close returns.
func (c *Cluster) Producer(t testing.TB, cfg kafkaproducer.Config) *kafkaproducer.Producer {
	t.Helper()
	cfg.Brokers = c.Brokers()
	c.sec.producerConfig(&cfg)
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatalf("kafkatest: producer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx) // idempotent: the test's own Close result stands
	})
	return p
}
