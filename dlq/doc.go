// Package dlq makes sure every record handed to kprod ends in exactly one
// known place: acknowledged on its topic, acknowledged on a dead-letter
// topic, persisted in a local spool on disk, or returned to the caller as
// an error at the moment of the call (or in its callback). Never dropped
// silently, never held in memory without bound.
//
// It wraps a kafkaproducer.Producer without changing it:
//
//	p, _ := kafkaproducer.New(presets.Reliable())
//	d, err := dlq.New(p, dlq.Config{SpoolDir: "/var/lib/orders/spool", SpringHeaders: true})
//	...
//	res, err := d.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: v})
//	// err == nil: res.Disposition is Delivered, DeadLettered or Spooled.
//	// err != nil: Failed, the record is nowhere and yours to handle; or
//	// Pending (errors.Is(err, kafkaproducer.ErrOutcomeUnknown)): ctx ended
//	// while the record was on its way, and it still ends somewhere.
//	defer d.Close(ctx)
//
// Routing is by cause, then by class (Config.Route, DefaultRoute). A
// topic that does not exist yet or denies the write is an operator's
// problem for that topic: its records wait in the spool and replay to it,
// never to the dead-letter topic. Failures that are the record's fault
// (too large, invalid, serialization via DeadLetter) go to its
// dead-letter topic ("{topic}.DLT" by default) with headers that explain
// them. Failures that are the cluster's (delivery timeout, unreachable
// cluster, open breaker, closing) go to the spool and are replayed to
// their topic later. A record whose ctx ended before it was buffered is
// returned to the caller, never sent.
//
// What is returned at the call: refusals of the call itself
// (kafkaproducer.ErrNoTopic, ErrBadPartition, ErrPartitionRequired,
// ErrStaleTimestamp), a record no destination can ever take (its
// dead-letter topic refuses it too for anything but a transient cause:
// too large for both, missing, denied), and, after Close began,
// kafkaproducer.ErrClosed. The spool only holds records some destination
// will take once the cluster or an operator lets it.
//
// The spool (package dlq/spool) is an append-only, checksummed log,
// fsync'd with group commit before a record counts as spooled. Replay
// sends its records in spool order and removes each only after Kafka
// acknowledged it. A record replay can never write (too large for its
// topic and its dead-letter topic) and damaged spool bytes are set aside
// for an operator: counted in Stats, reported to Observer.OnSetAside, and
// Replay returns ErrSetAside. Every record carries a unique record-ID
// header so consumers can drop the duplicate an ambiguous failure can
// cause; only a record that may have been written is counted ambiguous.
//
// A circuit breaker (sony/gobreaker v2, which keeps the counts) opens on
// consecutive or proportional delivery failures and on failed pings;
// while open, sends go straight to the spool (or fail fast, by
// Config.WhenOpen), and half-open probes close it again. Healthy and
// BreakerState (a gobreaker.State) expose it to health checks; Observer
// to metrics. Sender adapts a Producer to kafkaproducer.RecordSender, so
// kafkaproducer.NewTyped can send through it.
//
// docs/deadletter.md documents every header, the routing table, the
// spool format, the ordering guarantees and the failure modes.
//
// A Producer is safe for concurrent use. Callbacks (SendAsync's, OnRecord,
// Observer methods) must not block and must not call back into it.
package dlq
