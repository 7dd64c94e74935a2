package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
)

// presetConfig is the named kprod preset with w's brokers and the tuning
// overrides applied (names as kafkaproducer.FromLookup reads them, plus
// LINGER=none for NoLinger).
func presetConfig(w *workload, preset string) (kafkaproducer.Config, error) {
	cfg, err := presets.ByName(preset)
	if err != nil {
		return cfg, err
	}
	tune := map[string]string{}
	for k, v := range w.Tune {
		if strings.EqualFold(k, "LINGER") && v == "none" {
			cfg.Linger = kafkaproducer.NoLinger
			continue
		}
		tune[strings.ToUpper(k)] = v
	}
	cfg, err = kafkaproducer.FromLookup("", cfg, func(k string) (string, bool) { v, ok := tune[k]; return v, ok })
	if err != nil {
		return cfg, err
	}
	cfg.Brokers = w.Brokers
	cfg.ClientID = "kbench"
	return cfg, cfg.Validate()
}

// Event is the typed JSON value: it encodes to about 100 bytes, the size
// of the bytes workload's value.
type Event struct {
	ID      int64  `json:"id"`
	User    string `json:"user"`
	Kind    string `json:"kind"`
	Amount  int64  `json:"amount_cents"`
	Payload string `json:"payload"`
}

func (w *workload) event(i int) Event {
	return Event{ID: int64(i), User: "user-0042", Kind: "order.created", Amount: 12345, Payload: "abcdefghijklmnopqrstuvwxyzabcdefghijkl"}
}

// The send styles of the kprod cases.
const (
	styleBytes = "bytes" // kprod-bytes: SendAsync of Record, a Result per record
	styleJSON  = "json"  // kprod-json: typed SendAsync of Event as JSON
	styleErr   = "err"   // kprod-err: SendAsyncErr of Record, an error per record
)

// runKprod runs a "kprod-bytes/<preset>", "kprod-json/<preset>" or
// "kprod-err/<preset>" case. With instrument ("kprod-bytes+metrics",
// "kprod-err+metrics") each producer is built as the production setup
// documents it: cfg = m.Instrument(cfg) with m from metrics.New on a
// registry of its own (nothing scrapes it during the run).
func runKprod(ctx context.Context, w *workload, style, preset string, instrument bool, r *Result) error {
	typed := style == styleJSON
	if style == styleErr && w.Mode != modeThroughput {
		return fmt.Errorf("kprod-err runs in throughput mode only")
	}
	base, err := presetConfig(w, preset)
	if err != nil {
		return err
	}
	pool := max(w.Pool, 1)
	ps := make([]*kafkaproducer.Producer, pool)
	for i := range ps {
		cfg := base
		if instrument {
			m, err := metrics.New(prometheus.NewRegistry())
			if err != nil {
				return err
			}
			cfg = m.Instrument(cfg)
		}
		p, err := kafkaproducer.New(cfg)
		if err != nil {
			return err
		}
		defer p.Close(context.Background())
		ps[i] = p
		// Warm up: metadata, connection, producer ID.
		if _, err := p.Send(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(0), Value: w.value}); err != nil {
			return fmt.Errorf("warm-up send: %w", err)
		}
	}
	p := ps[0]
	tp, err := kafkaproducer.NewTyped(p, kafkaproducer.BytesSerializer{}, kafkaproducer.JSON[Event]())
	if err != nil {
		return err
	}
	switch w.Mode {
	case modeThroughput:
		var wg sync.WaitGroup
		var ec errCount
		wg.Add(w.Records)
		stopProfile, err := startProfile(w.CPUProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		m := startMeter()
		switch {
		case style == styleErr:
			cb := func(err error) { ec.add(err); wg.Done() }
			for i := range w.Records {
				if err := p.SendAsyncErr(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value}, cb); err != nil {
					return err
				}
			}
		case typed:
			cb := func(res kafkaproducer.TypedResult[[]byte, Event]) { ec.add(res.Err); wg.Done() }
			for i := range w.Records {
				if err := tp.SendAsync(ctx, kafkaproducer.TypedRecord[[]byte, Event]{Topic: w.Topic, Key: w.key(i), Value: w.event(i)}, cb); err != nil {
					return err
				}
			}
		default:
			cb := func(res kafkaproducer.Result) { ec.add(res.Err); wg.Done() }
			for i := range w.Records {
				if err := p.SendAsync(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value}, cb); err != nil {
					return err
				}
			}
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		stopProfile()
		ec.fill(r)
	case modeLatency:
		if typed {
			sequential(ctx, w, r, func(ctx context.Context, i int) error {
				_, err := tp.Send(ctx, kafkaproducer.TypedRecord[[]byte, Event]{Topic: w.Topic, Key: w.key(i), Value: w.event(i)})
				return err
			})
		} else {
			sequential(ctx, w, r, func(ctx context.Context, i int) error {
				_, err := p.Send(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value})
				return err
			})
		}
	case modeConcurrency:
		// Round-robin over the pool (a pool of one is the single
		// producer).
		var rr atomic.Uint64
		concurrent(ctx, w, r, func(ctx context.Context, _, i int) error {
			q := ps[(rr.Add(1)-1)%uint64(len(ps))]
			_, err := q.Send(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value})
			return err
		})
		r.Pool = pool
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}

// The raw franz-go cases: what each one's promise does per record.
const (
	// franzBare ("franz-go"): one shared promise counts the outcome.
	franzBare = ""
	// franzResult ("franz-go+result"): the promise builds the
	// kafkaproducer.Result a SendAsync callback gets and passes it to a
	// callback, as kprod does.
	franzResult = "result"
	// franzKprom ("franz-go+kprom"): the production setup's metrics,
	// done the franz-go way (see runFranz).
	franzKprom = "kprom"
)

// runFranz runs a "franz-go/<preset>", "franz-go+result/<preset>" or
// "franz-go+kprom/<preset>" case: a raw kgo client built from the
// preset's own ClientOpts, producing &kgo.Record values, as a franz-go
// user would.
//
// franz-go+result does per record what kprod does to report a SendAsync
// record, and nothing else: the record is wrapped with its callback and
// send time (one allocation, like kprod's pending record), the wrapper is
// the record's context so that the promise finds it with a type assertion
// (as kprod finds its pending record), and the promise builds a
// kafkaproducer.Result from the record and its latency and calls the
// callback. It checks nothing and cannot be closed safely: a measurement,
// not a producer.
//
// franz-go+kprom is the production setup's equivalent in raw franz-go:
// franz-go's kprom plugin on a registry of its own, with the request
// histograms kprod's metrics package enables (request duration, throttle;
// classic buckets only), and a promise that observes each acknowledged
// record's latency in a per-topic prometheus histogram (kprod's default
// send-latency buckets) and counts it in a per-topic counter, or counts a
// failure per topic. The per-topic series are resolved once per topic, not
// per record (franz-go calls promises one at a time, so a plain map
// serves). The latency is time.Since(r.Timestamp), which franz-go stamps
// in Produce: the cheapest way, one clock read per record as in kprod,
// though franz-go truncates the stamp to the millisecond (kprod's latency
// is exact).
//
// The records carry Partition: -1. ClientOpts installs kprod's
// partitioner, which reads Partition >= 0 as an explicit partition (kprod
// itself stores -1 for "choose"): a raw record's zero value would send
// every record to partition 0 and make franz-go look faster than it is
// (fewer, larger requests).
func runFranz(ctx context.Context, w *workload, preset, variant string, r *Result) error {
	cfg, err := presetConfig(w, preset)
	if err != nil {
		return err
	}
	opts, err := cfg.ClientOpts()
	if err != nil {
		return err
	}
	var pm *promMetrics
	if variant == franzKprom {
		reg := prometheus.NewRegistry()
		kp := kprom.NewMetrics("kbench",
			kprom.Registerer(reg),
			kprom.Subsystem("client"),
			kprom.HistogramsFromOpts(
				kprom.HistogramOpts{Enable: kprom.RequestDurationE2E, Buckets: requestBuckets},
				kprom.HistogramOpts{Enable: kprom.RequestThrottled, Buckets: requestBuckets},
			),
			kprom.NativeBucketFactor(1),
		)
		opts = append(opts, kgo.WithHooks(kp))
		if pm, err = newPromMetrics(reg); err != nil {
			return err
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(0), Value: w.value, Partition: -1}).FirstErr(); err != nil {
		return fmt.Errorf("warm-up send: %w", err)
	}
	switch w.Mode {
	case modeThroughput:
		var wg sync.WaitGroup
		var ec errCount
		wg.Add(w.Records)
		stopProfile, err := startProfile(w.CPUProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		m := startMeter()
		switch variant {
		case franzResult:
			cb := func(res kafkaproducer.Result) { ec.add(res.Err); wg.Done() }
			report := func(kr *kgo.Record, err error) {
				wr := kr.Context.(*wrapped)
				wr.cb(kafkaproducer.Result{
					Record:    kafkaproducer.Record{Topic: kr.Topic, Key: kr.Key, Value: kr.Value, Headers: kr.Headers, Timestamp: kr.Timestamp},
					Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp,
					Latency: time.Since(wr.start),
					Err:     err,
				})
			}
			for i := range w.Records {
				now := time.Now() // the send time and the timestamp, one clock read as in kprod
				wr := &wrapped{Context: ctx, cb: cb, start: now}
				wr.kr = kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Timestamp: now, Partition: -1, Context: wr}
				cl.Produce(ctx, &wr.kr, report)
			}
		case franzKprom:
			promise := func(kr *kgo.Record, err error) {
				ts := pm.topic(kr.Topic)
				if err != nil {
					ts.failed.Inc()
				} else {
					ts.latency.Observe(time.Since(kr.Timestamp).Seconds())
					ts.sent.Inc()
				}
				ec.add(err)
				wg.Done()
			}
			for i := range w.Records {
				cl.Produce(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1}, promise)
			}
		default:
			promise := func(_ *kgo.Record, err error) { ec.add(err); wg.Done() }
			for i := range w.Records {
				cl.Produce(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1}, promise)
			}
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		stopProfile()
		ec.fill(r)
	case modeLatency:
		if variant != franzBare {
			return fmt.Errorf("franz-go+%s runs in throughput mode only", variant)
		}
		sequential(ctx, w, r, func(ctx context.Context, i int) error {
			return cl.ProduceSync(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1}).FirstErr()
		})
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}

// wrapped is a record with what a per-record report needs, as kprod's
// pending record (franz-go+result cases). It is the record's context, so
// the promise finds it from the record; as a context it is the one
// Produce got.
type wrapped struct {
	context.Context
	cb    func(kafkaproducer.Result)
	start time.Time
	kr    kgo.Record
}

// latencyBuckets are kprod's default send-latency buckets (metrics
// package), and requestBuckets its request-duration ones.
var (
	latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120}
	requestBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// promMetrics is what a franz-go user's promise records per topic, with
// prometheus client_golang (franz-go+kprom cases).
type promMetrics struct {
	latency      *prometheus.HistogramVec
	sent, failed *prometheus.CounterVec
	topics       map[string]*promTopic // touched only by the promise: franz-go calls promises one at a time
	last         *promTopic
}

// promTopic is one topic's series, resolved once.
type promTopic struct {
	name         string
	latency      prometheus.Observer
	sent, failed prometheus.Counter
}

func newPromMetrics(reg prometheus.Registerer) (*promMetrics, error) {
	pm := &promMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "kbench", Name: "send_latency_seconds",
			Help: "Time from Produce to the acknowledgement, for acknowledged records.", Buckets: latencyBuckets}, []string{"topic"}),
		sent:   prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kbench", Name: "records_sent_total", Help: "Records acknowledged."}, []string{"topic"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "kbench", Name: "records_failed_total", Help: "Records that failed."}, []string{"topic"}),
		topics: map[string]*promTopic{},
	}
	for _, c := range []prometheus.Collector{pm.latency, pm.sent, pm.failed} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return pm, nil
}

// topic returns a topic's series: the last one's without a map lookup,
// as kprod's metrics do.
func (pm *promMetrics) topic(name string) *promTopic {
	if t := pm.last; t != nil && t.name == name {
		return t
	}
	t, ok := pm.topics[name]
	if !ok {
		t = &promTopic{name: name, latency: pm.latency.WithLabelValues(name), sent: pm.sent.WithLabelValues(name), failed: pm.failed.WithLabelValues(name)}
		pm.topics[name] = t
	}
	pm.last = t
	return t
}
