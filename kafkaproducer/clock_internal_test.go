package kafkaproducer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// stepClock is a clock that moves one step forward each time it is read.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

// TestClockIsInjectable: the producer reads time only through its clock:
// a record's timestamp, its latency and the stale-timestamp check all
// follow a fake one, with no sleep in the test.
func TestClockIsInjectable(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := Config{Brokers: c.ListenAddrs(), DeliveryTimeout: time.Minute, RequestTimeout: 10 * time.Second}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	start := time.Now().Truncate(time.Millisecond)
	clock := &stepClock{now: start, step: time.Hour}
	p.clock = clock

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := p.Send(ctx, Record{Topic: "orders", Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	// Sent at the first reading, completed at the second.
	if !res.Timestamp.Equal(start.Add(time.Hour)) || res.Latency != time.Hour {
		t.Errorf("timestamp %v (want %v), latency %v (want 1h): not from the injected clock", res.Timestamp, start.Add(time.Hour), res.Latency)
	}

	// The clock now reads hours past the real time: a record stamped
	// with the real time is older than the delivery timeout.
	_, err = p.Send(ctx, Record{Topic: "orders", Value: []byte("y"), Timestamp: time.Now()})
	if !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("a record stamped hours before the producer's clock: %v, want ErrStaleTimestamp", err)
	}
}
