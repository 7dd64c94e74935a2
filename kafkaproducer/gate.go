package kafkaproducer

import (
	"context"
	"sync"
	"sync/atomic"
)

// gate admits records into the producer while MaxBufferedRecords and
// MaxBufferedBytes allow, and counts them until their outcome is
// reported. kprod bounds the buffer itself, rather than letting franz-go's
// Produce block, because franz-go keeps the context it blocked on with the
// record and fails the record's whole batch when it ends: here the
// caller's context bounds only its own wait.
//
// The count is also what Close waits on: every admitted record leaves
// through release, after its callback returned.
//
// Senders add to in and franz-go's promise goroutine adds to out, each on
// a cache line of its own: what is buffered is in minus out. A counter
// both sides wrote would move its cache line between cores twice per
// record. For the same reason senders admit against a copy of out on
// their own line (seen), and read out itself only when the copy says the
// buffer is full.
type gate struct {
	maxRecords, maxBytes int64 // maxBytes 0: no byte limit

	_    cacheLinePad
	in   counts // admitted, ever (less admissions taken back)
	seen counts // a reading of out a sender took (see tryTake)
	_    cacheLinePad
	out  counts // released, ever
	_    cacheLinePad

	waiters atomic.Int32 // callers blocked in take

	mu sync.Mutex
	// wake is closed when room is freed, and made again by the next
	// caller to go to sleep: until then, releases find none to close.
	wake chan struct{}

	shut      atomic.Bool   // set by close: no more admissions
	closing   chan struct{} // closed by close: waiters give up
	closeOnce sync.Once
	drained   chan struct{} // closed once closing and no record is left
	drainOnce sync.Once
}

func newGate(maxRecords, maxBytes int64) *gate {
	return &gate{
		maxRecords: maxRecords,
		maxBytes:   maxBytes,
		closing:    make(chan struct{}),
		drained:    make(chan struct{}),
	}
}

// take admits n records of size bytes in all: at once if there is room,
// otherwise (block) once there is, or not at all. It fails with ctx's
// error if ctx ends first, ErrBufferFull when it may not block, and
// ErrClosed once the producer is closing. n and size must fit the limits
// (Producer checks).
func (g *gate) take(ctx context.Context, n, size int64, block bool) error {
	// While callers wait for room, a newcomer skips the fast path and
	// tries under mu, as the waiters do.
	if g.waiters.Load() == 0 {
		if g.tryTake(n, size) {
			return nil
		}
		// Our count, added and taken back, may have kept out a
		// waiter that looked meanwhile: let the waiters look again.
		g.wakeWaiters()
	}
	if g.shut.Load() {
		return ErrClosed
	}
	if !block {
		return ErrBufferFull
	}
	g.waiters.Add(1)
	defer g.waiters.Add(-1)
	for {
		// Under mu no other waiter tries at the same time, and a
		// caller on the fast path that our count kept out comes here
		// and tries again; a release wakes us under mu too, so it
		// cannot fall between our attempt and our wait: no wake-up is
		// owed.
		g.mu.Lock()
		if g.tryTake(n, size) {
			g.mu.Unlock()
			return nil
		}
		if g.wake == nil {
			g.wake = make(chan struct{})
		}
		wake := g.wake
		g.mu.Unlock()
		if g.shut.Load() {
			return ErrClosed
		}
		select {
		case <-wake:
		case <-g.closing:
			return ErrClosed
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// tryTake admits the records if they fit and the gate is open. A caller
// outside mu wakes the waiters when it fails (see take).
func (g *gate) tryTake(n, size int64) bool {
	in := g.in.records.Add(n)
	var inBytes int64
	if g.maxBytes > 0 {
		inBytes = g.in.bytes.Add(size)
	}
	fits := g.fits(in, inBytes, g.seen.records.Load(), g.seen.bytes.Load())
	if !fits {
		// The copy may be stale: decide on out itself, and keep
		// what was read for the next sender.
		outRecords, outBytes := g.out.records.Load(), g.out.bytes.Load()
		g.seen.records.Store(outRecords)
		g.seen.bytes.Store(outBytes)
		fits = g.fits(in, inBytes, outRecords, outBytes)
	}
	if fits && !g.shut.Load() {
		return true
	}
	// Taken back: not a release, so the in side undoes it.
	g.in.records.Add(-n)
	if g.maxBytes > 0 {
		g.in.bytes.Add(-size)
	}
	g.noteDrained()
	return false
}

// fits reports whether in records of inBytes bytes, admitted ever, fit
// the limits given out counts read at some point. out only grows, so an
// old reading underestimates the room, never overstates it.
func (g *gate) fits(in, inBytes, outRecords, outBytes int64) bool {
	if in-outRecords > g.maxRecords {
		return false
	}
	return g.maxBytes == 0 || inBytes-outBytes <= g.maxBytes
}

// release ends what take started for n records of size bytes in all,
// once their outcomes are reported, and wakes the waiters. A waiter that
// goes to sleep makes the wake channel (see take): the releases between
// a wake-up and the next sleep, one per record while a woken sender
// refills the buffer, find none to close and allocate nothing.
func (g *gate) release(n, size int64) {
	g.out.records.Add(n)
	if g.maxBytes > 0 {
		g.out.bytes.Add(size)
	}
	g.wakeWaiters()
	g.noteDrained()
}

// buffered is how many records are admitted and not yet released.
func (g *gate) buffered() int64 { return g.in.records.Load() - g.out.records.Load() }

// noteDrained closes drained once the gate is closing and nothing is
// left. Sequentially consistent atomics make it sound: an admission that
// Close's look missed sees shut after its add and is taken back here, and
// a release Close's look missed sees shut after its own add.
func (g *gate) noteDrained() {
	if g.shut.Load() && g.buffered() == 0 {
		g.drainOnce.Do(func() { close(g.drained) })
	}
}

func (g *gate) wakeWaiters() {
	if g.waiters.Load() == 0 {
		return
	}
	g.mu.Lock()
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
	g.mu.Unlock()
}

// close refuses new records, wakes the callers waiting for room, and
// returns a channel closed once every admitted record was released.
func (g *gate) close() <-chan struct{} {
	g.closeOnce.Do(func() {
		g.shut.Store(true)
		close(g.closing)
	})
	g.noteDrained()
	return g.drained
}

// counts is one side of the gate's tally.
type counts struct {
	records, bytes atomic.Int64
}

// cacheLinePad keeps the fields around it on separate cache lines.
type cacheLinePad struct{ _ [64]byte }
