package presets_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/kprod/kprod/presets"
)

// A preset is where a service's configuration starts: override what the
// service needs, leave the rest, then pass the result to kafkaproducer.New.
func ExampleReliable() {
	cfg := presets.Reliable()
	cfg.Brokers = []string{"localhost:9092"}
	cfg.ClientID = "orders-api"
	cfg.DeliveryTimeout = time.Minute // this service gives up sooner than the preset

	fmt.Println("acks:", cfg.Acks)
	fmt.Println("compression:", cfg.Compression)
	fmt.Println("linger:", cfg.Linger)
	fmt.Println("delivery timeout:", cfg.DeliveryTimeout)
	// p, err := kafkaproducer.New(cfg)
	// Output:
	// acks: all
	// compression: snappy
	// linger: 5ms
	// delivery timeout: 1m0s
}

// Presets are plain values, so two can be compared field by field through
// Config.String: HighThroughput is Reliable with a faster codec and a
// bigger byte buffer.
func ExampleHighThroughput() {
	reliable := strings.Split(presets.Reliable().String(), "\n")
	bulk := strings.Split(presets.HighThroughput().String(), "\n")
	for i := range bulk {
		if bulk[i] != reliable[i] {
			fmt.Println(bulk[i])
		}
	}
	// Output:
	// Compression: lz4
	// MaxBufferedBytes: 268435456
}

// ByName turns a flag or an environment variable into a preset.
func ExampleByName() {
	for _, name := range presets.Names() {
		cfg, _ := presets.ByName(name)
		fmt.Printf("%s: compression %s, buffer %d records, delivery timeout %v\n",
			name, cfg.Compression, cfg.MaxBufferedRecords, cfg.DeliveryTimeout)
	}
	if _, err := presets.ByName("fast"); err != nil {
		fmt.Println(err)
	}
	// Output:
	// high-throughput: compression lz4, buffer 100000 records, delivery timeout 2m0s
	// low-latency: compression none, buffer 10000 records, delivery timeout 30s
	// reliable: compression snappy, buffer 100000 records, delivery timeout 2m0s
	// kprod: unknown preset "fast": use one of high-throughput, low-latency, reliable
}
