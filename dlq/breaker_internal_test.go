package dlq

import "testing"

// TestClosedCountsReadyToTrip: the consecutive-failures rule, the ratio
// rule once MinRequests were made, a ratio above 1 turning that rule off,
// and a reset starting a new epoch with zero counts.
func TestClosedCountsReadyToTrip(t *testing.T) {
	b := BreakerConfig{ConsecutiveFailures: 3, FailureRatio: 0.5, MinRequests: 10}
	set := func(c *closedCounts, req, fail, cons int64) {
		c.requests.Store(req)
		c.failures.Store(fail)
		c.consecutive.Store(cons)
	}
	var c closedCounts
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
		set(&c, tc.req, tc.fail, tc.cons)
		b.FailureRatio = tc.ratio
		if got := c.readyToTrip(b); got != tc.want {
			t.Errorf("%s: readyToTrip = %v, want %v", tc.name, got, tc.want)
		}
	}
	e := c.epoch.Load()
	c.reset()
	if c.epoch.Load() != e+1 || c.requests.Load() != 0 || c.failures.Load() != 0 || c.consecutive.Load() != 0 {
		t.Fatalf("after reset: epoch %d (was %d), counts %d %d %d", c.epoch.Load(), e, c.requests.Load(), c.failures.Load(), c.consecutive.Load())
	}
}
