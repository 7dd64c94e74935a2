package presets_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPresetsAreFreshValues(t *testing.T) {
	a := presets.Reliable()
	a.Linger = time.Hour
	a.Brokers = append(a.Brokers, "x:1")
	if b := presets.Reliable(); b.Linger == time.Hour || len(b.Brokers) != 0 {
		t.Fatal("changing a returned preset changed the next one")
	}
	for _, n := range presets.Names() {
		c, err := presets.ByName(n)
		if err != nil || c.String() == "" {
			t.Fatalf("%s: %v", n, err)
		}
	}
}

// TestReliableUnderFaults: the reliable preset keeps every record exactly
// once while the broker answers produce requests with a mix of retriable
// errors, including REQUEST_TIMED_OUT after writing the batch.
func TestReliableUnderFaults(t *testing.T) {
	c := testkit.Cluster(t, nil, kfake.SeedTopics(6, "ledger"))
	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	errs := []*kerr.Error{kerr.RequestTimedOut, kerr.NotLeaderForPartition, kerr.NotEnoughReplicas, kerr.RequestTimedOut, kerr.LeaderNotAvailable, kerr.NotEnoughReplicasAfterAppend}
	const n = 20_000
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []error
	for i := range n {
		if i%2000 == 1000 {
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: errs[(i/2000)%len(errs)], Count: 3})
		}
		wg.Add(1)
		r := kafkaproducer.Record{Topic: "ledger", Key: fmt.Appendf(nil, "acct-%d", i%500), Value: fmt.Appendf(nil, "%08d", i)}
		if err := p.SendAsync(ctx, r, func(res kafkaproducer.Result) {
			defer wg.Done()
			if res.Err != nil {
				mu.Lock()
				failed = append(failed, res.Err)
				mu.Unlock()
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d records failed, first: %v", len(failed), failed[0])
	}
	got := testkit.ConsumeAll(t, c.ListenAddrs(), "ledger", 30*time.Second)
	vals := make([]string, 0, len(got))
	perKey := map[string][]string{}
	for _, r := range got {
		vals = append(vals, string(r.Value))
		perKey[string(r.Key)] = append(perKey[string(r.Key)], string(r.Value))
	}
	sort.Strings(vals)
	if len(vals) != n || len(slices.Compact(vals)) != n {
		t.Fatalf("topic holds %d records (%d distinct), want exactly %d", len(got), len(slices.Compact(vals)), n)
	}
	// Per key (one partition each), records keep the order they were sent.
	for k, vs := range perKey {
		if !slices.IsSorted(vs) {
			t.Fatalf("key %s out of order", k)
		}
	}
}
