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
type gate struct {
	maxRecords, maxBytes int64 // maxBytes 0: no byte limit

	records atomic.Int64 // admitted and not yet released
	bytes   atomic.Int64
	waiters atomic.Int32 // callers blocked in take

	mu   sync.Mutex
	wake chan struct{} // closed and replaced when room is freed

	closing   chan struct{} // closed by close: no more admissions, waiters give up
	closeOnce sync.Once
	drained   chan struct{} // closed once closing and no record is left
	drainOnce sync.Once
}

func newGate(maxRecords, maxBytes int64) *gate {
	return &gate{
		maxRecords: maxRecords,
		maxBytes:   maxBytes,
		wake:       make(chan struct{}),
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
	if g.tryTake(n, size) {
		return nil
	}
	// Our count, added and taken back, may have kept out a waiter
	// that looked meanwhile: let the waiters look again.
	g.wakeWaiters()
	if g.isShut() {
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
		// and tries again: no wake-up is owed.
		g.mu.Lock()
		if g.tryTake(n, size) {
			g.mu.Unlock()
			return nil
		}
		wake := g.wake
		g.mu.Unlock()
		if g.isShut() {
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

// tryTake admits the records if they fit and the gate is open. The
// caller wakes the waiters when it fails (see take).
func (g *gate) tryTake(n, size int64) bool {
	r := g.records.Add(n)
	b := g.bytes.Add(size)
	if r <= g.maxRecords && (g.maxBytes == 0 || b <= g.maxBytes) && !g.isShut() {
		return true
	}
	g.settle(n, size)
	return false
}

// release ends what take started for n records of size bytes in all,
// once their outcomes are reported.
func (g *gate) release(n, size int64) {
	g.settle(n, size)
	g.wakeWaiters()
}

// settle takes n records and size bytes off the count, and notes when a
// closing producer has none left.
func (g *gate) settle(n, size int64) {
	left := g.records.Add(-n)
	g.bytes.Add(-size)
	if left == 0 && g.isShut() {
		g.drainOnce.Do(func() { close(g.drained) })
	}
}

func (g *gate) wakeWaiters() {
	if g.waiters.Load() == 0 {
		return
	}
	g.mu.Lock()
	close(g.wake)
	g.wake = make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) isShut() bool {
	select {
	case <-g.closing:
		return true
	default:
		return false
	}
}

// close refuses new records, wakes the callers waiting for room, and
// returns a channel closed once every admitted record was released.
func (g *gate) close() <-chan struct{} {
	g.closeOnce.Do(func() { close(g.closing) })
	if g.records.Load() == 0 {
		g.drainOnce.Do(func() { close(g.drained) })
	}
	return g.drained
}
