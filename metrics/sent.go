package metrics

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// sentCollector exposes records_sent_total and send_latency_seconds per
// topic from one set of atomic counters per topic. This is the only
// per-record work on the success path, so it does less than a
// prometheus counter plus histogram would: one comparison loop over
// integer bounds and two atomic adds, no float CAS loop; the sent count is
// the histogram's count, computed at scrape time from the same
// snapshot, so the two can never disagree.
type sentCollector struct {
	m          *Metrics
	bounds     []time.Duration // bucket upper bounds, ascending
	upper      []float64       // the same in seconds
	sentDesc   *prometheus.Desc
	latencyDsc *prometheus.Desc
}

// latencyCounts is one topic's send-latency histogram.
type latencyCounts struct {
	buckets []atomic.Uint64 // non-cumulative; the last is above every bound
	sum     atomic.Int64    // nanoseconds
}

func newSentCollector(m *Metrics, ns string, upper []float64) *sentCollector {
	upper = slices.Clone(upper)
	slices.Sort(upper)
	upper = slices.Compact(upper)
	bounds := make([]time.Duration, len(upper))
	for i, u := range upper {
		bounds[i] = time.Duration(u * float64(time.Second))
	}
	return &sentCollector{
		m:          m,
		bounds:     bounds,
		upper:      upper,
		sentDesc:   prometheus.NewDesc(prometheus.BuildFQName(ns, "", "records_sent_total"), "Records acknowledged by the brokers.", []string{"topic"}, nil),
		latencyDsc: prometheus.NewDesc(prometheus.BuildFQName(ns, "", "send_latency_seconds"), "Time from the send call to the acknowledgement, for acknowledged records.", []string{"topic"}, nil),
	}
}

func (c *sentCollector) newCounts() *latencyCounts {
	return &latencyCounts{buckets: make([]atomic.Uint64, len(c.bounds)+1)}
}

// observe counts one acknowledged record that took d.
func (c *sentCollector) observe(lc *latencyCounts, d time.Duration) {
	i := 0
	for i < len(c.bounds) && d > c.bounds[i] {
		i++
	}
	lc.buckets[i].Add(1)
	lc.sum.Add(int64(d))
}

func (c *sentCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.sentDesc
	ch <- c.latencyDsc
}

func (c *sentCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.topics.Range(func(_, v any) bool {
		ts := v.(*topicSeries)
		cum := make(map[float64]uint64, len(c.upper)) // kept by the const histogram
		var count uint64
		for i := range c.upper {
			count += ts.lat.buckets[i].Load()
			cum[c.upper[i]] = count
		}
		count += ts.lat.buckets[len(c.upper)].Load()
		sum := time.Duration(ts.lat.sum.Load()).Seconds()
		ch <- prometheus.MustNewConstMetric(c.sentDesc, prometheus.CounterValue, float64(count), ts.name)
		ch <- prometheus.MustNewConstHistogram(c.latencyDsc, count, sum, cum, ts.name)
		return true
	})
}
