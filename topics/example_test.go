package topics_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A service declares its topics and ensures them at start-up; a second
// run (another instance, a restart) finds them there.
func ExampleEnsure() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1))
	defer cluster.Close()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...)) // or kafkaproducer.Producer.Client()
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	want := []topics.Topic{
		{Name: "orders", Partitions: 6, Configs: map[string]string{"min.insync.replicas": "1"}},
		{Name: "orders.DLT"}, // the broker's partitions and replication factor
	}
	rep, err := topics.Ensure(ctx, cl, want)
	fmt.Println(rep, err)
	rep, err = topics.Ensure(ctx, cl, want)
	fmt.Println(rep, err)
	fmt.Println(topics.Ready(ctx, cl, topics.Names(want...)...))
	// Output:
	// created orders, orders.DLT; existing none <nil>
	// created none; existing orders, orders.DLT <nil>
	// <nil>
}

// Drift is reported, and changed only when asked; ValidateOnly asks the
// brokers whether the change would be accepted, changing nothing.
func ExampleAddPartitions() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	defer cluster.Close()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	want := []topics.Topic{{Name: "orders", Partitions: 6, Configs: map[string]string{"cleanup.policy": "compact"}}}
	rep, _ := topics.Ensure(ctx, cl, want)
	fmt.Println(rep)
	rep, _ = topics.Ensure(ctx, cl, want, topics.AddPartitions(), topics.ValidateOnly())
	fmt.Println(rep)
	rep, _ = topics.Ensure(ctx, cl, want, topics.AddPartitions(), topics.AlterConfigs())
	fmt.Println(rep)
	rep, _ = topics.Ensure(ctx, cl, want)
	fmt.Println(rep)
	// Output:
	// created none; existing orders; drift orders: 3 partitions, want 6, cleanup.policy="delete", want "compact"
	// validate only: would create none; existing orders; drift orders: 3 partitions, want 6 (added), cleanup.policy="delete", want "compact"
	// created none; existing orders; drift orders: 3 partitions, want 6 (added), cleanup.policy="delete", want "compact" (altered)
	// created none; existing orders
}

// Ready names what keeps a service from producing.
func ExampleReady() {
	cluster, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "orders"))
	defer cluster.Close()
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()

	fmt.Println(topics.Ready(ctx, cl, "orders"))
	fmt.Println(topics.Ready(ctx, cl, "orders", "payments"))
	// Output:
	// <nil>
	// kprod: topic "payments" does not exist: UNKNOWN_TOPIC_OR_PARTITION: This server does not host this topic-partition.
}
