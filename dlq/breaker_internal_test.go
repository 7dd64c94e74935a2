package dlq

import (
	"context"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

// TestWindowReadyToTrip: the consecutive-failures rule, the ratio rule
// once MinRequests were made, and a ratio above 1 turning that rule off.
func TestWindowReadyToTrip(t *testing.T) {
	b := BreakerConfig{ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 10}
	for _, tc := range []struct {
		name            string
		req, fail, cons int64
		ratio           float64
		want            bool
	}{
		{"two in a row", 2, 2, 2, 0.5, false},
		{"three in a row", 3, 3, 3, 0.5, true},
		{"half of nine: too few sends", 9, 5, 1, 0.5, false},
		{"half of ten", 10, 5, 1, 0.5, true},
		{"under half of ten", 10, 4, 1, 0.5, false},
		{"ratio rule off", 100, 90, 1, 1.5, false},
		{"every send, ratio 1", 10, 10, 2, 1, true},
	} {
		var w window
		w.requests.Store(tc.req)
		w.failures.Store(tc.fail)
		w.consecutive.Store(tc.cons)
		b.FailureRatio = tc.ratio
		if got := w.readyToTrip(b); got != tc.want {
			t.Errorf("%s: readyToTrip = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestWindows: while the breaker is closed a new window starts every
// Interval; while it is open none does; a state change starts one at once
// and restarts the Interval from there.
func TestWindows(t *testing.T) {
	d := &Producer{windowCh: make(chan struct{}, 1), winDone: make(chan struct{})}
	d.cfg.Breaker.Interval = 50 * time.Millisecond
	d.window.Store(new(window))
	d.supCtx, d.supCancel = context.WithCancel(context.Background())
	go d.windows()
	defer func() { d.supCancel(); <-d.winDone }()

	first := d.window.Load()
	waitNew := func(old *window, what string) *window {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for d.window.Load() == old {
			if time.Now().After(deadline) {
				t.Fatalf("no new window %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return d.window.Load()
	}
	second := waitNew(first, "after an Interval while closed")

	d.state.Store(int32(gobreaker.StateOpen))
	d.newWindow() // what OnStateChange does
	third := d.window.Load()
	if third == second {
		t.Fatal("a state change did not start a new window")
	}
	time.Sleep(200 * time.Millisecond) // four Intervals
	if d.window.Load() != third {
		t.Fatal("a new window started while the breaker was open")
	}
	d.state.Store(int32(gobreaker.StateClosed))
	d.newWindow()
	waitNew(d.window.Load(), "after an Interval once closed again")
}
