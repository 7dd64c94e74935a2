package kafkaproducer

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestConnWatchOneBadBroker: a broker that refuses the producer's
// credentials fails nothing while another broker takes its connections;
// only when every broker heard from refuses does connWatch report the
// cause and abort the buffer, and a broker that takes a connection again
// clears it.
func TestConnWatchOneBadBroker(t *testing.T) {
	p, err := New(Config{Brokers: []string{"127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	w := &p.watch
	broker := func(port int32) kgo.BrokerMetadata { return kgo.BrokerMetadata{Host: "127.0.0.1", Port: port} }
	refused := fmt.Errorf("%w: SASL_AUTHENTICATION_FAILED", ErrAuthFailed)

	w.OnBrokerConnect(broker(9092), 0, nil, nil)
	w.OnBrokerConnect(broker(9093), 0, nil, refused)
	w.OnBrokerConnect(broker(9093), 0, nil, refused)
	if ce := w.last.Load(); ce != nil {
		t.Fatalf("one refusing broker among good ones reported %v", ce)
	}
	w.OnBrokerConnect(broker(9094), 0, nil, fmt.Errorf("dial tcp: connection refused"))
	if ce := w.last.Load(); ce != nil {
		t.Fatalf("an unreachable broker (retriable) reported %v", ce)
	}

	w.OnBrokerConnect(broker(9092), 0, nil, refused)
	ce := w.last.Load()
	if ce == nil || ce.Broker != "127.0.0.1:9092" {
		t.Fatalf("every broker heard from refuses, got %v: want the cause reported", ce)
	}
	if Classify(ce) != ClassAuthorization {
		t.Fatalf("reported %v as %v", ce, Classify(ce))
	}

	w.OnBrokerConnect(broker(9093), 0, nil, nil)
	if ce := w.last.Load(); ce != nil {
		t.Fatalf("a broker took a connection again but %v is still reported", ce)
	}
}
