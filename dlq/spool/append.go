package spool

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
)

// writeReq is one Append (or a rotation) handed to the writer goroutine.
type writeReq struct {
	buf    []byte
	n      int64
	topics []string
	first  time.Time
	rotate bool
	done   chan error
}

// startSegment creates a new, empty active segment.
func (s *Spool) startSegment() error {
	var id uint64 = 1
	s.mu.Lock()
	if n := len(s.segs); n > 0 {
		id = s.segs[n-1].id + 1
	}
	s.mu.Unlock()
	path := s.segPath(id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("kprod: spool: create segment: %w", err)
	}
	if _, err := f.Write(fileHeaderBytes()); err != nil {
		f.Close()
		return fmt.Errorf("kprod: spool: create segment: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("kprod: spool: create segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	if s.active != nil {
		s.active.Close()
	}
	s.active = f
	s.mu.Lock()
	s.segs = append(s.segs, &segment{id: id, size: fileHeaderSize, pos: fileHeaderSize, topics: map[string]int64{}})
	s.mu.Unlock()
	s.bytes.Add(fileHeaderSize)
	return nil
}

// Append writes entries durably: it returns nil only once they are written
// and fsync'd. Concurrent calls share one write and one fsync (group
// commit). ctx bounds only the wait to hand the entries to the writer;
// once handed over, Append waits for the commit, so its answer is always
// the truth. Entries of one call are committed together or not at all.
func (s *Spool) Append(ctx context.Context, entries ...Entry) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if len(entries) == 0 {
		return nil
	}
	r := &writeReq{done: make(chan error, 1), n: int64(len(entries)), topics: make([]string, len(entries))}
	now := time.Now()
	for i := range entries {
		e := &entries[i]
		if e.Topic == "" {
			return fmt.Errorf("kprod: spool append: entry %d has no topic", i)
		}
		if e.SpooledAt.IsZero() {
			e.SpooledAt = now
		}
		if i == 0 {
			r.first = e.SpooledAt
		}
		start := len(r.buf)
		r.buf = appendFrame(r.buf, e)
		if len(r.buf)-start-frameHeader > MaxEntryBytes {
			return fmt.Errorf("kprod: spool append: entry %d is %d bytes, above the %d limit", i, len(r.buf)-start, MaxEntryBytes)
		}
		r.topics[i] = e.Topic
	}
	if err := s.submit(ctx, r); err != nil {
		return err
	}
	return <-r.done
}

func (s *Spool) submit(ctx context.Context, r *writeReq) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kprod: spool append: %w", ctx.Err())
	}
}

// run is the single writer: it takes every request waiting, writes them
// with one write and one fsync, and answers each.
func (s *Spool) run() {
	defer close(s.done)
	batch := make([]*writeReq, 0, 256)
	for {
		var r *writeReq
		select {
		case r = <-s.reqs:
		case <-s.stop:
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*writeReq{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], r)
		size := len(r.buf)
	more:
		for size < maxCommitBytes {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
				size += len(r.buf)
			default:
				break more
			}
		}
		s.commit(batch)
	}
}

func (s *Spool) activeSeg() *segment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.segs[len(s.segs)-1]
}

func (s *Spool) commit(batch []*writeReq) {
	for len(batch) > 0 {
		// Rotation requests seal the active segment if it holds data.
		if batch[0].rotate {
			var err error
			if sg := s.activeSeg(); sg.size > fileHeaderSize {
				err = s.startSegment()
			}
			batch[0].done <- err
			batch = batch[1:]
			continue
		}
		sg := s.activeSeg()
		if sg.size >= s.opts.SegmentBytes {
			if err := s.startSegment(); err != nil {
				for _, r := range batch {
					r.done <- err
				}
				return
			}
			sg = s.activeSeg()
		}
		// Take appends up to the next rotation request or segment end.
		s.buf = s.buf[:0]

		var accepted []*writeReq
		used := s.bytes.Load()
		for len(batch) > 0 && !batch[0].rotate {
			r := batch[0]
			if len(accepted) > 0 && sg.size+int64(len(s.buf)+len(r.buf)) > s.opts.SegmentBytes {
				break
			}
			batch = batch[1:]

			if used+int64(len(s.buf)+len(r.buf)) > s.opts.MaxBytes {
				r.done <- fmt.Errorf("%w: %d records (%d bytes) would exceed the %d-byte limit with %d bytes used in %s", ErrFull, r.n, len(r.buf), s.opts.MaxBytes, used+int64(len(s.buf)), s.dir)
				continue
			}
			s.buf = append(s.buf, r.buf...)
			accepted = append(accepted, r)
		}
		if len(accepted) == 0 {
			continue
		}
		err := s.writeSync(sg)
		if err == nil {
			s.account(sg, accepted)
		}
		for _, r := range accepted {
			r.done <- err
		}
	}
}

func (s *Spool) writeSync(sg *segment) error {
	n, err := s.active.Write(s.buf)
	if err == nil {
		err = s.active.Sync()
	}
	if err != nil {
		// Cut what may have been written so a later append does not
		// follow a partial frame; the entries count as not written.
		if n > 0 {
			_ = s.active.Truncate(sg.size)
		}
		s.log.Error("spool write failed", zap.Error(err))
		return fmt.Errorf("kprod: spool write %s: %w", s.dir, err)
	}
	return nil
}

func (s *Spool) account(sg *segment, rs []*writeReq) {
	var n int64
	s.mu.Lock()
	for _, r := range rs {
		for _, t := range r.topics {
			sg.topics[t]++
		}
		if sg.records == 0 && n == 0 {
			sg.first = r.first
		}
		n += r.n
	}
	sg.size += int64(len(s.buf))
	sg.records += n
	s.mu.Unlock()
	s.records.Add(n)
	s.bytes.Add(int64(len(s.buf)))
}

// rotate seals the active segment so Drain can read it.
func (s *Spool) rotate(ctx context.Context) error {
	r := &writeReq{rotate: true, done: make(chan error, 1)}
	if err := s.submit(ctx, r); err != nil {
		return err
	}
	return <-r.done
}
