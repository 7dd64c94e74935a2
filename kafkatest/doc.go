// Package kafkatest gives a test a running Kafka cluster and cleans it up
// when the test ends. It is a module of its own
// (github.com/kprod/kprod/kafkatest), so a service that imports kprod's
// producer never downloads testcontainers or the Docker client; import
// kafkatest from tests only.
//
//	func TestOrders(t *testing.T) {
//		c := kafkatest.Start(t, kafkatest.WithTopics(3, "orders"))
//		p := c.Producer(t, presets.Reliable()) // Brokers filled in, closed at the end
//		if _, err := p.Send(ctx, kafkaproducer.Record{Topic: c.Topic("orders"), Value: []byte("o-1")}); err != nil {
//			t.Fatal(err)
//		}
//		recs := c.ReadAll(t, c.Topic("orders"), kafkatest.ReadCommitted, 10*time.Second)
//		// ...
//	}
//
// # Backends
//
// Start takes the first of these that is available, or the one named by
// WithBackend or KAFKATEST_BACKEND, and logs which it used and why it
// passed over the others:
//
//  1. external: the cluster in KAFKATEST_BOOTSTRAP_SERVERS (kafkatest
//     never reads KAFKA_BOOTSTRAP_SERVERS). Never stopped or
//     reconfigured; WithTopics names get a per-test prefix (c.Topic), and
//     every topic the test creates is deleted at the end.
//  2. image: a real broker image named by WithImage or KAFKATEST_IMAGE
//     (apache/kafka, confluentinc/confluent-local, redpandadata/redpanda),
//     through testcontainers-go. The image must be local or pullable.
//  3. kfake-container: kprod's cmd/kfake-broker (franz-go's kfake as a
//     static binary) in a FROM scratch image that kafkatest builds with the
//     go command and the Docker engine, tagged by content hash
//     (kprod/kfake-broker:<hash>), with CGO_ENABLED=0 and none of the
//     test's GOFLAGS, once per machine under a file lock. It needs no
//     registry.
//  4. kfake: kfake in the test process. It needs nothing.
//
// A missing Docker engine is detected with a 2 second probe, never by
// waiting on testcontainers. An explicitly chosen backend that is
// unavailable skips the test with the reason. A backend listed in
// KAFKATEST_REQUIRE, or chosen with RequireBackend, fails the test
// instead (set that in CI). An option a backend cannot honour (see
// WithBrokers, WithTLS, WithSASL...) passes it over in the automatic
// order, or skips a test that chose it; it is never ignored. Without a
// registry, set TESTCONTAINERS_RYUK_DISABLED=true: the reaper image cannot
// be pulled, and kafkatest removes its containers itself.
//
// # Faults
//
// Stop and Restart shut the broker down and bring it back on the same
// address with its data (a kfake data dir kept in the container, or on
// disk for in-process kfake; a fixed published port for apache/kafka).
// Pause and Unpause freeze it (docker pause, or held connections
// in-process): clients see timeouts rather than refusals. On a backend
// that cannot, Stop and Pause skip the test and Restart and Unpause
// return ErrUnsupported; RequireFaults skips at Start instead.
//
// # Concurrency
//
// A Cluster is safe for concurrent use; its fault helpers are serialised.
// Start may be called from parallel tests: each gets its own cluster
// (except on an external cluster, which they share: use NewTopic for
// unique topics).
package kafkatest
