package integration_test

import (
	"crypto/rand"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"
)

// TestDeadLetterAndSpoolThroughOutage drives package dlq through a real
// broker outage: a record the broker refuses (a partition that does not
// exist) lands on the dead-letter topic; records sent while the broker is
// down are spooled to disk, not lost; when the broker returns they are
// replayed to their topic, and every record ends up exactly where the
// dispositions said.
func TestDeadLetterAndSpoolThroughOutage(t *testing.T) {
	onRestartableBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := c.NewTopic(t, 3)
		dlt := topic + ".DLT"
		c.CreateTopics(t, 1, dlt)
		// The topic takes records up to 4 KiB; its dead-letter topic
		// keeps the broker's default, so a 16 KiB record is the
		// topic's to refuse and the dead-letter topic's to keep.
		limit := "4096"
		adm := kadm.NewClient(c.Client(t))
		if rs, err := adm.AlterTopicConfigs(ctxFor(t, 10*time.Second), []kadm.AlterConfig{{Name: "max.message.bytes", Value: &limit}}, topic); err != nil || rs[0].Err != nil {
			t.Fatalf("limit %s max.message.bytes: %v %v", topic, err, rs)
		}

		cfg := presets.LowLatency()
		cfg.Brokers = c.Brokers()
		cfg.RequestTimeout = time.Second
		cfg.DeliveryTimeout = 2 * time.Second
		kp, err := kafkaproducer.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var spooledEvents atomic.Int64
		d, err := dlq.New(kp, dlq.Config{
			SpoolDir: t.TempDir(),
			Logger:   zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)),
			Breaker: dlq.BreakerConfig{
				OpenTimeout:  500 * time.Millisecond,
				PingInterval: 200 * time.Millisecond,
				PingTimeout:  500 * time.Millisecond,
			},
			Replay: dlq.ReplayConfig{Interval: 200 * time.Millisecond},
			OnRecord: func(e dlq.Event) {
				if e.Disposition == dlq.Spooled {
					spooledEvents.Add(1)
				}
			},
		})
		if err != nil {
			t.Fatalf("dlq.New: %v", err)
		}
		ctx := ctxFor(t, 2*time.Minute)
		t.Cleanup(func() { _ = d.Close(ctxFor(t, 10*time.Second)) })

		var want []kafkaproducer.Record
		for i := range 5 {
			rec := testRecord(topic, i)
			res, err := d.Send(ctx, rec)
			if err != nil || res.Disposition != dlq.Delivered {
				t.Fatalf("healthy send %d: %v (%s)", i, err, res.Disposition)
			}
			want = append(want, rec)
		}

		// A record its topic refuses (above its max.message.bytes) is
		// dead-lettered; one refused at the call (a partition the topic
		// does not have) is returned to the caller, never routed.
		poison := testRecord(topic, 500)
		poison.Value = make([]byte, 16<<10)
		_, _ = rand.Read(poison.Value) // incompressible: it stays too large
		res, err := d.Send(ctx, poison)
		if err != nil || res.Disposition != dlq.DeadLettered {
			t.Fatalf("record above the topic's max.message.bytes: %v (%s), want dead-lettered", err, res.Disposition)
		}
		if res.DeadLetter == nil || res.DeadLetter.Record.Topic != dlt {
			t.Fatalf("dead letter went to %+v, want topic %q", res.DeadLetter, dlt)
		}
		if res, err := d.Send(ctx, testRecord(topic, 501).AtPartition(99)); !errors.Is(err, kafkaproducer.ErrBadPartition) || res.Disposition != dlq.Failed {
			t.Fatalf("record for a missing partition: %v (%s), want ErrBadPartition returned", err, res.Disposition)
		}

		if err := c.Stop(ctx); err != nil {
			t.Fatalf("stop broker: %v", err)
		}
		var outage []kafkaproducer.Record
		for i := range 20 {
			outage = append(outage, testRecord(topic, 100+i))
		}
		start := time.Now()
		for i, r := range d.SendBatch(ctx, outage) {
			if r.Err != nil || r.Disposition != dlq.Spooled {
				t.Fatalf("outage record %d: %v (%s), want spooled", i, r.Err, r.Disposition)
			}
		}
		if n := spooledEvents.Load(); n != int64(len(outage)) {
			t.Fatalf("OnRecord saw %d spooled records, want %d", n, len(outage))
		}
		st := d.Stats()
		t.Logf("outage: %d records spooled in %v, breaker %s", st.Spooled, time.Since(start).Round(time.Millisecond), st.Breaker)
		if st.SpoolRecords != int64(len(outage)) {
			t.Fatalf("spool holds %d records during the outage, want %d", st.SpoolRecords, len(outage))
		}

		if err := c.Restart(ctx); err != nil {
			t.Fatalf("restart broker: %v", err)
		}
		start = time.Now()
		for {
			st = d.Stats()
			if st.SpoolRecords == 0 && st.Replayed >= int64(len(outage)) {
				break
			}
			if ctx.Err() != nil || time.Since(start) > time.Minute {
				t.Fatalf("spool not replayed a minute after the broker came back: %+v", st)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("replayed %d records %v after the restart", st.Replayed, time.Since(start).Round(time.Millisecond))
		if err := d.Close(ctx); err != nil {
			t.Fatalf("close: %v", err)
		}

		// Every record is on its topic (a replayed record may appear twice
		// only if its first attempt was ambiguous; none was, the broker
		// was down).
		want = append(want, outage...)
		got := c.ReadAll(t, topic, kafkatest.ReadCommitted, 30*time.Second)
		seen := make(map[string]int)
		for _, r := range got {
			seen[string(r.Value)]++
		}
		for _, w := range want {
			if seen[string(w.Value)] != 1 {
				t.Fatalf("record %q is on the topic %d times, want once", w.Value, seen[string(w.Value)])
			}
		}
		if len(got) != len(want) {
			t.Fatalf("topic holds %d records, want %d", len(got), len(want))
		}
		dead := c.ReadAll(t, dlt, kafkatest.ReadCommitted, 30*time.Second)
		if len(dead) != 1 || string(dead[0].Value) != string(poison.Value) {
			t.Fatalf("dead-letter topic holds %d records, want the one poison record", len(dead))
		}
	})
}
