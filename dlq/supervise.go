package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

// supervise is the supervisor goroutine: pings, breaker state events,
// automatic replay. Close stops it first.
func (d *Producer) supervise() {
	defer close(d.supDone)
	var pingC <-chan time.Time
	if d.cb != nil && d.cfg.Breaker.PingInterval > 0 {
		t := time.NewTicker(d.cfg.Breaker.PingInterval)
		defer t.Stop()
		pingC = t.C
	}
	replay := time.NewTicker(d.cfg.Replay.Interval)
	defer replay.Stop()
	last := gobreaker.StateClosed
	for {
		select {
		case <-d.supCtx.Done():
			return
		case <-d.stateCh:
			s := gobreaker.State(d.state.Load())
			if s != last {
				last = s
				d.log.Info("circuit breaker state", zap.Stringer("state", s))
				d.cfg.Observer.OnBreakerState(s.String())
			}
			if s == gobreaker.StateClosed {
				d.autoReplay()
			}
		case <-pingC:
			d.ping()
		case <-replay.C:
			d.autoReplay()
		}
	}
}

var errUnreachable = errors.New("kprod: cluster unreachable (ping failed)")

// ping checks that a broker answers. A failed ping counts as a failed
// send; a successful one counts only as a half-open probe (it does not
// vouch for produce).
func (d *Producer) ping() {
	state := d.cb.State() // also moves open to half-open when due
	if state == gobreaker.StateOpen {
		return
	}
	ctx, cancel := context.WithTimeout(d.supCtx, d.cfg.Breaker.PingTimeout)
	err := d.p.Ping(ctx)
	cancel()
	if d.supCtx.Err() != nil || (err == nil && state == gobreaker.StateClosed) {
		return
	}
	done, aerr := d.cb.Allow()
	if aerr != nil {
		return
	}
	if err != nil {
		done(fmt.Errorf("%w: %w", errUnreachable, err))
		return
	}
	done(nil)
}

func (d *Producer) autoReplay() {
	if d.cfg.Replay.Disable || d.sp == nil || d.sp.Len() == 0 {
		return
	}
	if d.cb != nil && d.cb.State() != gobreaker.StateClosed {
		return
	}
	st, err := d.Replay(d.supCtx)
	switch {
	case errors.Is(err, ErrSetAside):
		d.log.Error("replay set records aside; they need an operator", zap.Int64("replayed", st.Sent), zap.Int64("rejected", st.Rejected), zap.Int64("quarantined", st.Quarantined), zap.Error(err))
	case err != nil && d.supCtx.Err() == nil:
		d.log.Warn("replay stopped; will retry", zap.Int64("replayed", st.Sent), zap.Int64("left", st.Kept), zap.Error(err))
	case st.Sent > 0:
		d.log.Info("replayed spooled records", zap.Int64("replayed", st.Sent), zap.Int64("left", st.Kept))
	}
}

// Close stops accepting records, then in this order: flushes the wrapped
// producer while ctx allows; waits until every accepted record has ended
// somewhere (delivered, dead-lettered, spooled or failed) and its
// callback ran, including records whose Send returned Pending; stops the
// router; and closes the wrapped producer, the dead-letter producer and
// the spool. If ctx ends first, the wrapped producer is closed early:
// records it had not delivered fail with kafkaproducer.ErrClosed and are
// routed (spooled) like any failure, so the dead-letter path stays open
// for every record still being routed. Close waits for a Replay in
// progress, and later Replays return kafkaproducer.ErrClosed. It is
// idempotent; later calls return the first result.
func (d *Producer) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx) })
	return d.closeErr
}

func (d *Producer) close(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// 1. Stop accepting records and stop the supervisor (pings, replay).
	d.closeMu.Lock()
	d.closed = true
	d.closeMu.Unlock()
	d.supCancel()
	<-d.supDone
	// No Replay may run against the producers or spool closed below.
	d.replayMu.Lock()
	d.replayClosed = true
	d.replayMu.Unlock()

	var errs []error
	pClosed := false
	closeP := func() {
		pClosed = true
		if err := d.p.Close(ctx); err != nil {
			// Undelivered records reached their callbacks with
			// ErrClosed and were routed (spooled) like any failure.
			if ce, ok := errors.AsType[*kafkaproducer.CloseError](err); ok {
				d.log.Warn("closing: records not delivered were routed to the spool", zap.Int("records", len(ce.Undelivered)))
			} else {
				errs = append(errs, err)
			}
		}
	}
	// 2. Flush, then 3. wait for every accepted record to be routed.
	// Whatever is still outstanding when ctx ends is cut off by closing
	// the producer, which fails it into the routing path.
	idle := make(chan struct{})
	go func() { // owned here: close always waits for it below
		d.inflight.Wait()
		close(idle)
	}()
	if err := d.p.Flush(ctx); err != nil {
		closeP()
	}
	select {
	case <-idle:
	case <-ctx.Done():
		if !pClosed {
			closeP()
		}
		<-idle
	}
	// 4. Stop the router; every record has been reported.
	close(d.stopRt)
	<-d.rtDone
	// 5. Close the producers and the spool.
	if !pClosed {
		closeP()
	}
	if d.dlt != d.p {
		if err := d.dlt.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("kprod: close dead-letter producer: %w", err))
		}
	}
	if d.sp != nil {
		st := d.sp.Stats()
		d.cfg.Observer.OnSpoolSize(st.Records, st.Bytes)
		if err := d.sp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
