package outbox

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics is an Observer that feeds Prometheus collectors registered on
// the Registerer given to NewMetrics (never the global one):
//
//	kprod_outbox_published_total{topic}           rows acknowledged by Kafka
//	kprod_outbox_failed_total{topic,class}        failed sends (rows stay, or are dead-lettered)
//	kprod_outbox_dead_lettered_total{topic,class} rows moved to the dead-letter table
//	kprod_outbox_relay_lag_seconds                histogram: row added → acknowledged
//	kprod_outbox_rows_pending                     rows in the outbox (leader, every StatsInterval)
//	kprod_outbox_oldest_row_age_seconds           age of the oldest row (leader, every StatsInterval)
//	kprod_outbox_leader                           1 while this relay holds the lease
//
// The topic label is capped at 100 distinct topics (later ones count as
// "other"); class is a kafkaproducer.Class name. Wrap reg with
// prometheus.WrapRegistererWith to tell several relays apart. A Metrics
// is safe for concurrent use; give each Relay its own.
type Metrics struct {
	published    *prometheus.CounterVec
	failed       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	lag          prometheus.Histogram
	pending      prometheus.Gauge
	oldest       prometheus.Gauge
	leader       prometheus.Gauge

	mu     sync.Mutex
	topics map[string]struct{}
}

// maxTopicLabels caps the topic label's values.
const maxTopicLabels = 100

// NewMetrics registers the relay's collectors on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, fmt.Errorf("outbox: NewMetrics needs a prometheus.Registerer (kprod never uses the global registry)")
	}
	const ns, sub = "kprod", "outbox"
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "published_total",
			Help: "Outbox rows acknowledged by Kafka."}, []string{"topic"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "failed_total",
			Help: "Failed sends of outbox rows, by error class; the rows stay in the outbox unless dead-lettered."}, []string{"topic", "class"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_lettered_total",
			Help: "Outbox rows moved to the dead-letter table, by error class."}, []string{"topic", "class"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "relay_lag_seconds",
			Help:    "Time from adding an outbox row to Kafka acknowledging it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "rows_pending",
			Help: "Rows in the outbox, counted by the leading relay every StatsInterval."}),
		oldest: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "oldest_row_age_seconds",
			Help: "Age of the oldest row in the outbox (0 when empty), measured by the leading relay every StatsInterval."}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "leader",
			Help: "1 while this relay holds the outbox lease and publishes, else 0."}),
		topics: make(map[string]struct{}),
	}
	for _, c := range []prometheus.Collector{m.published, m.failed, m.deadLettered, m.lag, m.pending, m.oldest, m.leader} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("outbox: register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) topic(t string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.topics[t]; ok {
		return t
	}
	if len(m.topics) >= maxTopicLabels {
		return "other"
	}
	m.topics[t] = struct{}{}
	return t
}

// OnPublished implements Observer.
func (m *Metrics) OnPublished(topic string, lag time.Duration) {
	m.published.WithLabelValues(m.topic(topic)).Inc()
	m.lag.Observe(lag.Seconds())
}

// OnFailed implements Observer.
func (m *Metrics) OnFailed(topic, class string) {
	m.failed.WithLabelValues(m.topic(topic), class).Inc()
}

// OnDeadLettered implements Observer.
func (m *Metrics) OnDeadLettered(topic, class string) {
	m.deadLettered.WithLabelValues(m.topic(topic), class).Inc()
}

// OnBacklog implements Observer.
func (m *Metrics) OnBacklog(rows int64, oldest time.Duration) {
	m.pending.Set(float64(rows))
	m.oldest.Set(oldest.Seconds())
}

// OnLeader implements Observer.
func (m *Metrics) OnLeader(leader bool) {
	if leader {
		m.leader.Set(1)
	} else {
		m.leader.Set(0)
	}
}
