package spool

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// DrainStats reports one Drain.
type DrainStats struct {
	Sent int64 // records acknowledged and removed
	Kept int64 // records still in the spool
	// Quarantined counts the damaged ranges (each at least part of one
	// record) Drain found and moved to dir/quarantine; QuarantinedBytes
	// their bytes. Recovery lists them.
	Quarantined      int64
	QuarantinedBytes int64
	Rejected         int64 // records send rejected for good (ErrReject), moved to dir/rejected
}

// errNoResult stands for the result of an entry send did not answer for.
var errNoResult = errors.New("kprod: spool drain: send returned no result")

// Drain replays the spool in order: it reads sealed segments oldest first,
// hands send up to chunk entries at a time (in spool order), and removes
// an entry only after send reported nil for it. send returns one error
// per entry. On the first chunk with a failure, Drain keeps the failed
// entries and everything after them, in order, and returns the first
// failure. Drain writes its progress after every fully sent chunk, so a
// crash resends at most one chunk. Damaged bytes it meets are moved to
// dir/quarantine and counted (DrainStats.Quarantined). Only one Drain or
// Purge runs at a time.
func (s *Spool) Drain(ctx context.Context, chunk int, send func(context.Context, []Entry) []error) (DrainStats, error) {
	var st DrainStats
	if s.opts.ReadOnly {
		return st, ErrReadOnly
	}
	if chunk <= 0 {
		chunk = 1000
	}
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if err := s.rotate(ctx); err != nil {
		return st, err
	}
	s.mu.Lock()
	sealed := append([]*segment(nil), s.segs[:len(s.segs)-1]...)
	s.mu.Unlock()
	defer func() { st.Kept = s.records.Load() }()
	for _, sg := range sealed {
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("kprod: spool drain: %w", err)
		}
		if err := s.drainSegment(ctx, sg, chunk, send, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

// drainFrame is one intact frame of a segment being drained.
type drainFrame struct {
	raw []byte // the whole frame
	end int64  // offset in the segment file just after it
	e   Entry
}

// drainSegment sends sealed segment sg chunk by chunk and removes it once
// every record left it; it stops at the first chunk with a failure.
func (s *Spool) drainSegment(ctx context.Context, sg *segment, chunk int, send func(context.Context, []Entry) []error, st *DrainStats) error {
	frames, err := s.readForDrain(sg, st)
	if err != nil {
		return err
	}
	for i := 0; i < len(frames); i += chunk {
		part := frames[i:min(i+chunk, len(frames))]
		if err := s.sendChunk(ctx, sg, part, frames[i+len(part):], send, st); err != nil {
			return err
		}
	}
	_, err = s.dropSegment(sg)
	return err
}

// readForDrain reads sg's records not yet replayed. Damage found (bad
// framing, a frame that does not decode, an incomplete frame at the end
// of a sealed segment) is quarantined and the segment rewritten with the
// intact frames before any is sent.
func (s *Spool) readForDrain(sg *segment, st *DrainStats) ([]drainFrame, error) {
	path := s.segPath(sg.id)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kprod: spool drain: %w", err)
	}
	if sg.pos > int64(len(data)) || sg.pos < fileHeaderSize {
		sg.pos = fileHeaderSize
	}
	res := scanFrames(data, int(sg.pos), "")
	if res.torn >= 0 {
		// A sealed segment is complete: an unfinished frame is damage.
		res.bad = append(res.bad, badSpan{span{res.torn, len(data)}, "incomplete frame at the end of a sealed segment"})
	}
	name := filepath.Base(path)
	for _, b := range res.bad {
		if err := s.quarantine(name, data[b.Off:b.End], int64(b.Off), b.why+" (found while replaying)"); err != nil {
			return nil, err
		}
		st.Quarantined++
		st.QuarantinedBytes += int64(b.End - b.Off)
	}
	damaged := len(res.bad) > 0
	frames := make([]drainFrame, 0, len(res.frames))
	for _, f := range res.frames {
		raw := data[f.Off:f.End]
		e, err := decodeEntry(raw[frameHeader:])
		if err != nil {
			if err := s.quarantine(name, raw, int64(f.Off), err.Error()+" (found while replaying)"); err != nil {
				return nil, err
			}
			st.Quarantined++
			st.QuarantinedBytes += int64(len(raw))
			damaged = true
			continue
		}
		frames = append(frames, drainFrame{raw: raw, end: int64(f.End), e: e})
	}
	if damaged {
		// Drop the damaged bytes (now quarantined) and recount.
		if err := s.replaceSegment(sg, frames); err != nil {
			return nil, err
		}
	}
	return frames, nil
}

// sendChunk hands part to send and settles each entry: sent and rejected
// ones leave the spool and the progress file moves past them. If any
// failed, the failed entries and rest are kept, in order, and the first
// failure returned.
func (s *Spool) sendChunk(ctx context.Context, sg *segment, part, rest []drainFrame, send func(context.Context, []Entry) []error, st *DrainStats) error {
	entries := make([]Entry, len(part))
	for i := range part {
		entries[i] = part[i].e
	}
	errs := send(ctx, entries)
	var firstErr error
	var kept []drainFrame
	var rejected [][]byte
	gone := map[string]int64{} // per topic
	for i, f := range part {
		err := errNoResult
		if i < len(errs) {
			err = errs[i]
		}
		switch {
		case err == nil:
		case errors.Is(err, ErrReject):
			rejected = append(rejected, f.raw)
			s.log.Warn("spool entry rejected for good", zap.String("topic", f.e.Topic), zap.String("record_id", hex.EncodeToString(f.e.ID[:])), zap.Error(err))
		default:
			if firstErr == nil {
				firstErr = err
			}
			kept = append(kept, f)
			continue
		}
		gone[f.e.Topic]++
	}
	if len(rejected) > 0 {
		if err := s.reject(sg, part[0].end, rejected); err != nil {
			return err
		}
		n := int64(len(rejected))
		st.Rejected += n
		s.mu.Lock()
		s.rejected += n
		s.mu.Unlock()
	}
	s.forget(sg, gone)
	st.Sent += int64(len(part) - len(kept) - len(rejected))
	if firstErr != nil {
		// Keep the failures and the rest of the segment, in order.
		if err := s.replaceSegment(sg, append(kept, rest...)); err != nil {
			return err
		}
		return fmt.Errorf("kprod: spool drain: %d of %d records in a chunk failed: %w", len(kept), len(part), firstErr)
	}
	last := part[len(part)-1]
	s.mu.Lock()
	sg.pos = last.end
	if len(rest) > 0 {
		sg.first = rest[0].e.SpooledAt
	}
	s.mu.Unlock()
	if err := writePos(s.posPath(sg.id), last.end, frameCRC(last.raw)); err != nil {
		return fmt.Errorf("kprod: spool drain: %w", err)
	}
	return nil
}

// reject writes frames to dir/rejected/<segment>.<offset>.<unix-ns>.rej, a
// file in segment format, fsync'd (file and directory) before the frames
// leave the spool.
func (s *Spool) reject(sg *segment, off int64, frames [][]byte) error {
	rdir := filepath.Join(s.dir, "rejected")
	if err := makeDirSync(rdir); err != nil {
		return fmt.Errorf("kprod: spool: reject: %w", err)
	}
	buf := fileHeaderBytes()
	for _, f := range frames {
		buf = append(buf, f...)
	}
	name := filepath.Join(rdir, fmt.Sprintf("%020d.%d.%d.rej", sg.id, off, time.Now().UnixNano()))
	if err := writeFileSync(name, buf); err != nil {
		return fmt.Errorf("kprod: spool: reject: %w", err)
	}
	s.log.Warn("spool entries moved to the rejected directory", zap.Int("records", len(frames)), zap.String("file", name))
	return syncDir(rdir)
}

// replaceSegment rewrites sealed segment sg to hold exactly frames, and
// recounts its records from them; frames' end offsets are updated to the
// new file.
func (s *Spool) replaceSegment(sg *segment, frames []drainFrame) error {
	raws := make([][]byte, len(frames))
	for i := range frames {
		raws[i] = frames[i].raw
	}
	size, err := s.rewriteSegment(sg.id, raws)
	if err != nil {
		return err
	}
	topics := make(map[string]int64)
	end := int64(fileHeaderSize)
	for i := range frames {
		end += int64(len(frames[i].raw))
		frames[i].end = end
		topics[frames[i].e.Topic]++
	}
	n := int64(len(frames))
	s.mu.Lock()
	s.records.Add(n - sg.records)
	s.bytes.Add(size - sg.size)
	sg.size, sg.pos, sg.records, sg.topics = size, fileHeaderSize, n, topics
	if n > 0 {
		sg.first = frames[0].e.SpooledAt
	}
	s.mu.Unlock()
	return nil
}

// forget accounts records that left sg (sent or rejected), per topic.
func (s *Spool) forget(sg *segment, gone map[string]int64) {
	var n int64
	s.mu.Lock()
	for t, k := range gone {
		sg.topics[t] -= k
		if sg.topics[t] <= 0 {
			delete(sg.topics, t)
		}
		n += k
	}
	sg.records -= n
	s.mu.Unlock()
	s.records.Add(-n)
}
