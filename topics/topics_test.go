package topics_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client is a franz-go client for c, closed when the test ends.
func client(t testing.TB, c *kfake.Cluster, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// partitions is how many partitions each topic has; missing topics are
// absent.
func partitions(t *testing.T, cl *kgo.Client, names ...string) map[string]int {
	t.Helper()
	tds, err := kadm.NewClient(cl).ListTopics(testkit.Ctx(t, 10*time.Second), names...)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, td := range tds {
		if td.Err == nil {
			out[td.Topic] = len(td.Partitions)
		}
	}
	return out
}

// config is a topic's value of one config.
func config(t *testing.T, cl *kgo.Client, topic, name string) string {
	t.Helper()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(testkit.Ctx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == name {
			return c.MaybeValue()
		}
	}
	return ""
}

func TestEnsureCreates(t *testing.T) {
	c := testkit.Cluster(t, nil, kfake.DefaultNumPartitions(4))
	cl := client(t, c)
	want := []topics.Topic{
		{Name: "orders", Partitions: 6, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "compact", "min.insync.replicas": "1"}},
		{Name: "payments"}, // the broker's defaults
	}
	rep, err := topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, want)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Created, []string{"orders", "payments"}) || len(rep.Existing) != 0 || len(rep.Drift) != 0 || rep.ValidateOnly {
		t.Fatalf("report %+v", rep)
	}
	if got := partitions(t, cl, "orders", "payments"); got["orders"] != 6 || got["payments"] != 4 {
		t.Fatalf("partitions %v, want orders 6 and payments 4 (the broker's default)", got)
	}
	if got := config(t, cl, "orders", "cleanup.policy"); got != "compact" {
		t.Fatalf("orders cleanup.policy %q", got)
	}
	if err := topics.Ready(testkit.Ctx(t, time.Second), cl, topics.Names(want...)...); err != nil {
		t.Fatalf("not ready right after Ensure: %v", err)
	}
	t.Log(rep)

	// Twice is a no-op.
	rep, err = topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, want)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Created) != 0 || !slices.Equal(rep.Existing, []string{"orders", "payments"}) || len(rep.Drift) != 0 {
		t.Fatalf("second Ensure: %+v", rep)
	}
	t.Log(rep)
}

// A producer's own client serves, and a send right after Ensure finds the
// new topic.
func TestEnsureWithProducerClient(t *testing.T) {
	c := testkit.Cluster(t, nil)
	p := testkit.Producer(t, c, presets.Reliable())
	ctx := testkit.Ctx(t, 10*time.Second)
	if _, err := topics.Ensure(ctx, p.Client(), []topics.Topic{{Name: "orders", Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	res, err := p.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if res.Partition < 0 || res.Partition > 1 {
		t.Fatalf("partition %d", res.Partition)
	}
}

func TestEnsureConcurrent(t *testing.T) {
	c := testkit.Cluster(t, nil)
	want := []topics.Topic{{Name: "orders", Partitions: 3}, {Name: "payments", Partitions: 3}}
	const instances = 8
	clients := make([]*kgo.Client, instances)
	for i := range clients {
		clients[i] = client(t, c)
	}
	reps := make([]topics.Report, instances)
	errs := make([]error, instances)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range instances {
		wg.Go(func() {
			<-start
			reps[i], errs[i] = topics.Ensure(testkit.Ctx(t, 10*time.Second), clients[i], want)
		})
	}
	close(start)
	wg.Wait()
	created := map[string]int{}
	for i := range instances {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		if len(reps[i].Created)+len(reps[i].Existing) != len(want) {
			t.Fatalf("instance %d: %+v", i, reps[i])
		}
		for _, n := range reps[i].Created {
			created[n]++
		}
	}
	if created["orders"] != 1 || created["payments"] != 1 {
		t.Fatalf("created counts %v, want each exactly once", created)
	}
	if got := partitions(t, clients[0], "orders", "payments"); got["orders"] != 3 || got["payments"] != 3 {
		t.Fatalf("partitions %v", got)
	}
}

func TestEnsureValidateOnly(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"}) // 3 partitions
	cl := client(t, c)
	want := []topics.Topic{
		{Name: "orders", Partitions: 6, Configs: map[string]string{"cleanup.policy": "compact"}},
		{Name: "payments", Partitions: 2},
	}
	rep, err := topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, want, topics.ValidateOnly(), topics.AddPartitions(), topics.AlterConfigs())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.ValidateOnly || !slices.Equal(rep.Created, []string{"payments"}) || !slices.Equal(rep.Existing, []string{"orders"}) {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Drift) != 1 || !rep.Drift[0].PartitionsAdded || !rep.Drift[0].ConfigsAltered {
		t.Fatalf("drift %+v: want orders, both changes validated", rep.Drift)
	}
	if !strings.HasPrefix(rep.String(), "validate only: would create payments; existing orders; drift orders: 3 partitions, want 6 (added), cleanup.policy=") {
		t.Fatalf("report string %q", rep)
	}
	got := partitions(t, cl, "orders", "payments")
	if _, ok := got["payments"]; ok || got["orders"] != 3 {
		t.Fatalf("a validate-only run changed the cluster: partitions %v", got)
	}
	if v := config(t, cl, "orders", "cleanup.policy"); v == "compact" {
		t.Fatal("a validate-only run altered a config")
	}

	// The broker validates: one replica more than brokers is refused,
	// named, and nothing is created.
	_, err = topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, []topics.Topic{{Name: "wide", ReplicationFactor: 3}}, topics.ValidateOnly())
	var te *topics.Error
	if !errors.As(err, &te) || te.Topic != "wide" || te.Op != kmsg.ACLOperationCreate || !strings.Contains(err.Error(), "INVALID_REPLICATION_FACTOR") {
		t.Fatalf("want a CREATE error for wide, got %v", err)
	}
}

func TestEnsureDrift(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"}) // 3 partitions, cleanup.policy delete
	cl := client(t, c)
	want := []topics.Topic{{Name: "orders", Partitions: 6, Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "3600000"}}}
	ctx := testkit.Ctx(t, 20*time.Second)

	rep, err := topics.Ensure(ctx, cl, want)
	if err != nil {
		t.Fatal(err)
	}
	wantDrift := topics.Drift{Topic: "orders", Partitions: 3, WantPartitions: 6, Configs: []topics.ConfigDrift{
		{Name: "cleanup.policy", Have: "delete", Want: "compact"},
		{Name: "retention.ms", Have: config(t, cl, "orders", "retention.ms"), Want: "3600000"},
	}}
	if len(rep.Drift) != 1 || fmt.Sprint(rep.Drift[0]) != fmt.Sprint(wantDrift) || !slices.Equal(rep.Existing, []string{"orders"}) {
		t.Fatalf("drift %+v, want %+v", rep.Drift, wantDrift)
	}
	t.Log(rep)
	if got := partitions(t, cl, "orders"); got["orders"] != 3 || config(t, cl, "orders", "cleanup.policy") != "delete" {
		t.Fatal("drift was changed without being asked")
	}

	// Partitions only.
	rep, err = topics.Ensure(ctx, cl, want, topics.AddPartitions())
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Drift[0]; !d.PartitionsAdded || d.ConfigsAltered {
		t.Fatalf("drift %+v", d)
	}
	if got := partitions(t, cl, "orders"); got["orders"] != 6 || config(t, cl, "orders", "cleanup.policy") != "delete" {
		t.Fatalf("after AddPartitions: %v partitions, cleanup.policy %q", got, config(t, cl, "orders", "cleanup.policy"))
	}
	if err := topics.Ready(ctx, cl, "orders"); err != nil {
		t.Fatalf("new partitions without leaders: %v", err)
	}

	// Configs.
	rep, err = topics.Ensure(ctx, cl, want, topics.AlterConfigs())
	if err != nil {
		t.Fatal(err)
	}
	if d := rep.Drift[0]; d.WantPartitions != 0 || !d.ConfigsAltered || len(d.Configs) != 2 {
		t.Fatalf("drift %+v", d)
	}
	if config(t, cl, "orders", "cleanup.policy") != "compact" || config(t, cl, "orders", "retention.ms") != "3600000" {
		t.Fatal("configs not altered")
	}

	// More partitions than asked is not drift.
	rep, err = topics.Ensure(ctx, cl, []topics.Topic{{Name: "orders", Partitions: 2, Configs: want[0].Configs}})
	if err != nil || len(rep.Drift) != 0 {
		t.Fatalf("in line now: %+v %v", rep, err)
	}
}

func TestEnsureRefusesBadTopics(t *testing.T) {
	c := testkit.Cluster(t, nil)
	cl := client(t, c)
	tests := []struct {
		name string
		ts   []topics.Topic
		want string
	}{
		{"no name", []topics.Topic{{Name: " "}}, "has no name"},
		{"twice", []topics.Topic{{Name: "a"}, {Name: "a"}}, `topic 1 ("a") is named twice`},
		{"negative partitions", []topics.Topic{{Name: "a", Partitions: -1}}, "use 0 for the broker's default"},
		{"negative replication", []topics.Topic{{Name: "a", ReplicationFactor: -1}}, "replication factor -1"},
		{"empty config name", []topics.Topic{{Name: "a", Configs: map[string]string{"": "x"}}}, "config with no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := topics.Ensure(testkit.Ctx(t, 5*time.Second), cl, tt.ts)
			if kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Fatalf("got %v (%s), want a bad-input error containing %q", err, kafkaproducer.Classify(err), tt.want)
			}
		})
	}
	if got := partitions(t, cl, "a"); len(got) != 0 {
		t.Fatal("a refused call created a topic")
	}
}

func TestEnsureNothing(t *testing.T) {
	c := testkit.Cluster(t, nil)
	rep, err := topics.Ensure(testkit.Ctx(t, 5*time.Second), client(t, c), nil)
	if err != nil || len(rep.Created)+len(rep.Existing)+len(rep.Drift) != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
}
