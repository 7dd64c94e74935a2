// Package kafkaproducer is kprod's core: a validated configuration, a
// Producer built on one franz-go client, four ways to send (Send,
// SendAsync, SendBatch, TrySend) with a Result per record, SendAsyncErr for
// bulk sends that need only each record's error, and one error classifier
// (Classify) that every other kprod package uses.
//
// Pick a preset, set the brokers, send:
//
//	cfg := presets.Reliable()
//	cfg.Brokers = []string{"localhost:9092"}
//	p, err := kafkaproducer.New(cfg)
//	if err != nil { ... }                  // a *ConfigError names the setting
//	defer p.Close(ctx)                     // flushes; hands back what it could not send
//	res, err := p.Send(ctx, kafkaproducer.Record{Topic: "orders", Key: k, Value: v})
//	switch kafkaproducer.Classify(err) { ... }
//
// # Guarantees
//
// Every record handed to a Producer ends in exactly one reported outcome:
// a Result with an offset, or a Result whose Err is a *SendError naming the
// record and classifying the cause. With Config.DeliveryTimeout set (every
// preset sets it) that outcome arrives within the timeout even when the
// whole cluster is gone. Close reports every record it could not deliver
// in a *CloseError. Nothing is dropped silently.
//
// Idempotence is on unless disabled: retries after lost answers do not
// duplicate records. A record failed by the delivery timeout is ambiguous
// (ClassTimeout): it may have been written.
//
// # Contexts
//
// A record's context bounds its caller's wait, never other records. If it
// ends while a send waits for buffer space, the record is not sent and
// the call returns the context's error. Once the record is buffered, its
// context no longer affects it or any other record: Send and SendBatch
// return at once with an error wrapping ErrOutcomeUnknown (ClassCanceled
// or ClassTimeout) and the record goes on, its real outcome reaching the
// hooks (metrics); Close waits for it. Context values (trace spans) travel
// with the record.
//
// # Concurrency
//
// A Producer is safe for concurrent use by any number of goroutines.
// SendAsync, SendAsyncErr and TrySend callbacks run on franz-go's promise
// goroutine one at a time and must not block. Hooks run there too for those records, and
// on the caller's goroutine for Send and SendBatch, so they must be safe
// for concurrent use. Config values are plain data and may be copied
// freely.
package kafkaproducer
