// Package txn makes Kafka transactions safe to use without knowing the
// protocol: a transactional Producer whose Run commits a function's sends
// atomically (or aborts them all), a Pool of them for concurrent
// transactions, and a Pipeline for exactly-once consume-transform-produce.
//
//	cfg := presets.Reliable()
//	cfg.Brokers = []string{"localhost:9092"}
//	p, err := txn.New(cfg, txn.Config{ID: "orders-svc-0"}) // fences older instances, fails fast on a bad ID
//	if err != nil { ... }
//	defer p.Close(ctx)
//	err = p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
//		if _, err := tx.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: order}); err != nil {
//			return err
//		}
//		_, err := tx.Send(ctx, kafkaproducer.Record{Topic: "payments", Value: payment})
//		return err // nil commits both; anything else aborts both
//	})
//
// What Run guarantees: records sent through tx become visible to
// read_committed consumers together, or never. An error, a failed record,
// a panic or a canceled context aborts. Errors Kafka marks abortable or
// retriable (kafkaproducer.Classify: ClassAbortable, ClassRetriable,
// ClassTimeout) abort and rerun the whole function with backoff, a bounded
// number of times. A canceled context aborts its own transaction only. Fencing (a newer instance with the same transactional
// ID) is final and matches kafkaproducer.ErrFenced: PRODUCER_FENCED,
// INVALID_PRODUCER_EPOCH and TRANSACTION_COORDINATOR_FENCED always count
// as fencing; OPERATION_NOT_ATTEMPTED or another fatal answer counts only
// when the transaction coordinator confirms a newer owner of the ID
// (DescribeTransactions). A commit whose outcome is unknown returns
// ErrCommitUnknown and is not retried, so a retry never duplicates a
// transaction.
//
// Consumers only see this if they read with isolation.level=read_committed;
// read_uncommitted consumers (the default in most clients) also see
// aborted records.
//
// Closing: Producer.Close and Pool.Close cancel running functions'
// contexts and wait for their aborts while ctx allows; a function that
// ignores its context is not waited for (Pool.Close then returns a
// *PoolCloseError naming its ID), and the transaction it left open never
// commits.
//
// Concurrency: Producer and Pool are safe for concurrent use; a Producer
// runs one transaction at a time, a Pool one per member. A Tx may be used
// by goroutines its function starts until the function returns. A
// Pipeline's Run runs on one goroutine; Close may be called from any.
// Observer callbacks run on the goroutine that ran the transaction, with
// no lock held.
//
// Configuration: each constructor takes the producer's
// kafkaproducer.Config and a Config (PoolConfig and PipelineConfig embed
// it); zero fields mean their documented defaults.
package txn
