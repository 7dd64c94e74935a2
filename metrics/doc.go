// Package metrics gives a kprod producer Prometheus metrics and,
// optionally, OpenTelemetry tracing.
//
// Metrics go only into the prometheus.Registerer you pass to New; nothing
// is ever registered into the global registry. Record outcomes come from
// a kafkaproducer.Hook (sent, failed by error class, send latency, by
// topic); batch sizes, compression ratio and per-broker produce requests
// from franz-go hooks; connections, bytes and request timings from
// franz-go's kprom plugin, under <namespace>_client_ (kprom's misnamed
// buffered-records gauges and its per-batch counters are kept out of the
// registry; kprod measures those itself, lint-clean and cheaper).
// Transactions and the dead-letter path (dead letters, spool, circuit
// breaker, records set aside) are counted once you pass m itself as
// txn.Config.Observer and as dlq.Config.Observer: *Metrics has their
// observer methods, with plain-typed arguments, so importing this package
// pulls in neither txn nor dlq (nor the circuit breaker and spool behind
// dlq). docs/metrics.md lists every metric.
//
//	reg := prometheus.NewRegistry()
//	m, err := metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "orders"}))
//	if err != nil { ... }
//	cfg := m.Instrument(presets.Reliable())
//	cfg.Opts = append(cfg.Opts, metrics.Tracing(tracerProvider)) // optional
//	p, err := kafkaproducer.New(cfg)
//	d, err := dlq.New(p, dlq.Config{SpoolDir: dir, Observer: m}) // optional
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// For a transactional producer: txn.New(m.Instrument(cfg),
// txn.Config{ID: id, Observer: m}).
//
// # Cardinality
//
// Labels are topic, class (the nine kafkaproducer classes), node_id
// (one per broker), outcome (committed, aborted, unknown), state
// (closed, half-open, open) and reason (rejected, quarantined, other):
// never keys,
// partitions or error strings. The topic label is capped (WithMaxTopics,
// default 100 distinct topics; later ones count as "other").
//
// # Several producers
//
// Give each producer its own Metrics with distinct WithConstLabels (or
// pass a prometheus.WrapRegistererWith registerer); a second Metrics with
// the same labels on the same registry is refused by New.
//
// # Concurrency
//
// A Metrics is safe for concurrent use; its hooks run on franz-go's
// goroutines and never block. One Metrics instruments one producer.
package metrics
