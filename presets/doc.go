// Package presets holds kprod's tuned producer configurations as plain
// kafkaproducer.Config values. Each function returns a fresh value: print
// it, diff it, override any field, then pass it to kafkaproducer.New.
//
//	cfg := presets.Reliable()
//	cfg.Brokers = []string{"localhost:9092"}
//	cfg.ClientID = "orders-api"
//	p, err := kafkaproducer.New(cfg)
//
// All three presets keep idempotence and acks=all: they differ in how they
// trade latency for throughput, never in whether data may be lost or
// duplicated. The functions are safe for concurrent use.
package presets
