package topics_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestReady(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "payments"}, kfake.AllowAutoTopicCreation())
	cl := client(t, c)

	if err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl); err != nil {
		t.Fatalf("cluster only: %v", err)
	}
	if err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl, "orders", "payments"); err != nil {
		t.Fatalf("ready: %v", err)
	}

	// A missing topic is named, and the check does not create it even
	// where the broker would auto-create.
	err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl, "orders", "audit")
	var te *topics.Error
	if !errors.As(err, &te) || te.Topic != "audit" || !errors.Is(err, kerr.UnknownTopicOrPartition) || kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
		t.Fatalf("want audit missing, got %v", err)
	}
	if got := partitions(t, cl, "audit"); len(got) != 0 {
		t.Fatal("Ready auto-created the topic")
	}

	// A partition without a leader.
	h := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Metadata}, Topic: "payments", Partitions: []int32{1}, Err: kerr.LeaderNotAvailable, Count: -1})
	err = topics.Ready(testkit.Ctx(t, 5*time.Second), cl, "orders", "payments")
	if !errors.As(err, &te) || te.Topic != "payments" || !strings.Contains(err.Error(), "partition 1 has no leader") || !kafkaproducer.IsRetriable(err) {
		t.Fatalf("want payments partition 1 without a leader, retriable; got %v", err)
	}
	h.Remove()
	if err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl, "orders", "payments"); err != nil {
		t.Fatalf("after the fault: %v", err)
	}
}

// Ready is fast on loopback: it is meant for a health endpoint.
func TestReadyLatency(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "payments", "inventory"})
	cl := client(t, c)
	ctx := testkit.Ctx(t, 10*time.Second)
	start := time.Now()
	if err := topics.Ready(ctx, cl, "orders", "payments", "inventory"); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	const n = 200
	lat := make([]time.Duration, n)
	for i := range lat {
		start := time.Now()
		if err := topics.Ready(ctx, cl, "orders", "payments", "inventory"); err != nil {
			t.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	p50, p99 := lat[n/2], lat[n*99/100]
	t.Logf("Ready(3 topics) on loopback: first call (connecting) %v, then p50 %v, p99 %v, max %v", first, p50, p99, lat[n-1])
	if p50 > 100*time.Millisecond || first > time.Second {
		t.Fatalf("Ready too slow: first %v, p50 %v", first, p50)
	}
}

func TestReadyClusterGone(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	cl := client(t, c)
	if err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl); err != nil {
		t.Fatal(err)
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = topics.Ready(ctx, cl, "orders")
	if err == nil || !kafkaproducer.IsRetriable(err) {
		t.Fatalf("want a retriable error, got %v (%s)", err, kafkaproducer.Classify(err))
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("took %v with a 300ms context", el)
	}
	t.Logf("%s: %v", kafkaproducer.Classify(err), err)
}

func BenchmarkReady(b *testing.B) {
	c := testkit.Cluster(b, []string{"orders", "payments", "inventory"})
	cl := client(b, c)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := topics.Ready(ctx, cl, "orders", "payments", "inventory"); err != nil {
			b.Fatal(err)
		}
	}
}
