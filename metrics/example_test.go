package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
)

// Instrument a producer, send, and read the counters back from the
// registry (which is what /metrics serves).
func ExampleMetrics_Instrument() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "orders-api"}))
	if err != nil {
		panic(err)
	}
	cfg := m.Instrument(presets.Reliable())
	cfg.Brokers = c.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if _, err := p.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: fmt.Appendf(nil, "order %d", i)}); err != nil {
			panic(err)
		}
	}
	_, err = p.Send(ctx, kafkaproducer.Record{Value: []byte("no topic")})
	fmt.Println("refused:", kafkaproducer.Classify(err))
	if err := p.Close(ctx); err != nil {
		panic(err)
	}

	fmt.Println("sent to orders:", value(reg, "kprod_records_sent_total", "orders"))
	fmt.Println("up after Close:", value(reg, "kprod_up", "orders-api"))
	// Output:
	// refused: bad_input
	// sent to orders: 3
	// up after Close: 0
}

// The dlq.Observer methods a dlq.Producer calls when m is its
// Config.Observer: a circuit breaker's state changes and a spool's depth.
func ExampleMetrics_OnBreakerState() {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		panic(err)
	}
	m.OnBreakerState(metrics.BreakerOpen)
	m.OnSpooled("orders")
	m.OnSpoolSize(1, 512)
	m.OnBreakerState(metrics.BreakerHalfOpen)
	m.OnBreakerState(metrics.BreakerClosed)
	m.OnReplayed("orders")
	m.OnSpoolSize(0, 0)

	for _, s := range []string{metrics.BreakerClosed, metrics.BreakerHalfOpen, metrics.BreakerOpen} {
		fmt.Printf("%s=%v\n", s, value(reg, "kprod_breaker_state", s))
	}
	fmt.Println("spooled:", value(reg, "kprod_records_spooled_total", "orders"), "replayed:", value(reg, "kprod_records_replayed_total", "orders"))
	// Output:
	// closed=1
	// half-open=0
	// open=0
	// spooled: 1 replayed: 1
}

// Count a transactional producer's commits and aborts: m is the
// txn.Config's Observer.
func ExampleMetrics_OnTxnAttempt() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	if err != nil {
		panic(err)
	}
	defer c.Close()

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		panic(err)
	}
	cfg := m.Instrument(presets.Reliable())
	cfg.Brokers = c.ListenAddrs()
	p, err := txn.New(cfg, txn.Config{ID: "orders-svc-0", Observer: m})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer p.Close(ctx)
	for _, ok := range []bool{true, true, false} {
		_ = p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
			if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("order")}); err != nil {
				return err
			}
			if !ok {
				return errors.New("out of stock") // aborts; not retried
			}
			return nil
		})
	}
	for _, o := range []string{txn.OutcomeCommitted, txn.OutcomeAborted} {
		fmt.Printf("%s: %v\n", o, value(reg, "kprod_transactions_total", o))
	}
	// Output:
	// committed: 2
	// aborted: 1
}

// value returns the value of the first series of name with a label whose
// value is label.
func value(g prometheus.Gatherer, name, label string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() != label {
					continue
				}
				if m.Counter != nil {
					return m.Counter.GetValue()
				}
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}
