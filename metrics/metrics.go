package metrics

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
	"go.uber.org/zap"

	"github.com/kprod/kprod/kafkaproducer"
)

// Label values kprod uses in place of a topic name. Kafka topic names
// only contain [a-zA-Z0-9._-], so "(none)" and "(invalid)" never clash
// with a real topic; "other" can, if you have a topic called "other".
const (
	// OtherTopic labels every topic seen after the WithMaxTopics cap,
	// and every topic when the topic label is disabled.
	OtherTopic = "other"
	// NoTopic labels records refused for having no topic.
	NoTopic = "(none)"
	// InvalidTopic labels records whose topic is not a legal Kafka topic
	// name (wrong characters, too long); they fail with ClassBadInput.
	InvalidTopic = "(invalid)"
)

// Circuit-breaker states for OnBreakerState. They are sony/gobreaker's
// State.String() values, so a breaker's OnStateChange can pass them on.
const (
	BreakerClosed   = "closed"
	BreakerHalfOpen = "half-open"
	BreakerOpen     = "open"
)

// DefaultMaxTopics is the topic-label cap when WithMaxTopics is not given.
const DefaultMaxTopics = 100

// Default histogram buckets, in the metric's base unit. Each call
// returns a fresh slice, so no caller can change another's buckets.

// defaultLatencyBuckets suit send latency (enqueue to acknowledgement),
// from 100µs to two minutes (the Reliable preset's delivery timeout).
func defaultLatencyBuckets() []float64 {
	return []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120}
}

// defaultRequestBuckets suit one produce request's round trip.
func defaultRequestBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
}

// batchRecordBuckets: 1 .. 65536 records, ×4.
func batchRecordBuckets() []float64 { return prometheus.ExponentialBuckets(1, 4, 9) }

// batchByteBuckets: 256 B .. 16 MiB, ×4.
func batchByteBuckets() []float64 { return prometheus.ExponentialBuckets(256, 4, 9) }

// ratioBuckets: compression ratios from 1 (no gain) to 32.
func ratioBuckets() []float64 { return []float64{1, 1.25, 1.5, 2, 3, 4, 6, 8, 12, 16, 32} }

// ErrNoRegisterer is returned by New when reg is nil. kprod never falls
// back to prometheus.DefaultRegisterer: pass it explicitly if that is
// what you want.
var ErrNoRegisterer = errors.New("kprod: metrics: nil prometheus.Registerer (pass prometheus.NewRegistry() or prometheus.DefaultRegisterer explicitly)")

// Option configures New.
type Option func(*options)

type options struct {
	namespace      string
	constLabels    prometheus.Labels
	maxTopics      int
	latencyBuckets []float64
	requestBuckets []float64
	log            *zap.Logger
	kpromOpts      []kprom.Opt
}

// WithNamespace sets the metric name prefix, overriding the default
// "kprod". franz-go's client metrics get "<namespace>_client_".
func WithNamespace(ns string) Option { return func(o *options) { o.namespace = ns } }

// WithConstLabels adds labels with fixed values to every metric, so that
// several producers can share one registry (for example
// {"producer": "orders"}). It is the same as passing
// prometheus.WrapRegistererWith(labels, reg) to New.
func WithConstLabels(l prometheus.Labels) Option {
	return func(o *options) { o.constLabels = maps.Clone(l) }
}

// WithMaxTopics caps the distinct values of the topic label, overriding
// the default DefaultMaxTopics. The first n topics seen keep their name;
// later ones are counted under OtherTopic. n == 0 disables the topic
// label's detail: every topic is OtherTopic. Negative n means no cap;
// use it only when the set of topics is small and fixed.
func WithMaxTopics(n int) Option { return func(o *options) { o.maxTopics = n } }

// WithLatencyBuckets sets the send-latency histogram buckets (upper
// bounds in seconds), overriding the default of 100µs, 250µs, 500µs, 1ms,
// 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s, 2.5s, 5s, 10s,
// 30s and 120s. Each bucket is a series per topic.
func WithLatencyBuckets(b []float64) Option {
	return func(o *options) { o.latencyBuckets = slices.Clone(b) }
}

// WithRequestBuckets sets the buckets (upper bounds in seconds) of the
// per-broker request histograms and of the transaction-end histogram,
// overriding the default of 500µs to 30s (500µs, 1ms, 2.5ms, 5ms, ...).
func WithRequestBuckets(b []float64) Option {
	return func(o *options) { o.requestBuckets = slices.Clone(b) }
}

// WithLogger receives the package's own events (topic cap reached,
// breaker state changes, misuse). The default is zap.NewNop().
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// WithKpromOpts passes extra options to franz-go's kprom plugin, applied
// after kprod's (last wins). kprod sets the namespace, subsystem
// "client", the registerer (do not override it), broker label node_id and
// the request-duration and throttle histograms. kprom's produce and fetch
// counters are not used: kprod measures batches itself.
func WithKpromOpts(opts ...kprom.Opt) Option {
	return func(o *options) { o.kpromOpts = append(o.kpromOpts, opts...) }
}

// Metrics records a producer's metrics into a prometheus.Registerer.
// Its public surface is New, Instrument (which wires it as a
// kafkaproducer.AckHook, OnRecordDone and OnRecordAcked, and its franz-go
// hooks into a Config), the observer methods package txn and package dlq call
// (OnTxnAttempt, so m is a txn.Observer; OnDeadLettered, OnSpooled,
// OnReplayed, OnAmbiguous, OnSetAside, OnBreakerState and OnSpoolSize, so
// m is a dlq.Observer), SetHealthy, and Unregister. This package imports
// neither txn nor dlq.
//
// One Metrics instruments one producer (one franz-go client). All methods
// are safe for concurrent use and never block.
type Metrics struct {
	log       *zap.Logger
	reg       prometheus.Registerer // user's, wrapped with const labels
	maxTopics int
	collected []prometheus.Collector

	// topic label cap
	topics    sync.Map // string -> *topicSeries
	last      atomic.Pointer[topicSeries]
	topicsMu  sync.Mutex
	numTopics int         // guarded by topicsMu
	full      atomic.Bool // numTopics reached maxTopics

	// record level
	sent       *sentCollector // records_sent_total and send_latency_seconds
	failed     *prometheus.CounterVec
	deadLetter *prometheus.CounterVec
	spooled    *prometheus.CounterVec
	replayed   *prometheus.CounterVec
	ambiguous  *prometheus.CounterVec
	setAside   *prometheus.CounterVec
	// dlq/dlt replays of a dead-letter topic (OnDLTReplayed, OnDLTFailedAgain).
	dltReplayed *prometheus.CounterVec
	dltFailed   *prometheus.CounterVec

	// batches
	batchRecords prometheus.Histogram
	batchBytes   prometheus.Histogram
	batchRatio   prometheus.Histogram
	batches      *prometheus.CounterVec
	uncompressed *prometheus.CounterVec
	compressed   *prometheus.CounterVec

	// brokers (produce requests only)
	brokers     sync.Map // int32 -> *brokerSeries
	reqTotal    *prometheus.CounterVec
	reqErrors   *prometheus.CounterVec
	reqDuration *prometheus.HistogramVec
	inFlight    *prometheus.GaugeVec

	// transactions
	txns       *prometheus.CounterVec
	txnLatency *prometheus.HistogramVec
	txnRetries prometheus.Counter
	txnOddOnce atomic.Bool // an unknown outcome string was logged

	// state
	breaker        *prometheus.GaugeVec
	breakerTrans   *prometheus.CounterVec
	breakerState   atomic.Int32 // index into breakerStates, -1 unknown
	breakerOddOnce atomic.Bool  // an unknown state string was logged
	spoolRecords   prometheus.Gauge
	spoolBytes     prometheus.Gauge
	up             prometheus.Gauge
	healthy        prometheus.Gauge

	// the instrumented client
	cl      atomic.Pointer[kgo.Client]
	kpromOn atomic.Bool // kprom's collectors exist: forward client events to it
	kprom   *kprom.Metrics
	hooks   *clientHooks
}

var breakerStates = [...]string{BreakerClosed, BreakerHalfOpen, BreakerOpen}

// topicSeries holds one topic's pre-resolved series for the hot path.
type topicSeries struct {
	name string
	lat  *latencyCounts
}

// New registers a producer's metrics into reg and returns them; pass the
// result's Instrument to the producer's Config. Nothing is registered
// anywhere else. Two Metrics on one registry need distinct const labels
// (WithConstLabels, or a prometheus.WrapRegistererWith registerer);
// otherwise New fails with an error wrapping
// prometheus.AlreadyRegisteredError and registers nothing.
func New(reg prometheus.Registerer, opts ...Option) (*Metrics, error) {
	if reg == nil {
		return nil, ErrNoRegisterer
	}
	o := options{
		namespace:      "kprod",
		maxTopics:      DefaultMaxTopics,
		latencyBuckets: defaultLatencyBuckets(),
		requestBuckets: defaultRequestBuckets(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	if len(o.constLabels) > 0 {
		reg = prometheus.WrapRegistererWith(o.constLabels, reg)
	}
	m := &Metrics{
		log:       o.log.Named("kprod.metrics"),
		reg:       reg,
		maxTopics: o.maxTopics,
	}
	m.breakerState.Store(-1)
	m.build(o)
	for i, c := range m.collected {
		if err := reg.Register(c); err != nil {
			// Roll back only our own registrations: unregistering a
			// collector whose descriptors collide would remove the
			// other producer's.
			for _, done := range m.collected[:i] {
				reg.Unregister(done)
			}
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
				return nil, fmt.Errorf("kprod: metrics: register: %w (give each producer distinct WithConstLabels)", are)
			}
			return nil, fmt.Errorf("kprod: metrics: register: %w", err)
		}
	}

	kopts := []kprom.Opt{
		kprom.Registerer(filterRegisterer{reg}),
		kprom.Subsystem("client"),
		kprom.BrokerLabels(kprom.BrokerNodeID),
		kprom.HistogramsFromOpts(
			kprom.HistogramOpts{Enable: kprom.RequestDurationE2E, Buckets: o.requestBuckets},
			kprom.HistogramOpts{Enable: kprom.RequestThrottled, Buckets: o.requestBuckets},
		),
		kprom.NativeBucketFactor(1), // classic histograms only: cheaper, and every Prometheus reads them
	}
	m.kprom = kprom.NewMetrics(o.namespace, append(kopts, o.kpromOpts...)...)
	m.hooks = &clientHooks{m: m}
	return m, nil
}

func (m *Metrics) build(o options) {
	ns := o.namespace
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
		m.collected = append(m.collected, v)
		return v
	}
	histVec := func(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets}, labels)
		m.collected = append(m.collected, v)
		return v
	}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets})
		m.collected = append(m.collected, h)
		return h
	}
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help})
		m.collected = append(m.collected, g)
		return g
	}
	gaugeFunc := func(name, help string, fn func() float64) {
		m.collected = append(m.collected, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, fn))
	}

	m.sent = newSentCollector(m, ns, o.latencyBuckets)
	m.collected = append(m.collected, m.sent)
	m.failed = counterVec("records_failed_total", "Records that failed, by kafkaproducer error class (refused records included).", "topic", "class")
	m.deadLetter = counterVec("records_dead_lettered_total", "Records written to a dead-letter destination.", "topic")
	m.spooled = counterVec("records_spooled_total", "Records written to the local spool because Kafka was unavailable.", "topic")
	m.replayed = counterVec("records_replayed_total", "Records replayed from the local spool and acknowledged.", "topic")
	m.ambiguous = counterVec("records_ambiguous_total", "Records that failed in a way that may have written them: a later resend or replay may duplicate them.", "topic")
	m.dltReplayed = counterVec("dlt_replayed_total", "Dead letters replayed from a dead-letter topic and acknowledged on their destination topic.", "topic")
	m.dltFailed = counterVec("dlt_replay_failed_total", "Dead letters a replay sent back to the dead-letter topic because their destination topic refused them again.", "topic")
	m.setAside = counterVec("records_set_aside_total", "Records set aside by the dead-letter path, neither delivered nor dead-lettered, by reason (rejected, quarantined).", "topic", "reason")

	m.batchRecords = hist("batch_records", "Records per produced batch.", batchRecordBuckets())
	m.batchBytes = hist("batch_bytes", "Uncompressed bytes per produced batch.", batchByteBuckets())
	m.batchRatio = hist("batch_compression_ratio", "Uncompressed over compressed size of each produced batch (1 means no gain).", ratioBuckets())
	m.batches = counterVec("batches_total", "Batches acknowledged, per broker.", "node_id")
	m.uncompressed = counterVec("batch_uncompressed_bytes_total", "Uncompressed record bytes in acknowledged batches, per broker.", "node_id")
	m.compressed = counterVec("batch_compressed_bytes_total", "Compressed record bytes in acknowledged batches (what went on the wire), per broker.", "node_id")

	m.reqTotal = counterVec("produce_requests_total", "Produce requests written to each broker.", "node_id")
	m.reqErrors = counterVec("produce_request_errors_total", "Produce requests that failed on the connection (write or read error) per broker.", "node_id")
	m.reqDuration = histVec("produce_request_duration_seconds", "Produce request round trip per broker, write start to response read.", o.requestBuckets, "node_id")
	m.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "produce_requests_in_flight", Help: "Produce requests written and not yet answered, per broker."}, []string{"node_id"})
	m.collected = append(m.collected, m.inFlight)

	gaugeFunc("buffered_records", "Records buffered in the client, waiting for delivery.", func() float64 {
		if cl := m.cl.Load(); cl != nil {
			return float64(cl.BufferedProduceRecords())
		}
		return 0
	})
	gaugeFunc("buffered_bytes", "Bytes (keys, values, headers) buffered in the client, waiting for delivery.", func() float64 {
		if cl := m.cl.Load(); cl != nil {
			return float64(cl.BufferedProduceBytes())
		}
		return 0
	})

	m.txns = counterVec("transactions_total", "Transaction attempts ended, by outcome (committed, aborted, unknown).", "outcome")
	m.txnLatency = histVec("transaction_end_duration_seconds", "Time the EndTxn call took (the commit latency for outcome=committed).", o.requestBuckets, "outcome")
	m.txnRetries = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "transaction_retries_total", Help: "Transactions aborted and run again (after an abortable, retriable or timeout error)."})
	m.collected = append(m.collected, m.txnRetries)

	m.breaker = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "breaker_state", Help: "Circuit-breaker state: 1 for the current state (closed, half-open, open), 0 for the others."}, []string{"state"})
	m.collected = append(m.collected, m.breaker)
	m.breakerTrans = counterVec("breaker_transitions_total", "Circuit-breaker state changes, by the state entered.", "state")
	m.spoolRecords = gauge("spool_records", "Records waiting in the local spool.")
	m.spoolBytes = gauge("spool_bytes", "Bytes on disk in the local spool.")
	m.up = gauge("up", "1 while the instrumented producer's client is open.")
	m.healthy = gauge("healthy", "1 when the producer reports itself healthy (SetHealthy), else 0.")
}

// Unregister removes every metric registered by New (and franz-go's
// client metrics, which are also removed when the client closes). Use it
// when a producer is replaced but the registry lives on.
func (m *Metrics) Unregister() {
	for _, c := range m.collected {
		m.reg.Unregister(c)
	}
	if m.kprom != nil {
		m.kprom.OnClientClosed(nil)
	}
}

// Instrument returns cfg with m attached: m as a kafkaproducer.Hook and
// m's franz-go hooks (kprom's client metrics plus kprod's batch and
// broker metrics) in cfg.Opts. cfg's slices are copied, not modified.
// Use the returned Config for exactly one producer. Instrumenting a
// Config m already instruments returns it unchanged.
func (m *Metrics) Instrument(cfg kafkaproducer.Config) kafkaproducer.Config {
	if slices.Contains(cfg.Hooks, kafkaproducer.Hook(m)) {
		return cfg
	}
	cfg.Hooks = append(slices.Clip(cfg.Hooks), m)
	cfg.Opts = append(slices.Clip(cfg.Opts), kgo.WithHooks(m.hooks))
	return cfg
}

// OnRecordDone implements kafkaproducer.Hook: it counts the record as
// sent (and observes its latency) or failed by class, under its topic
// label.
func (m *Metrics) OnRecordDone(r kafkaproducer.Result) {
	ts := m.topic(r.Record.Topic)
	if r.Err == nil {
		m.sent.observe(ts.lat, r.Latency)
		return
	}
	m.failed.WithLabelValues(ts.name, kafkaproducer.Classify(r.Err).String()).Inc()
}

// OnRecordAcked implements kafkaproducer.AckHook: it counts an
// acknowledged record as sent and observes its latency, as OnRecordDone
// does for a success, without the Producer building a Result for it.
func (m *Metrics) OnRecordAcked(a kafkaproducer.AckedRecord) {
	m.sent.observe(m.topic(a.Topic).lat, a.Latency)
}

// SetHealthy sets the kprod_healthy gauge, for whoever decides health
// (a readiness probe's Ping, the circuit breaker).
func (m *Metrics) SetHealthy(ok bool) {
	if ok {
		m.healthy.Set(1)
	} else {
		m.healthy.Set(0)
	}
}

// topic returns the series for a topic name, applying the label cap.
func (m *Metrics) topic(name string) *topicSeries {
	// Producers usually send to one topic in long runs: compare with
	// the last one before hashing into the map.
	if ts := m.last.Load(); ts != nil && ts.name == name {
		return ts
	}
	if v, ok := m.topics.Load(name); ok {
		ts := v.(*topicSeries)
		m.last.Store(ts)
		return ts
	}
	switch {
	case name == "":
		return m.special(NoTopic)
	case !legalTopic(name):
		return m.special(InvalidTopic)
	case m.maxTopics == 0 || m.full.Load():
		return m.special(OtherTopic)
	}
	m.topicsMu.Lock()
	defer m.topicsMu.Unlock()
	if v, ok := m.topics.Load(name); ok {
		return v.(*topicSeries)
	}
	if m.maxTopics > 0 && m.numTopics >= m.maxTopics {
		if !m.full.Swap(true) {
			m.log.Warn("topic label cap reached; further topics are counted as \"other\"",
				zap.Int("max_topics", m.maxTopics), zap.String("first_overflow_topic", name))
		}
		return m.special(OtherTopic)
	}
	ts := m.newTopicSeries(name)
	m.topics.Store(name, ts)
	m.numTopics++
	return ts
}

// special returns the series of a label that is not a topic of its own
// (OtherTopic, NoTopic, InvalidTopic), creating it on first use. It does
// not count against the cap.
func (m *Metrics) special(label string) *topicSeries {
	if v, ok := m.topics.Load(label); ok {
		return v.(*topicSeries)
	}
	v, _ := m.topics.LoadOrStore(label, m.newTopicSeries(label))
	return v.(*topicSeries)
}

func (m *Metrics) newTopicSeries(name string) *topicSeries {
	return &topicSeries{name: name, lat: m.sent.newCounts()}
}

// legalTopic reports whether s is a legal Kafka topic name: 1 to 249
// characters of [a-zA-Z0-9._-]. Anything else can only fail, and must not
// reach a label value (which must be valid UTF-8 and bounded).
func legalTopic(s string) bool {
	if len(s) == 0 || len(s) > 249 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

var _ kafkaproducer.AckHook = (*Metrics)(nil)
