package metrics

import (
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// clientHooks is the one franz-go hook kprod installs: it forwards to
// kprom and records kprod's batch and per-broker produce metrics. A
// single hook value keeps franz-go's per-event interface checks to one.
type clientHooks struct{ m *Metrics }

var (
	_ kgo.HookNewClient           = (*clientHooks)(nil)
	_ kgo.HookClientClosed        = (*clientHooks)(nil)
	_ kgo.HookBrokerConnect       = (*clientHooks)(nil)
	_ kgo.HookBrokerDisconnect    = (*clientHooks)(nil)
	_ kgo.HookBrokerWrite         = (*clientHooks)(nil)
	_ kgo.HookBrokerE2E           = (*clientHooks)(nil)
	_ kgo.HookBrokerThrottle      = (*clientHooks)(nil)
	_ kgo.HookProduceBatchWritten = (*clientHooks)(nil)
)

// OnNewClient adopts the first client: kprom registers its collectors and
// the buffered gauges start reading it.
func (h *clientHooks) OnNewClient(cl *kgo.Client) {
	m := h.m
	if !m.cl.CompareAndSwap(nil, cl) {
		m.log.Warn("metrics already instrument another open client; this client's buffer gauges and franz-go client metrics are not recorded (use one metrics.New per producer)")
		return
	}
	m.kprom.OnNewClient(cl)
	m.kpromOn.Store(true)
	m.up.Set(1)
	m.log.Debug("client instrumented")
}

// OnClientClosed releases the client adopted by OnNewClient.
func (h *clientHooks) OnClientClosed(cl *kgo.Client) {
	m := h.m
	if m.cl.Load() != cl {
		return
	}
	m.kpromOn.Store(false)
	m.kprom.OnClientClosed(cl)
	m.cl.Store(nil)
	m.up.Set(0)
	m.log.Debug("instrumented client closed")
}

func (h *clientHooks) OnBrokerConnect(meta kgo.BrokerMetadata, d time.Duration, conn net.Conn, err error) {
	if !h.m.kpromOn.Load() {
		return
	}
	h.m.kprom.OnBrokerConnect(meta, d, conn, err)
}

func (h *clientHooks) OnBrokerDisconnect(meta kgo.BrokerMetadata, conn net.Conn) {
	if !h.m.kpromOn.Load() {
		return
	}
	h.m.kprom.OnBrokerDisconnect(meta, conn)
}

func (h *clientHooks) OnBrokerThrottle(meta kgo.BrokerMetadata, d time.Duration, after bool) {
	if !h.m.kpromOn.Load() {
		return
	}
	h.m.kprom.OnBrokerThrottle(meta, d, after)
	h.m.log.Debug("broker throttled the client", zap.Int32("node_id", meta.NodeID), zap.Duration("throttle", d))
}

// OnBrokerWrite counts a produce request attempt and puts it in flight.
// franz-go calls OnBrokerE2E exactly once for every write (after the
// response, a write error, immediately for acks=0, or when the
// connection dies), which takes it out again.
func (h *clientHooks) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, _ error) {
	if key != int16(kmsg.Produce) {
		return
	}
	bs := h.m.broker(meta.NodeID)
	bs.total.Inc()
	bs.inFlight.Inc()
}

func (h *clientHooks) OnBrokerE2E(meta kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	m := h.m
	if m.kpromOn.Load() {
		m.kprom.OnBrokerE2E(meta, key, e2e)
	}
	if key != int16(kmsg.Produce) {
		return
	}
	bs := m.broker(meta.NodeID)
	bs.inFlight.Dec()
	if err := e2e.Err(); err != nil {
		bs.errors.Inc()
		m.log.Debug("produce request failed on the connection", zap.Int32("node_id", meta.NodeID), zap.Error(err))
		return
	}
	bs.duration.Observe(e2e.DurationE2E().Seconds())
}

// OnProduceBatchWritten observes a batch the brokers acknowledged. It is
// not forwarded to kprom: kprom resolves four label sets per batch, where
// kprod's per-broker series are resolved once.
func (h *clientHooks) OnProduceBatchWritten(meta kgo.BrokerMetadata, _ string, _ int32, bm kgo.ProduceBatchMetrics) {
	m := h.m
	bs := m.broker(meta.NodeID)
	bs.batches.Inc()
	bs.uncompressed.Add(float64(bm.UncompressedBytes))
	bs.compressed.Add(float64(bm.CompressedBytes))
	m.batchRecords.Observe(float64(bm.NumRecords))
	m.batchBytes.Observe(float64(bm.UncompressedBytes))
	if bm.CompressedBytes > 0 {
		m.batchRatio.Observe(float64(bm.UncompressedBytes) / float64(bm.CompressedBytes))
	}
}

// brokerSeries holds one broker's pre-resolved produce-request series.
type brokerSeries struct {
	total        prometheus.Counter
	errors       prometheus.Counter
	duration     prometheus.Observer
	inFlight     prometheus.Gauge
	batches      prometheus.Counter
	uncompressed prometheus.Counter
	compressed   prometheus.Counter
}

// broker returns a broker's series. Brokers are few (and seed brokers
// appear as seed_N), so the label is bounded by the cluster's size.
func (m *Metrics) broker(id int32) *brokerSeries {
	if v, ok := m.brokers.Load(id); ok {
		return v.(*brokerSeries)
	}
	node := kgo.NodeName(id)
	bs := &brokerSeries{
		total:    m.reqTotal.WithLabelValues(node),
		errors:   m.reqErrors.WithLabelValues(node),
		duration: m.reqDuration.WithLabelValues(node),
		inFlight: m.inFlight.WithLabelValues(node),

		batches:      m.batches.WithLabelValues(node),
		uncompressed: m.uncompressed.WithLabelValues(node),
		compressed:   m.compressed.WithLabelValues(node),
	}
	v, _ := m.brokers.LoadOrStore(id, bs)
	return v.(*brokerSeries)
}

// filterRegisterer drops kprom's collectors kprod replaces or a producer
// never fills: the buffered-records/bytes gauges, whose names
// ("..._buffered_produce_records_total" on a gauge) break the Prometheus
// naming rules (kprod_buffered_records and kprod_buffered_bytes replace
// them), the per-batch produce counters (kprod_batches_total and
// kprod_batch_*_bytes_total replace them, cheaper), and the fetch ones.
// Everything else passes through.
type filterRegisterer struct{ prometheus.Registerer }

func (f filterRegisterer) Register(c prometheus.Collector) error {
	if dropped(c) {
		return nil
	}
	return f.Registerer.Register(c)
}

func (f filterRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := f.Register(c); err != nil {
			panic(err)
		}
	}
}

func (f filterRegisterer) Unregister(c prometheus.Collector) bool {
	if dropped(c) {
		return false
	}
	return f.Registerer.Unregister(c)
}

func dropped(c prometheus.Collector) bool {
	ch := make(chan *prometheus.Desc, 4)
	go func() { c.Describe(ch); close(ch) }()
	drop := false
	for d := range ch {
		_, rest, ok := strings.Cut(d.String(), `fqName: "`)
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, `"`)
		for _, part := range []string{"_buffered_produce_", "_buffered_fetch_", "_client_produce_", "_client_fetch_"} {
			if strings.Contains(name, part) {
				drop = true
			}
		}
	}
	return drop
}
