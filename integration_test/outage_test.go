package integration_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"
)

// TestCloseDuringOutage stops the broker, sends records that cannot be
// delivered, and closes with a deadline: Close must return within it
// with every such record in a *CloseError (each also reported to its
// callback), and the records written before the outage must still be
// there when the broker comes back.
func TestCloseDuringOutage(t *testing.T) {
	onRestartableBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := c.NewTopic(t, 3)
		cfg := presets.Reliable()
		cfg.RetryBackoff = kafkaproducer.Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond}
		p := c.Producer(t, cfg)
		ctx := ctxFor(t, 2*time.Minute)

		var before []kafkaproducer.Record
		for i := range 10 {
			before = append(before, testRecord(topic, i))
		}
		if err := p.SendBatch(ctx, before).FirstErr(); err != nil {
			t.Fatalf("send before the outage: %v", err)
		}
		if err := c.Stop(ctx); err != nil {
			t.Fatalf("stop broker: %v", err)
		}

		const stranded = 25
		var callbacks, closedInCallback atomic.Int64
		for i := range stranded {
			rec := testRecord(topic, 100+i)
			if err := p.SendAsync(ctx, rec, func(r kafkaproducer.Result) {
				callbacks.Add(1)
				if r.Err != nil && r.Class() == kafkaproducer.ClassClosed {
					closedInCallback.Add(1)
				}
			}); err != nil {
				t.Fatalf("send during the outage: %v", err)
			}
		}

		const deadline = 2 * time.Second
		cctx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		err := p.Close(cctx)
		cancel()
		took := time.Since(start)
		if took > deadline+5*time.Second {
			t.Fatalf("Close took %v with a %v deadline", took, deadline)
		}
		var ce *kafkaproducer.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("Close during an outage: %v, want a *CloseError", err)
		}
		if len(ce.Undelivered) != stranded {
			t.Fatalf("CloseError has %d undelivered records, want %d", len(ce.Undelivered), stranded)
		}
		for _, r := range ce.Undelivered {
			if r.Err == nil || !errors.Is(r.Err, kafkaproducer.ErrClosed) {
				t.Fatalf("undelivered record %q: error %v, want one wrapping ErrClosed", r.Record.Value, r.Err)
			}
		}
		if n := callbacks.Load(); n != stranded {
			t.Fatalf("%d callbacks ran, want %d", n, stranded)
		}
		if n := closedInCallback.Load(); n != stranded {
			t.Fatalf("%d callbacks saw ClassClosed, want %d", n, stranded)
		}
		if _, err := p.Send(ctx, testRecord(topic, 999)); !errors.Is(err, kafkaproducer.ErrClosed) {
			t.Fatalf("send after Close: %v, want ErrClosed", err)
		}
		t.Logf("Close returned %d undelivered records in %v", len(ce.Undelivered), took.Round(time.Millisecond))

		if err := c.Restart(ctx); err != nil {
			t.Fatalf("restart broker: %v", err)
		}
		checkRecords(t, c.ReadAll(t, topic, kafkatest.ReadCommitted, 30*time.Second), before)
	})
}

// TestPausedBroker freezes the broker: a Send with a deadline fails with
// a timeout-class error (not a hang, not a refusal), and once the broker
// resumes the same producer delivers again.
func TestPausedBroker(t *testing.T) {
	onRestartableBackends(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := c.NewTopic(t, 1)
		p := c.Producer(t, presets.LowLatency())
		ctx := ctxFor(t, 2*time.Minute)
		if _, err := p.Send(ctx, testRecord(topic, 0)); err != nil {
			t.Fatalf("send before the pause: %v", err)
		}
		if err := c.Pause(ctx); err != nil {
			t.Fatalf("pause: %v", err)
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		start := time.Now()
		_, err := p.Send(sctx, testRecord(topic, 1))
		cancel()
		took := time.Since(start)
		if err == nil {
			t.Fatal("send to a paused broker succeeded")
		}
		class := kafkaproducer.Classify(err)
		if class != kafkaproducer.ClassTimeout && class != kafkaproducer.ClassCanceled {
			t.Fatalf("send to a paused broker: class %s (%v), want timeout", class, err)
		}
		if took > 10*time.Second {
			t.Fatalf("send with a 1s deadline took %v", took)
		}
		if err := c.Unpause(ctx); err != nil {
			t.Fatalf("unpause: %v", err)
		}
		res, err := p.Send(ctx, testRecord(topic, 2))
		if err != nil {
			t.Fatalf("send after unpause: %v", err)
		}
		got := c.ReadAll(t, topic, kafkatest.ReadCommitted, 30*time.Second)
		// Record 1's outcome was ambiguous (it may have been written when
		// the broker woke up); records 0 and 2 must be there, in order.
		var seen []string
		for _, r := range got {
			seen = append(seen, string(r.Headers[0].Value))
		}
		if len(seen) < 2 || seen[0] != "0" || seen[len(seen)-1] != "2" {
			t.Fatalf("read seq %v, want 0 first and 2 last (offset %d)", seen, res.Offset)
		}
		t.Logf("paused send failed in %v with class %s", took.Round(time.Millisecond), class)
	})
}
