// Command deadletter shows kprod's dead-letter path end to end: healthy
// sends, a record too large and a serialization failure routed to the
// dead-letter topic, then a broker outage during which records go to the
// on-disk spool, and the replay that delivers them once the broker is
// back. Every record ends in a known place; the report at the end proves
// it.
//
// It runs against an in-process kfake cluster (restarted on the same
// port with its data), or with --brokers against a real cluster, where
// the outage part is skipped. Either way it first makes sure its topics
// exist with topics.Ensure: orders with max.message.bytes 65536 (so a
// large record has somewhere to fail) and orders.DLT, 3 partitions each,
// created only where missing. An existing orders with another limit is
// reported as drift and left alone.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "", "use this cluster (host:port,...) instead of an in-process one.\n"+
		"Topics orders (max.message.bytes 65536) and orders.DLT are created there if missing (3 partitions, the broker's replication factor)")
	flag.Parse()
	if err := run(*brokers); err != nil {
		fmt.Fprintln(os.Stderr, "deadletter:", err)
		os.Exit(1)
	}
}

// cluster is an in-process broker that can be stopped and restarted on
// the same port, keeping its records.
type cluster struct {
	dir  string
	port int
	c    *kfake.Cluster
}

func (c *cluster) start() error {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(c.dir)}
	if c.port != 0 {
		opts = append(opts, kfake.Ports(c.port))
	}
	var err error
	for range 50 {
		if c.c, err = kfake.NewCluster(opts...); err == nil {
			_, p, _ := net.SplitHostPort(c.c.ListenAddrs()[0])
			c.port, _ = strconv.Atoi(p)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

func run(brokers string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	tmp, err := os.MkdirTemp("", "kprod-deadletter-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	var kf *cluster
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		kf = &cluster{dir: tmp + "/kafka"}
		if err := kf.start(); err != nil {
			return fmt.Errorf("start kfake: %w", err)
		}
		defer func() { kf.c.Close() }()
		addrs = []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(kf.port))}
		fmt.Printf("in-process cluster at %s\n", addrs[0])
	}

	cfg := presets.Reliable()
	cfg.Brokers = addrs
	cfg.ClientID = "deadletter-example"
	cfg.RequestTimeout = time.Second
	cfg.DeliveryTimeout = 2 * time.Second // give up on a record fast; the spool keeps it
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	// orders refuses records above 64 KiB, so a large one has
	// somewhere to fail; orders.DLT takes them.
	need := []topics.Topic{
		{Name: "orders", Partitions: 3, Configs: map[string]string{"max.message.bytes": "65536"}},
		{Name: "orders.DLT", Partitions: 3},
	}
	rep, err := topics.Ensure(ctx, p.Client(), need)
	if err != nil {
		return err
	}
	fmt.Println("topics:", rep)
	limited := true // orders has the 64 KiB limit, unless it existed with another
	for _, d := range rep.Drift {
		if d.Topic == "orders" && len(d.Configs) > 0 {
			limited = false
		}
	}
	var deadLettered, spooled atomic.Int64
	d, err := dlq.New(p, dlq.Config{
		SpoolDir:      tmp + "/spool",
		SpringHeaders: true,
		Breaker: dlq.BreakerConfig{
			ConsecutiveFailures: 3,
			OpenTimeout:         300 * time.Millisecond,
			PingInterval:        50 * time.Millisecond,
		},
		Replay: dlq.ReplayConfig{Interval: 100 * time.Millisecond},
		OnRecord: func(e dlq.Event) {
			if e.Disposition == dlq.DeadLettered {
				deadLettered.Add(1)
				fmt.Printf("  dead-lettered %s -> %s (%s)\n", e.RecordID, e.Destination, e.Class)
			} else {
				spooled.Add(1)
			}
		},
	})
	if err != nil {
		return err
	}
	defer d.Close(context.Background())

	// 1. Healthy sends.
	const healthy = 1000
	recs := make([]kafkaproducer.Record, healthy)
	for i := range recs {
		recs[i] = order(i)
	}
	delivered := 0
	for _, r := range d.SendBatch(ctx, recs) {
		if r.Disposition == dlq.Delivered {
			delivered++
		}
	}
	fmt.Printf("1. healthy: %d of %d delivered to orders\n", delivered, healthy)

	// 2. Records that can never be written go to orders.DLT.
	fmt.Println("2. bad records:")
	big := order(healthy)
	big.Value = make([]byte, 200_000) // above orders' max.message.bytes (64 KiB here), fine for orders.DLT
	_, _ = rand.Read(big.Value)       // incompressible, so it stays too large
	r, err := d.Send(ctx, big)
	if err != nil || (limited && r.Disposition != dlq.DeadLettered) {
		return fmt.Errorf("too-large record: %v %v (%v)", r.Disposition, err, r.Attempt.Err)
	}
	bigOnTopic := 0 // 1 when orders took the large record (it existed with a higher limit)
	if r.Disposition == dlq.Delivered {
		bigOnTopic = 1
		fmt.Println("  the 200 kB record was delivered: this cluster's orders takes it (see the drift above)")
	}
	serr := &kafkaproducer.BadInputError{Topic: "orders", Side: "value", Err: errors.New("json: unsupported value: NaN")}
	if r, err := d.DeadLetter(ctx, order(healthy+1), serr); err != nil || r.Disposition != dlq.DeadLettered {
		return fmt.Errorf("serialization failure: %v %v", r.Disposition, err)
	}

	outage := 0
	if kf != nil {
		// 3. The broker goes away; sends keep succeeding into the spool.
		outage = 5000
		kf.c.Close()
		fmt.Printf("3. broker stopped; sending %d records\n", outage)
		var wg sync.WaitGroup
		var counts sync.Map
		for i := range outage {
			wg.Add(1)
			if err := d.SendAsync(ctx, order(healthy+2+i), func(r dlq.Result) {
				defer wg.Done()
				n, _ := counts.LoadOrStore(r.Disposition, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}); err != nil {
				return err
			}
		}
		wg.Wait()
		counts.Range(func(k, v any) bool {
			fmt.Printf("   %-13s %d\n", k, v.(*atomic.Int64).Load())
			return true
		})
		st := d.Stats()
		fmt.Printf("   breaker %s, healthy %v; spool holds %d records (%d bytes); %d ambiguous\n",
			st.Breaker, d.Healthy(), st.SpoolRecords, st.SpoolBytes, st.Ambiguous)

		// 4. The broker comes back on the same port with its data; the
		// breaker closes after its probes and the spool replays.
		if err := kf.start(); err != nil {
			return fmt.Errorf("restart kfake: %w", err)
		}
		fmt.Println("4. broker restarted; waiting for replay")
		start := time.Now()
		for d.Spool().Len() > 0 {
			if ctx.Err() != nil {
				return fmt.Errorf("spool still holds %d records", d.Spool().Len())
			}
			time.Sleep(50 * time.Millisecond)
		}
		fmt.Printf("   spool drained in %v; breaker %s\n", time.Since(start).Round(time.Millisecond), d.BreakerState())
	} else {
		fmt.Println("3-4. outage skipped: it needs the in-process cluster")
	}

	// 5. Proof: read both topics back and match record IDs.
	onTopic := countIDs(ctx, addrs, "orders")
	onDLT := countIDs(ctx, addrs, "orders.DLT")
	want, wantDLT := healthy+outage+bigOnTopic, 2-bigOnTopic
	dups := 0
	for _, n := range onTopic {
		dups += n - 1
	}
	st := d.Stats()
	fmt.Println("report:")
	fmt.Printf("   orders:     %d distinct record IDs (want %d), %d duplicate(s), %d ambiguous\n", len(onTopic), want, dups, st.Ambiguous)
	fmt.Printf("   orders.DLT: %d record(s) (want %d)\n", len(onDLT), wantDLT)
	fmt.Printf("   totals: delivered %d, dead-lettered %d, spooled %d, replayed %d, failed %d\n",
		st.Delivered, st.DeadLettered, st.Spooled, st.Replayed, st.Failed)
	if brokers == "" && (len(onTopic) != want || len(onDLT) != wantDLT || int64(dups) > st.Ambiguous || st.Failed != 0) {
		return errors.New("some record is not where it should be")
	}
	fmt.Println("every record accounted for")
	return nil
}

func order(i int) kafkaproducer.Record {
	return kafkaproducer.Record{
		Topic: "orders",
		Key:   fmt.Appendf(nil, "customer-%d", i%100),
		Value: fmt.Appendf(nil, `{"order":%d}`, i),
	}
}

// countIDs reads topic from the start until it goes quiet and counts
// each record ID.
func countIDs(ctx context.Context, addrs []string, topic string) map[string]int {
	out := map[string]int{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return out
	}
	defer cl.Close()
	quiet := 0
	for quiet < 3 && ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			for _, h := range r.Headers {
				if h.Key == dlq.DefaultRecordIDHeader {
					out[string(h.Value)]++
				}
			}
		})
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	return out
}
