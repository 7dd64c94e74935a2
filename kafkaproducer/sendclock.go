package kafkaproducer

import (
	"sync"
	"sync/atomic"
	"time"
)

// sendClock stamps records on the sending side with one monotonic clock
// read instead of time.Now's two (wall and monotonic): a record's send
// time (for Latency) is monotonic nanoseconds since the producer's epoch,
// and its timestamp is derived from that reading and an anchor, a
// time.Now taken at most reanchorEvery earlier. Measured here, time.Now
// costs about 50ns and the monotonic read about 27ns, on every record.
//
// Both clocks run at the same (NTP-slewed) rate, so the derived timestamp
// is time.Now's but for a stepped wall clock, which the next anchor, at
// most reanchorEvery later, takes in; franz-go truncates timestamps to
// milliseconds, Kafka's resolution, anyway. One more difference: the
// monotonic clock stops while the machine is suspended, so for up to
// reanchorEvery of monotonic time after a resume the timestamps lag the
// wall clock by the length of the suspend. franz-go measures the delivery
// timeout from a record's timestamp: after a suspend longer than
// DeliveryTimeout those records can fail as timed out (reported like any
// timeout, not lost).
//
// coarse is cheaper still, for records whose send time only dates a
// failure: no clock read at all, but the reading a ticker goroutine takes
// every coarseEvery while such records go out fast enough (see coarse).
type sendClock struct {
	epoch  time.Time // with its monotonic reading
	anchor atomic.Pointer[clockAnchor]

	// reads counts one in coarseSample of the coarse clock's readings,
	// chosen from the producer's send sequence: its measure of their
	// rate, for an atomic add per coarseSample records.
	reads atomic.Int64
	// tick is the coarse clock's latest reading, nil while its ticker
	// is not running.
	tick atomic.Pointer[clockAnchor]
	// holdUntil: the ticker does not start again before this monotonic
	// time (nanoseconds since epoch), so a rate that hovers around the
	// thresholds does not start and stop it all the time.
	holdUntil atomic.Int64
	// The thresholds, in readings per coarseEvery (init sets the
	// defaults; tests lower them).
	startRate, stopRate int64

	tickMu  sync.Mutex
	ticking bool          // a ticker goroutine runs
	starts  int           // tickers started, for tests
	stopped bool          // stop was called: no ticker starts again
	quit    chan struct{} // closed by stop
	exited  sync.WaitGroup
}

// clockAnchor pairs a wall time with the monotonic reading taken with it.
type clockAnchor struct {
	mono  int64     // nanoseconds since epoch
	wall  time.Time // monotonic reading stripped: Add keeps to the wall clock
	reads int64     // sendClock.reads by then, for the rate
}

// reanchorEvery bounds how long a stepped wall clock goes unnoticed.
const reanchorEvery = int64(100 * time.Millisecond)

// The coarse clock. Its ticker reads the clock every coarseEvery, and
// runs only while coarse readings are taken at coarseStartRate or more per
// tick: a tick costs the process 10-25µs of CPU here (a timer wakeup,
// measured with and without other work), and each record stamped from it
// saves about 30ns, so it pays from about 800 records a tick. The rate is
// judged over at least coarseWindow: the first 10-100ms of a burst still
// read the clock. The ticker stops once a window of coarseWindow has
// averaged below coarseStopRate, and does not start again for coarseHold.
const (
	coarseEvery     = time.Millisecond
	coarseStartRate = 1000
	coarseStopRate  = 500
	coarseWindow    = int64(10 * coarseEvery)
	coarseHold      = int64(100 * time.Millisecond)
	// reads counts one reading in coarseSample.
	coarseSampleBits = 6
	coarseSample     = 1 << coarseSampleBits
)

func (c *sendClock) init(epoch time.Time) {
	c.epoch = epoch
	c.anchor.Store(&clockAnchor{wall: epoch.Round(0)})
	c.startRate, c.stopRate = coarseStartRate, coarseStopRate
	c.quit = make(chan struct{})
}

// since returns the monotonic nanoseconds since the epoch.
func (c *sendClock) since() int64 { return int64(time.Since(c.epoch)) }

// now returns the monotonic nanoseconds since the epoch and the wall time
// they correspond to.
func (c *sendClock) now() (int64, time.Time) {
	m := int64(time.Since(c.epoch))
	a := c.anchor.Load()
	if d := m - a.mono; uint64(d) < uint64(reanchorEvery) {
		return m, a.wall.Add(time.Duration(d))
	}
	return c.reanchor()
}

// reanchor takes a new anchor. Concurrent senders may each take one; any
// of them is good.
func (c *sendClock) reanchor() (int64, time.Time) {
	now := time.Now()
	wall := now.Round(0)
	m := int64(now.Sub(c.epoch))
	c.anchor.Store(&clockAnchor{mono: m, wall: wall, reads: c.reads.Load()})
	return m, wall
}

// coarse is now without a clock read, for a record whose send time is
// needed only to date a failure (a SendAsyncErr record on a producer
// without hooks: no Latency is reported for its success); seq is the
// record's place in the producer's send sequence. While such records go
// out fast enough it returns the latest reading of the ticker, at most
// coarseEvery old plus however long the ticker waits for a CPU (Kafka
// timestamps are milliseconds anyway); otherwise it reads the clock, and
// starts the ticker when their rate since the anchor calls for it.
// Measured here, the clock read is about 6% of the CPU a record costs at
// millions of records a second.
func (c *sendClock) coarse(seq int64) (int64, time.Time) {
	// Sample by a hash of seq, so that a sender alternating send styles
	// in a fixed pattern is still counted about one in coarseSample.
	if uint64(seq)*0x9e3779b97f4a7c15>>(64-coarseSampleBits) == 0 {
		c.reads.Add(1)
	}
	if a := c.tick.Load(); a != nil {
		return a.mono, a.wall
	}
	m, ts := c.now()
	if a := c.anchor.Load(); m-a.mono >= coarseWindow && m >= c.holdUntil.Load() &&
		(c.reads.Load()-a.reads)*coarseSample*int64(coarseEvery) >= c.startRate*(m-a.mono) {
		c.startTicker()
	}
	return m, ts
}

// startTicker starts the coarse clock's ticker unless it runs, is held
// off, or the producer has stopped it for good.
func (c *sendClock) startTicker() {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	now := time.Now()
	if c.ticking || c.stopped || int64(now.Sub(c.epoch)) < c.holdUntil.Load() {
		return
	}
	c.ticking = true
	c.starts++
	c.setTick(now)
	c.exited.Add(1)
	go c.runTicker(now, c.reads.Load())
}

func (c *sendClock) setTick(now time.Time) {
	c.tick.Store(&clockAnchor{mono: int64(now.Sub(c.epoch)), wall: now.Round(0)})
}

// runTicker renews tick every coarseEvery until stop, or until a window
// of at least coarseWindow, begun at from with reads at n, averages below
// stopRate readings a tick. A sender that read tick just before it is
// cleared uses a reading one tick old, as it would have anyway.
func (c *sendClock) runTicker(from time.Time, n int64) {
	defer c.exited.Done()
	t := time.NewTicker(coarseEvery)
	defer t.Stop()
	for {
		select {
		case <-c.quit:
			c.tickMu.Lock()
			c.tick.Store(nil)
			c.ticking = false
			c.tickMu.Unlock()
			return
		case <-t.C:
		}
		now := time.Now()
		if d := int64(now.Sub(from)); d >= coarseWindow {
			r := c.reads.Load()
			if (r-n)*coarseSample*int64(coarseEvery) < c.stopRate*d {
				c.tickMu.Lock()
				c.tick.Store(nil)
				c.ticking = false
				c.holdUntil.Store(int64(now.Sub(c.epoch)) + coarseHold)
				c.tickMu.Unlock()
				return
			}
			from, n = now, r
		}
		c.setTick(now)
	}
}

// stop ends the coarse clock's ticker for good and waits for it to exit;
// coarse then reads the clock.
func (c *sendClock) stop() {
	c.tickMu.Lock()
	if !c.stopped {
		c.stopped = true
		close(c.quit)
	}
	c.tickMu.Unlock()
	c.exited.Wait()
}
