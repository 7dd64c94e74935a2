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
//	// err != nil: the record is nowhere; it is yours to handle.
//	defer d.Close(ctx)
//
// Routing. A record that fails terminally is classified with
// kafkaproducer.Classify and routed by Config.Route (DefaultRoute):
// failures that are the record's fault (too large, authorization,
// serialization via DeadLetter) go to its dead-letter topic
// ("{topic}.DLT" by default) with headers that explain them; failures
// that are not (delivery timeout, unreachable cluster, open breaker,
// closing) go to the spool and are replayed to their topic later. A
// dead letter the dead-letter topic refuses for now, or because that topic
// does not exist yet, is spooled for that topic. A record refused for the
// call itself (kafkaproducer.ErrNoTopic, ErrBadPartition,
// ErrPartitionRequired, ErrStaleTimestamp) is returned to the caller and
// never routed. After Close began, calls fail with
// kafkaproducer.ErrClosed.
//
// The spool (package dlq/spool) is an append-only, checksummed log,
// fsync'd with group commit before a record counts as spooled. Replay
// sends its records in spool order and removes each only after Kafka
// acknowledged it. Every record carries a unique record-ID header so
// consumers can drop the duplicate an ambiguous timeout can cause.
//
// A circuit breaker (sony/gobreaker v2) opens on consecutive or
// proportional delivery failures and on failed pings; while open, sends
// go straight to the spool (or fail fast, by Config.WhenOpen), and
// half-open probes close it again. Healthy and BreakerState expose it to
// health checks; Observer to metrics.
//
// docs/deadletter.md documents every header, the spool format, the
// ordering guarantees and the failure modes.
//
// A Producer is safe for concurrent use. Callbacks (SendAsync's, OnRecord,
// Observer methods) must not block and must not call back into it.
package dlq
