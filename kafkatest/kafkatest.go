package kafkatest

import (
	"context"
	"errors"
	"fmt"
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
	// KAFKA_BOOTSTRAP_SERVERS environment variable. kafkatest never
	// stops it; fault helpers return ErrUnsupported.
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

// Environment variables read by Start.
const (
	// EnvBootstrap names an existing cluster ("host:port,host:port").
	EnvBootstrap = "KAFKA_BOOTSTRAP_SERVERS"
	// EnvBackend forces a backend by name, like WithBackend.
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
// for example stopping an external cluster.
var ErrUnsupported = errors.New("kafkatest: not supported by this backend")

// Option configures Start.
type Option func(*config)

type config struct {
	backend      Backend
	image        string
	topics       []string
	partitions   int32
	startTimeout time.Duration
	dockerProbe  time.Duration
}

// WithBackend chooses the backend. If it is unavailable the test is
// skipped with the reason (or fails, if KAFKATEST_REQUIRE lists it).
// Without it, Start takes the first available backend in Backends order
// and logs why it passed over the others.
func WithBackend(b Backend) Option { return func(c *config) { c.backend = b } }

// WithImage names the image for BackendImage, for example
// "apache/kafka:3.9.0", "confluentinc/confluent-local:7.6.0" or
// "redpandadata/redpanda:v24.2.4". It overrides KAFKATEST_IMAGE.
func WithImage(image string) Option { return func(c *config) { c.image = image } }

// WithTopics creates topics with the given partition count once the
// cluster runs (kfake seeds them; real brokers get them through kadm with
// replication factor 1).
func WithTopics(partitions int32, topics ...string) Option {
	return func(c *config) {
		c.partitions = partitions
		c.topics = append(c.topics, topics...)
	}
}

// WithStartTimeout bounds starting the cluster (building the kfake image,
// pulling a real one, waiting until it answers). Zero means 2 minutes.
func WithStartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

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
	backend Backend
	impl    impl
	addrs   []string
	why     string
	cleanup []string // topics to delete at the end (external clusters)

	mu    sync.Mutex
	state state
}

// Start returns a running cluster and registers its teardown with
// t.Cleanup. See Backend for the choices and the order they are tried in.
// It logs which backend it used, and why it passed over the others.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	cfg := config{partitions: 3, startTimeout: 2 * time.Minute, dockerProbe: 2 * time.Second}
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
	ctx, cancel := context.WithTimeout(context.Background(), cfg.startTimeout)
	defer cancel()

	candidates := Backends()
	if cfg.backend != "" {
		candidates = []Backend{cfg.backend}
	}
	var passed []string
	for _, b := range candidates {
		c, err := startBackend(ctx, t, b, &cfg)
		if err != nil {
			reason := fmt.Sprintf("%s: %v", b, err)
			if required(b) {
				t.Fatalf("kafkatest: required backend unavailable (%s lists it): %s", EnvRequire, reason)
			}
			if cfg.backend != "" {
				t.Skipf("kafkatest: backend unavailable: %s", reason)
			}
			passed = append(passed, reason)
			continue
		}
		c.why = strings.Join(passed, "; ")
		t.Cleanup(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer ccancel()
			c.deleteTopics(cctx, t)
			if err := c.impl.close(cctx); err != nil {
				t.Errorf("kafkatest: tear down %s: %v", c.backend, err)
			}
		})
		if c.why != "" {
			t.Logf("kafkatest: using backend %s at %s (passed over: %s)", b, strings.Join(c.addrs, ","), c.why)
		} else {
			t.Logf("kafkatest: using backend %s at %s", b, strings.Join(c.addrs, ","))
		}
		if len(cfg.topics) > 0 && b != BackendInProcess && b != BackendKfakeContainer {
			c.CreateTopics(t, cfg.partitions, cfg.topics...)
		}
		return c
	}
	t.Fatalf("kafkatest: no backend available: %s", strings.Join(passed, "; "))
	return nil
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
	var (
		im  impl
		err error
	)
	switch b {
	case BackendExternal:
		addrs := os.Getenv(EnvBootstrap)
		if addrs == "" {
			return nil, errSkip(EnvBootstrap + " is not set")
		}
		im = external{addrs: splitAddrs(addrs)}
	case BackendImage:
		if cfg.image == "" {
			return nil, errSkip("no image named (WithImage or " + EnvImage + ")")
		}
		if err := probeDocker(ctx, cfg.dockerProbe); err != nil {
			return nil, err
		}
		im, err = startImage(ctx, t, cfg.image)
	case BackendKfakeContainer:
		if err := probeDocker(ctx, cfg.dockerProbe); err != nil {
			return nil, err
		}
		im, err = startKfakeContainer(ctx, t, cfg)
	case BackendInProcess:
		im, err = startInProcess(t, cfg)
	}
	if err != nil {
		return nil, err
	}
	c := &Cluster{backend: b, impl: im, addrs: im.brokers()}
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
	return c, nil
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

// Stop stops the broker, keeping its data, as a crash-free shutdown does:
// clients see connections refused until Restart. Not supported on
// external clusters, nor on confluent-local and redpanda images (their
// testcontainers modules publish a new port on every start).
func (c *Cluster) Stop(ctx context.Context) error {
	return c.transition(ctx, running, stopped, c.impl.stop)
}

// Restart starts a stopped broker again on the same address with the
// data it had, and waits until it answers.
func (c *Cluster) Restart(ctx context.Context) error {
	if err := c.transition(ctx, stopped, running, c.impl.start); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// Pause freezes the broker: connections stay open (and new ones are
// accepted) but nothing is answered until Unpause, like a broker stuck in
// a long GC pause or behind a network partition. Clients see timeouts,
// not refusals.
func (c *Cluster) Pause(ctx context.Context) error {
	return c.transition(ctx, running, paused, c.impl.pause)
}

// Unpause resumes a paused broker.
func (c *Cluster) Unpause(ctx context.Context) error {
	return c.transition(ctx, paused, running, c.impl.unpause)
}

func (c *Cluster) transition(ctx context.Context, from, to state, fn func(context.Context) error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != from {
		return fmt.Errorf("kafkatest: broker is %s, not %s", c.state, from)
	}
	if err := fn(ctx); err != nil {
		return fmt.Errorf("kafkatest: %s broker: %w", c.backend, err)
	}
	c.state = to
	return nil
}

// waitReady polls until a metadata request succeeds.
func (c *Cluster) waitReady(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...), kgo.RequestTimeoutOverhead(2*time.Second))
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

// Client returns a franz-go client for the cluster, closed when the test
// ends. Pass options to make it a consumer or to tune it.
func (c *Cluster) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.addrs...)}, opts...)...)
	if err != nil {
		t.Fatalf("kafkatest: client: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// CreateTopics creates topics with the given partitions (replication
// factor 1) and fails the test if one cannot be created; a topic that
// already exists is fine. On an external cluster the topics it created
// (not those that existed) are deleted when the test ends.
func (c *Cluster) CreateTopics(t testing.TB, partitions int32, topics ...string) {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := adm.CreateTopics(ctx, partitions, 1, nil, topics...)
	if err != nil {
		t.Fatalf("kafkatest: create topics %v: %v", topics, err)
	}
	var created []string
	for _, r := range resp.Sorted() {
		switch {
		case r.Err == nil:
			created = append(created, r.Topic)
		case !errors.Is(r.Err, kerr.TopicAlreadyExists):
			t.Fatalf("kafkatest: create topic %q: %v", r.Topic, r.Err)
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
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kafkatest: topics %v have no leaders after creation: %v", topics, err)
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

// NewTopic creates a topic named after the test (unique per call, so
// tests sharing an external cluster do not collide) and returns its name.
func (c *Cluster) NewTopic(t testing.TB, partitions int32) string {
	t.Helper()
	name := unsafeTopicChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 180 {
		name = name[:180]
	}
	name = fmt.Sprintf("%s-%d", name, time.Now().UnixNano()%1_000_000_000)
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs...))
	if err != nil {
		return
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).DeleteTopics(ctx, topics...); err != nil {
		t.Logf("kafkatest: delete topics %v: %v", topics, err)
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
// say: its Brokers are replaced) and closes it when the test ends if the
// test has not. Close it yourself to check what Close returns.
func (c *Cluster) Producer(t testing.TB, cfg kafkaproducer.Config) *kafkaproducer.Producer {
	t.Helper()
	cfg.Brokers = c.Brokers()
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
