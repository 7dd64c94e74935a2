package kafkatest

import (
	"maps"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
)

// Option configures Start.
type Option func(*config)

type config struct {
	backend      Backend
	require      bool // RequireBackend: fail instead of skip
	faults       bool // RequireFaults
	image        string
	topics       []string
	partitions   int32
	startTimeout time.Duration
	dockerProbe  time.Duration

	brokers      int
	autoCreate   bool
	brokerConfig map[string]string
	tls          bool
	sasl         *SASL
	registry     bool
}

// WithBackend chooses the backend. If it is unavailable, or cannot do
// what the other options ask, the test is skipped with the reason (it
// fails if KAFKATEST_REQUIRE lists the backend). Without it, Start takes
// the first available backend in Backends order and logs why it passed
// over the others.
func WithBackend(b Backend) Option { return func(c *config) { c.backend = b } }

// RequireBackend chooses the backend like WithBackend, but a backend that
// is unavailable, or cannot do what the other options ask, fails the test
// instead of skipping it. Use it (or KAFKATEST_REQUIRE) where a skip
// would hide a broken setup, such as a CI job meant to run in containers.
func RequireBackend(b Backend) Option {
	return func(c *config) { c.backend, c.require = b, true }
}

// RequireFaults skips the test unless the backend can stop, restart,
// pause and unpause the broker (an external cluster, or a
// confluent-local or redpanda image, cannot). Without it, Stop and Pause
// skip the test when called on such a backend.
func RequireFaults() Option { return func(c *config) { c.faults = true } }

// WithImage names the image for BackendImage, for example
// "apache/kafka:3.9.0", "confluentinc/confluent-local:7.6.0" or
// "redpandadata/redpanda:v24.2.4". It overrides KAFKATEST_IMAGE.
func WithImage(image string) Option { return func(c *config) { c.image = image } }

// WithTopics creates topics with the given partition count once the
// cluster runs, through kadm's CreateTopics on every backend (with the
// broker's default replication factor). On an external cluster each name
// gets a prefix unique to the test, and the topics are deleted at the
// end: refer to them as c.Topic(name).
func WithTopics(partitions int32, topics ...string) Option {
	return func(c *config) {
		c.partitions = partitions
		c.topics = append(c.topics, topics...)
	}
}

// WithStartTimeout bounds starting the cluster (building the kfake image,
// pulling a real one, waiting until it answers). Zero means 2 minutes.
func WithStartTimeout(d time.Duration) Option { return func(c *config) { c.startTimeout = d } }

// WithBrokers runs n brokers instead of 1 (kfake, in-process or in the
// kfake container, where one process serves n published ports; the image
// and external backends are passed over or skip). Topics are created with
// the broker default replication factor, min(n, 3) on kfake.
func WithBrokers(n int) Option { return func(c *config) { c.brokers = n } }

// WithAutoCreateTopics lets the broker create a topic the first time a
// client asks for it, as auto.create.topics.enable=true does. It is off
// by default on every backend kafkatest runs, so a misspelt topic fails
// the test as it would fail on most production clusters. Not available on
// an external cluster (its own setting decides).
func WithAutoCreateTopics() Option { return func(c *config) { c.autoCreate = true } }

// WithBrokerConfig sets broker configs once the cluster runs, for example
// {"message.max.bytes": "200000"}, through kadm's IncrementalAlterConfigs
// (cluster-wide dynamic configs) on every backend that kafkatest owns;
// kfake accepts the keys listed in its BrokerConfigs doc. Later calls add
// to earlier ones. Not available on an external cluster.
func WithBrokerConfig(configs map[string]string) Option {
	return func(c *config) {
		if c.brokerConfig == nil {
			c.brokerConfig = make(map[string]string)
		}
		maps.Copy(c.brokerConfig, configs)
	}
}

// WithTLS serves the cluster over TLS with a certificate authority and a
// broker certificate (for 127.0.0.1 and localhost) generated in memory
// for this cluster. Producer and Client trust it; Cluster.TLSConfig and
// Cluster.CAFile give it to other clients. In-process kfake and the kfake
// container (the certificate and key are copied into it); the image and
// external backends are passed over or skip.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// SASL is the mechanism and the credentials a cluster requires.
type SASL struct {
	// Mechanism is kafkaproducer.SASLPlain, SASLScramSHA256 or
	// SASLScramSHA512.
	Mechanism kafkaproducer.SASLMechanism
	Username  string // the superuser the cluster creates; empty means "kafkatest"
	Password  string // its password; empty means a random one
}

// WithSASL makes the cluster require SASL authentication with the given
// mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512); the user is a
// superuser. Empty Username and Password mean "kafkatest" and a random
// password. Producer and Client log in with it; Cluster.SASL returns it.
// In-process kfake and the kfake container (which gets the credentials on
// its command line: they show in docker inspect while it runs); the image
// and external backends are passed over or skip. Combine with WithTLS for
// SASL_SSL.
func WithSASL(s SASL) Option {
	return func(c *config) { c.sasl = &s }
}

// WithSchemaRegistry starts a Confluent-compatible schema registry for
// the cluster (franz-go's pkg/sr/srfake, in the test process, on a
// loopback port) and stops it at the end; Cluster.SchemaRegistryURL gives
// its address. It works with every backend.
func WithSchemaRegistry() Option { return func(c *config) { c.registry = true } }
