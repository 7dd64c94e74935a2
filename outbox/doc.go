// Package outbox is a transactional outbox for kprod: a service writes its
// database change and the Kafka records that announce it in one database
// transaction, and a relay publishes the records once, and only if, that
// transaction commits.
//
//	tbl := outbox.Table{Dialect: outbox.Postgres}          // or outbox.SQLite
//	err := tbl.Migrate(ctx, db)                            // tables, index, notify trigger
//
//	tx, _ := db.BeginTx(ctx, nil)
//	_, _ = tx.ExecContext(ctx, `INSERT INTO orders ...`)
//	err = tbl.Add(ctx, tx, kafkaproducer.Record{Topic: "orders", Key: id, Value: v})
//	err = tx.Commit()                                      // both, or neither
//
//	relay, err := outbox.NewRelay(outbox.RelayConfig{Table: tbl, DB: db, Producer: p})
//	go relay.Run(ctx)                                      // in every instance; one leads
//
// # Guarantees
//
// Every row of a committed transaction is published; no row of a
// transaction that rolled back ever is. A row is deleted only after Kafka
// acknowledged it, in a transaction that also checks this relay still holds
// the lease.
//
// No row is skipped, however transactions interleave: the relay keeps no
// "last ID" watermark. Each round deletes what was acknowledged and reads
// the rows with the lowest IDs, so a transaction that took its IDs early
// and committed late is read on the first round after its commit.
//
// Duplicates: in the normal case (one leader, restarts through Run's
// ctx, rolling deploys) none. After a crash (or a leader cut off from the
// database for longer than LeaseTTL) the rows that leader had sent and not
// yet deleted, at most one batch, are sent again by the next leader. Each
// record carries its row's ID in the kprod-record-id header
// (dlq.DefaultRecordIDHeader), identical on every send, so consumers drop
// the second copy.
//
// Order: one relay publishes at a time (the lease), one batch at a time,
// rows in ID order through one idempotent producer, and a batch's rows
// that Kafka did not acknowledge stay at the head of the outbox, with the
// rows of their partition after them (franz-go fails a partition's later
// records with an earlier one). So, per partition (and so per key while
// the topic's partition count is unchanged), records are published in row
// ID order among the rows visible to one round, and a row is never
// published before a row of its partition that a previous round read.
// For two rows A and B of one key that means: if A's transaction committed
// before B was added, A is published first, also across relay restarts,
// failovers and retries; a consumer that drops duplicates by record ID sees
// A before B. Writers that serialise per key (they update the same
// aggregate row before adding its event, the usual case) get every key's
// records in commit order. Two transactions adding rows for one key
// concurrently, neither waiting for the other, have no order between them:
// their rows may appear in commit order or in ID order.
//
// Poison rows: a row Kafka refuses as bad input (too large, topic missing,
// partition out of range, an unreadable headers column) is sent again
// alone; if it fails alone as bad input it is moved to the Name_dead table
// with its error, and the rows after it go on. A topic that is missing for
// a while therefore dead-letters its rows; create topics before writing to
// them (package topics). Every other failure (timeouts, brokers down,
// authorization) keeps the rows in the outbox, in order, and the relay
// retries with backoff: the table is the buffer, memory stays bounded by
// one batch.
//
// docs/outbox.md has the details, the SQL for re-queueing dead letters,
// metrics and measured figures.
//
// # Concurrency
//
// Table is a plain value, safe for concurrent use. A Relay is safe for
// concurrent use; Run runs once at a time, and every goroutine it starts
// ends before it returns. Observer methods run on the relay's goroutines
// and must not block.
package outbox
