package metrics_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func rec(topic string, i int) kafkaproducer.Record {
	return kafkaproducer.Record{
		Topic: topic,
		Key:   fmt.Appendf(nil, "key-%d", i%13),
		Value: fmt.Appendf(nil, "value-%d-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", i),
	}
}

// sample is one scraped series: a counter or gauge value, or a
// histogram's count and sum.
type sample struct {
	value float64
	count uint64
	sum   float64
	found bool
}

// newMetrics returns a fresh registry and a Metrics registered in it.
func newMetrics(t testing.TB, opts ...metrics.Option) (*prometheus.Registry, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return reg, m
}

// waitBatchRecords waits for kprod_batch_records (of the series matching
// want) to sum to n: franz-go runs its batch hooks on a goroutine of their
// own after the produce response, so they can trail the records' results.
func waitBatchRecords(t testing.TB, g prometheus.Gatherer, n float64, want ...string) {
	t.Helper()
	testkit.WaitFor(t, 5*time.Second, fmt.Sprintf("kprod_batch_records%v to sum to %v", want, n), func() bool {
		return scrape(t, g, "kprod_batch_records", want...).sum == n
	})
}

// scrape gathers g and returns the series of family name whose labels
// include every pair in want (pairs given as "k", "v", ...), summed over
// all matching series.
func scrape(t testing.TB, g prometheus.Gatherer, name string, want ...string) sample {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var s sample
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, want) {
				continue
			}
			s.found = true
			switch {
			case m.Counter != nil:
				s.value += m.Counter.GetValue()
			case m.Gauge != nil:
				s.value += m.Gauge.GetValue()
			case m.Histogram != nil:
				s.count += m.Histogram.GetSampleCount()
				s.sum += m.Histogram.GetSampleSum()
			}
		}
	}
	return s
}

func hasLabels(m *dto.Metric, want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == want[i] && lp.GetValue() == want[i+1] {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}
