package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// load reads and checks every segment in the directory.
func (s *Spool) load() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("kprod: spool: read %s: %w", s.dir, err)
	}
	var ids []uint64
	for _, de := range ents {
		name := de.Name()
		switch {
		case s.opts.ReadOnly:
			if strings.HasSuffix(name, ".seg") {
				if id, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64); err == nil {
					ids = append(ids, id)
				}
			}
		case strings.HasSuffix(name, ".tmp"):
			_ = os.Remove(filepath.Join(s.dir, name))
		case strings.HasSuffix(name, ".pos"):
			// A progress file whose segment is gone (a crash inside
			// removeSegment) must not outlive it: segment numbers are
			// reused after a restart with an empty spool.
			if _, err := os.Stat(filepath.Join(s.dir, strings.TrimSuffix(name, ".pos")+".seg")); errors.Is(err, fs.ErrNotExist) {
				_ = os.Remove(filepath.Join(s.dir, name))
			}
		case strings.HasSuffix(name, ".seg"):
			id, err := strconv.ParseUint(strings.TrimSuffix(name, ".seg"), 10, 64)
			if err != nil {
				s.log.Warn("ignoring file with a segment suffix and a foreign name", zap.String("file", name))
				continue
			}
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if err := s.loadSegment(id); err != nil {
			return err
		}
	}
	return nil
}

// loadSegment checks segment id and repairs it: a torn tail is cut,
// damaged ranges (a damaged file header included) are quarantined and the
// segment rewritten with its intact frames, whose records are kept. With
// Options.ReadOnly it only reports.
func (s *Spool) loadSegment(id uint64) error {
	path := s.segPath(id)
	name := filepath.Base(path)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kprod: spool: read %s: %w", path, err)
	}
	if len(data) < fileHeaderSize && isPrefixOfHeader(data) {
		// Created but cut before its header was complete: nothing in it.
		s.recovery.TornTails++
		s.recovery.TornBytes += int64(len(data))
		return s.removeSeg(id)
	}
	res := scanSegment(data)
	// The progress offset counts only if the frame ending there is the
	// one it was written after (same frame CRC): a .pos left over from
	// before the segment was rewritten (or from a removed segment of the
	// same number) then points at other records, and is ignored, which
	// replays the segment from its start (duplicates, never losses).
	pos, posCRC := readPos(s.posPath(id))
	posFound := pos == fileHeaderSize
	for _, f := range res.frames {
		if int64(f.End) == pos && frameCRC(data[f.Off:f.End]) == posCRC {
			posFound = true
		}
	}
	if !posFound {
		pos = fileHeaderSize
	}
	rewrite := false
	for _, b := range res.bad {
		rewrite = true
		why := b.why
		if pos > fileHeaderSize && b.Off >= fileHeaderSize && int64(b.End) <= pos {
			why += " (before the replay position: already replayed)"
		}
		if err := s.quarantine(name, data[b.Off:b.End], int64(b.Off), why); err != nil {
			return err
		}
	}
	sg := &segment{id: id, size: int64(len(data)), topics: map[string]int64{}}
	var live [][]byte
	var entries []Entry
	for _, f := range res.frames {
		if int64(f.Off) < pos {
			continue // already replayed
		}
		e, err := decodeEntry(data[f.Off+frameHeader : f.End])
		if err != nil {
			rewrite = true
			if err := s.quarantine(name, data[f.Off:f.End], int64(f.Off), err.Error()); err != nil {
				return err
			}
			continue
		}
		live = append(live, data[f.Off:f.End])
		entries = append(entries, e)
	}
	if res.torn >= 0 {
		s.recovery.TornTails++
		s.recovery.TornBytes += int64(len(data) - res.torn)
		s.log.Warn("cut torn tail of spool segment", zap.String("segment", name), zap.Int("bytes", len(data)-res.torn))
		if !rewrite && !s.opts.ReadOnly {
			if err := truncateSync(path, int64(res.torn)); err != nil {
				return err
			}
			sg.size = int64(res.torn)
		}
	}
	if rewrite || res.torn >= 0 {
		s.recovery.Recovered += int64(len(entries))
	}
	if rewrite && !s.opts.ReadOnly && len(entries) > 0 {
		size, err := s.rewriteSegment(id, live)
		if err != nil {
			return err
		}
		sg.size, pos = size, fileHeaderSize
	}
	if len(entries) == 0 {
		// Empty, fully replayed or all damaged (now quarantined):
		// nothing to keep.
		return s.removeSeg(id)
	}
	sg.pos = pos
	sg.records = int64(len(entries))
	sg.first = entries[0].SpooledAt
	for i := range entries {
		sg.topics[entries[i].Topic]++
	}
	s.records.Add(sg.records)
	s.bytes.Add(sg.size)
	s.segs = append(s.segs, sg)
	return nil
}

// removeSeg removes segment id and its progress file (not when read-only).
func (s *Spool) removeSeg(id uint64) error {
	if s.opts.ReadOnly {
		return nil
	}
	return removeSegment(s.segPath(id), s.posPath(id))
}

// quarantine copies data, damaged bytes found at offset off of segment
// segName, to dir/quarantine (fsync'd, file and directory, before the
// caller drops them from the segment), reports them in Recovery and
// counts them in Stats. With Options.ReadOnly it only reports.
func (s *Spool) quarantine(segName string, data []byte, off int64, reason string) error {
	q := Quarantined{Segment: segName, Offset: off, Bytes: int64(len(data)), Reason: reason}
	if !s.opts.ReadOnly {
		qdir := filepath.Join(s.dir, "quarantine")
		if err := makeDirSync(qdir); err != nil {
			return fmt.Errorf("kprod: spool: quarantine: %w", err)
		}
		// The time keeps names unique when a segment number is reused.
		q.File = filepath.Join(qdir, fmt.Sprintf("%s.%d.%d.bad", segName, off, time.Now().UnixNano()))
		if err := writeFileSync(q.File, data); err != nil {
			return fmt.Errorf("kprod: spool: quarantine: %w", err)
		}
		if err := syncDir(qdir); err != nil {
			return err
		}
		s.log.Warn("quarantined damaged spool bytes", zap.String("segment", segName), zap.Int64("offset", off), zap.Int("bytes", len(data)), zap.String("reason", reason), zap.String("file", q.File))
	}
	s.mu.Lock()
	s.recovery.Quarantined = append(s.recovery.Quarantined, q)
	s.quarantinedRanges++
	s.quarantinedBytes += q.Bytes
	s.mu.Unlock()
	return nil
}
