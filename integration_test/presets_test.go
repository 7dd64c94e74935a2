package integration_test

import (
	"encoding/json"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"
)

// TestPresetsEndToEnd sends through each preset with every send method
// (Send, SendAsync, SendBatch), closes cleanly, and reads back exactly
// what was sent: keys, values, headers, per-key order, and the partition
// and offset each Result reported.
func TestPresetsEndToEnd(t *testing.T) {
	onEachBackend(t, func(t *testing.T, c *kafkatest.Cluster) {
		for _, name := range presets.Names() {
			t.Run(name, func(t *testing.T) {
				cfg, err := presets.ByName(name)
				if err != nil {
					t.Fatal(err)
				}
				topic := c.NewTopic(t, 3)
				p := c.Producer(t, cfg)
				ctx := ctxFor(t, time.Minute)

				const n = 150
				var want []kafkaproducer.Record
				for i := range n {
					want = append(want, testRecord(topic, i))
				}
				results := make([]kafkaproducer.Result, n)
				// Send for the first 10 records, SendAsync for the next
				// 70, SendBatch for the rest.
				for i := range 10 {
					res, err := p.Send(ctx, want[i])
					if err != nil {
						t.Fatalf("send %d: %v", i, err)
					}
					results[i] = res
				}
				var wg sync.WaitGroup
				for i := 10; i < 80; i++ {
					wg.Add(1)
					if err := p.SendAsync(ctx, want[i], func(r kafkaproducer.Result) {
						results[i] = r
						wg.Done()
					}); err != nil {
						t.Fatalf("send async %d: %v", i, err)
					}
				}
				batch := p.SendBatch(ctx, want[80:])
				if err := batch.FirstErr(); err != nil {
					t.Fatalf("send batch: %v", err)
				}
				copy(results[80:], batch)
				wg.Wait()
				if err := p.Close(ctx); err != nil {
					t.Fatalf("close: %v", err)
				}

				got := c.ReadAll(t, topic, kafkatest.ReadCommitted, 30*time.Second)
				checkRecords(t, got, want)
				where := make(map[string][2]int64)
				for _, r := range got {
					where[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
				}
				for i, res := range results {
					if res.Err != nil {
						t.Fatalf("record %d: %v", i, res.Err)
					}
					if w := where[string(res.Record.Value)]; w != [2]int64{int64(res.Partition), res.Offset} {
						t.Fatalf("record %d: Result says partition %d offset %d, the log has it at %v", i, res.Partition, res.Offset, w)
					}
				}
			})
		}
	})
}

type order struct {
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
}

// TestTypedSend sends Go values through kafkaproducer.NewTyped (string
// keys, JSON values) and reads them back decoded; a value that cannot be
// serialized fails as bad input and never reaches the topic.
func TestTypedSend(t *testing.T) {
	onEachBackend(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := c.NewTopic(t, 3)
		p := c.Producer(t, presets.LowLatency())
		typed, err := kafkaproducer.NewTyped[string, order](p, kafkaproducer.StringSerializer{}, kafkaproducer.JSON[order]())
		if err != nil {
			t.Fatal(err)
		}
		ctx := ctxFor(t, 30*time.Second)
		want := map[string]order{
			"o-1": {ID: "o-1", Amount: 12.5},
			"o-2": {ID: "o-2", Amount: 99},
			"o-3": {ID: "o-3", Amount: 0.01},
		}
		for k, v := range want {
			if _, err := typed.Send(ctx, kafkaproducer.TypedRecord[string, order]{Topic: topic, Key: k, Value: v}); err != nil {
				t.Fatalf("typed send %s: %v", k, err)
			}
		}
		_, err = typed.Send(ctx, kafkaproducer.TypedRecord[string, order]{Topic: topic, Key: "bad", Value: order{ID: "bad", Amount: math.Inf(1)}})
		var bad *kafkaproducer.BadInputError
		if !errors.As(err, &bad) || bad.Side != kafkaproducer.SideValue || kafkaproducer.Classify(err) != kafkaproducer.ClassBadInput {
			t.Fatalf("unserializable value: got %v, want a bad_input *BadInputError on the value", err)
		}

		got := c.ReadAll(t, topic, kafkatest.ReadCommitted, 20*time.Second)
		if len(got) != len(want) {
			t.Fatalf("read %d records, want %d (the bad one must not be written)", len(got), len(want))
		}
		for _, r := range got {
			var o order
			if err := json.Unmarshal(r.Value, &o); err != nil {
				t.Fatalf("record %q: %v", r.Value, err)
			}
			if w, ok := want[string(r.Key)]; !ok || w != o {
				t.Fatalf("key %q decoded to %+v, want %+v", r.Key, o, w)
			}
		}
	})
}
