// Package dlt operates a dead-letter topic after the fact: it reads the
// dead letters kprod (package dlq) or Spring Kafka wrote, summarises them,
// and replays a selection of them to their original topic once an operator
// has fixed the cause. cmd/kprod-dlt is a thin shell over it; a service
// can call the same functions from an admin endpoint.
//
//	cfg, _ := kafkaproducer.FromEnv("KPROD_", presets.Reliable())
//	sum, err := dlt.Inspect(ctx, cfg, "orders.DLT", dlt.Filter{})
//	...
//	p, _ := kafkaproducer.New(cfg)
//	st, err := dlt.Replay(ctx, p, dlt.ReplayConfig{
//		DLT:    "orders.DLT",
//		Filter: dlt.Filter{Classes: []string{"bad_input"}},
//		Rate:   500, // records/s
//	})
//	// err == nil && st.FailedAgain == 0: every selected record is on its topic.
//
// What Replay guarantees:
//
//   - Every selected dead letter ends on its destination (the original
//     topic, or ReplayConfig.ToTopic) or, refused for a fault of its own
//     (too large, invalid), back on the dead-letter topic with both causes
//     in its headers (Replay counts it in FailedAgain and returns
//     ErrFailedAgain); none is lost. A cause that is not the record's (a
//     denied write, a producer-level error, a missing topic, a timeout, an
//     unreachable cluster) stops the replay with nothing committed past
//     the record and an error naming the cause and the fix.
//   - Progress is a consumer-group position on the dead-letter topic,
//     committed only after every replayed record before it was
//     acknowledged. A replay interrupted through its ctx waits at most
//     ReplayConfig.Grace for records in flight, commits what was
//     acknowledged and resumes without sending anything twice; one killed
//     outright (SIGKILL, crash) resumes the same way, checking the
//     destination topic for the records it sent since its last commit (by
//     the kprod-dlt-replay-source header) before sending them again.
//   - One group is one selection: the default group name is derived from
//     the dead-letter topic, the Filter and ToTopic (DefaultGroup), so a
//     rerun with the same selection resumes, and a different selection
//     starts from the beginning and sees the records an earlier one
//     skipped.
//
// Replayed records keep their key, value, headers and kprod-record-id;
// the failure headers (kprod-dlt-*, kafka_dlt-*) are stripped and
// kprod-dlt-replay-count and kprod-dlt-replay-source are added. See
// docs/deadletter.md ("Operating a dead-letter topic").
//
// Inspect, Scan and Replay are safe to call concurrently, but two
// replays with the same group at once would both send: run one per group.
package dlt
