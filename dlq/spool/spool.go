package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults for Options.
const (
	DefaultMaxBytes     = 1 << 30
	DefaultSegmentBytes = 16 << 20
	// maxCommitBytes bounds what one group commit writes before it syncs.
	maxCommitBytes = 8 << 20
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrFull is returned by Append when the entries would take the
	// spool past Options.MaxBytes; nothing of that call is written.
	ErrFull = errors.New("kprod: spool full")
	// ErrClosed is returned by calls after Close.
	ErrClosed = errors.New("kprod: spool closed")
	// ErrLocked is returned by Open when another process (or another
	// Spool in this process) holds the directory.
	ErrLocked = errors.New("kprod: spool directory in use")
	// ErrUnsafeDir is returned by Open for a directory that group or
	// others may write to.
	ErrUnsafeDir = errors.New("kprod: spool directory is group- or world-writable")
	// ErrReject, wrapped in an error a Drain send function returns for an
	// entry, says the entry can never be sent (a record too large, a
	// topic that is gone): Drain moves it to dir/rejected, in spool
	// format, instead of keeping it at the head of the spool where it
	// would block every later record.
	ErrReject = errors.New("kprod: spool entry rejected")
	// ErrReadOnly is returned by Append, Drain and Purge on a spool
	// opened with Options.ReadOnly.
	ErrReadOnly = errors.New("kprod: spool opened read-only")
)

// Options configures a Spool. The zero value is usable.
type Options struct {
	// MaxBytes bounds the spool's files on disk. Zero means 1 GiB. An
	// Append beyond it fails with ErrFull.
	MaxBytes int64
	// SegmentBytes is the size at which the spool starts a new segment
	// file. Zero means 16 MiB. Replay reads one segment at a time into
	// memory, so this also bounds replay's memory.
	SegmentBytes int64
	// Logger receives recovery and error events. Zero means zap.NewNop().
	Logger *zap.Logger
	// ReadOnly opens the spool to look at it only, for inspection tools:
	// no lock is taken and nothing on disk changes (no repair, no new
	// segment). Recovery reports what a writable Open would repair
	// (Quarantined.File is then empty); Len, Stats and Entries show the
	// good records. Append, Drain and Purge fail with ErrReadOnly. The
	// owning process may be writing meanwhile: what it shows is a
	// snapshot as of Open (Entries reads the files again).
	ReadOnly bool
}

// Stats describes the spool's content.
type Stats struct {
	Records  int64            // records waiting for replay
	Bytes    int64            // bytes of segment files on disk
	Segments int              // segment files
	Oldest   time.Time        // SpooledAt of the oldest waiting record; zero if none
	PerTopic map[string]int64 // waiting records per destination topic
}

// Quarantined describes bytes moved out of a segment because they failed
// their checksum or did not decode.
type Quarantined struct {
	Segment string // the segment file they came from
	File    string // where they are now
	Offset  int64  // byte offset in the segment
	Bytes   int64
	Reason  string
}

// RecoveryReport says what Open found wrong and repaired.
type RecoveryReport struct {
	TornTails   int   // segments that ended in an incomplete write (cut)
	TornBytes   int64 // bytes cut from those tails
	Quarantined []Quarantined
}

// Spool is an append-only, checksummed, fsync'd log of records. It is
// safe for concurrent use.
type Spool struct {
	dir  string
	opts Options
	log  *zap.Logger
	lock *os.File

	reqs     chan *writeReq
	stop     chan struct{}
	done     chan struct{}
	closeMu  sync.RWMutex
	closed   bool
	closeErr error
	closeOne sync.Once

	drainMu sync.Mutex // one Drain or Purge at a time

	mu       sync.Mutex // guards segs, perTopic, recovery
	segs     []*segment // oldest first; the last is the active one
	perTopic map[string]int64
	recovery RecoveryReport
	records  atomic.Int64
	bytes    atomic.Int64

	// testCrash, set only by tests before use, is called at each step of
	// a multi-step file update; an error stops the update there.
	testCrash func(step string) error

	// owned by the writer goroutine
	active *os.File
	buf    []byte
}

type segment struct {
	id      uint64
	size    int64 // bytes in the file
	pos     int64 // offset of the first record not yet replayed
	records int64 // records not yet replayed
	first   time.Time
}

func (s *Spool) segPath(id uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%020d.seg", id)) }
func (s *Spool) posPath(id uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%020d.pos", id)) }

type writeReq struct {
	buf    []byte
	n      int64
	topics []string
	first  time.Time
	rotate bool
	done   chan error
}

// Open opens (creating it 0700 if needed) the spool in dir, checks and
// repairs its segments, and starts its writer. A directory writable by
// group or others is refused (ErrUnsafeDir). Damaged bytes are moved to
// dir/quarantine and reported by Recovery; good records are kept.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.MaxBytes < 0 || opts.SegmentBytes < 0 {
		return nil, fmt.Errorf("kprod: spool options: MaxBytes %d and SegmentBytes %d must not be negative", opts.MaxBytes, opts.SegmentBytes)
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.ReadOnly {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("kprod: spool: %w", err)
		}
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	var lock *os.File
	if !opts.ReadOnly {
		var err error
		if lock, err = lockDir(dir); err != nil {
			return nil, err
		}
	}
	s := &Spool{
		dir:      dir,
		opts:     opts,
		log:      opts.Logger.Named("spool").With(zap.String("dir", dir)),
		lock:     lock,
		reqs:     make(chan *writeReq, 1024),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		perTopic: map[string]int64{},
	}
	if err := s.load(); err != nil {
		s.unlock()
		return nil, err
	}
	if opts.ReadOnly {
		close(s.done) // no writer
		return s, nil
	}
	if err := s.startSegment(); err != nil {
		s.unlock()
		return nil, err
	}
	go s.run()
	return s, nil
}

func (s *Spool) unlock() error {
	if s.lock == nil {
		return nil // read-only
	}
	return unlockDir(s.lock)
}

// removeSeg removes segment id and its progress file (not when read-only).
func (s *Spool) removeSeg(id uint64) error {
	if s.opts.ReadOnly {
		return nil
	}
	return removeSegment(s.segPath(id), s.posPath(id))
}

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("kprod: spool: create %s: %w", dir, err)
		}
		fi, err = os.Stat(dir)
	}
	if err != nil {
		return fmt.Errorf("kprod: spool: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("kprod: spool: %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%w: %s has mode %v; run chmod 700 on it", ErrUnsafeDir, dir, fi.Mode().Perm())
	}
	return nil
}

// Dir returns the spool's directory.
func (s *Spool) Dir() string { return s.dir }

// Recovery reports what Open repaired.
func (s *Spool) Recovery() RecoveryReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recovery
	r.Quarantined = append([]Quarantined(nil), r.Quarantined...)
	return r
}

// Len returns the number of records waiting for replay. It is cheap.
func (s *Spool) Len() int64 { return s.records.Load() }

// Stats returns the spool's content summary.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Records: s.records.Load(), Bytes: s.bytes.Load(), Segments: len(s.segs), PerTopic: make(map[string]int64, len(s.perTopic))}
	for t, n := range s.perTopic {
		if n > 0 {
			st.PerTopic[t] = n
		}
	}
	for _, sg := range s.segs {
		if sg.records > 0 {
			st.Oldest = sg.first
			break
		}
	}
	return st
}

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

func (s *Spool) quarantine(segName string, data []byte, off int64, reason string) error {
	qdir := filepath.Join(s.dir, "quarantine")
	if !s.opts.ReadOnly {
		if err := os.MkdirAll(qdir, 0o700); err != nil {
			return fmt.Errorf("kprod: spool: quarantine: %w", err)
		}
	}
	if s.opts.ReadOnly {
		s.recovery.Quarantined = append(s.recovery.Quarantined, Quarantined{Segment: segName, Offset: off, Bytes: int64(len(data)), Reason: reason})
		return nil
	}
	// The time keeps names unique when a segment number is reused.
	name := filepath.Join(qdir, fmt.Sprintf("%s.%d.%d.bad", segName, off, time.Now().UnixNano()))
	if err := writeFileSync(name, data); err != nil {
		return fmt.Errorf("kprod: spool: quarantine: %w", err)
	}
	s.recovery.Quarantined = append(s.recovery.Quarantined, Quarantined{Segment: segName, File: name, Offset: off, Bytes: int64(len(data)), Reason: reason})
	s.log.Warn("quarantined damaged spool bytes", zap.String("segment", segName), zap.Int64("offset", off), zap.Int("bytes", len(data)), zap.String("reason", reason), zap.String("file", name))
	return nil
}

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
	if !validFileHeader(data) {
		if err := s.quarantine(name, data, 0, "not a kprod spool segment (bad file header)"); err != nil {
			return err
		}
		return s.removeSeg(id)
	}
	pos, posCRC := readPos(s.posPath(id))
	body := data[fileHeaderSize:]
	res := scanFrames(body)
	rewrite := false
	for _, b := range res.bad {
		rewrite = true
		if err := s.quarantine(name, body[b.Off:b.End], int64(fileHeaderSize+b.Off), "checksum mismatch or bad framing"); err != nil {
			return err
		}
	}
	sg := &segment{id: id, size: int64(len(data))}
	var live [][]byte
	var entries []Entry
	// The progress offset counts only if the frame ending there is the
	// one it was written after (same frame CRC): a .pos left over from
	// before the segment was rewritten (or from a removed segment of the
	// same number) then points at other records, and is ignored, which
	// replays the segment from its start (duplicates, never losses).
	posFound := pos == fileHeaderSize
	for _, f := range res.frames {
		if end := int64(fileHeaderSize + f.End); end == pos && frameCRC(body[f.Off:f.End]) == posCRC {
			posFound = true
		}
	}
	for _, f := range res.frames {
		if posFound && int64(fileHeaderSize+f.Off) < pos {
			continue // already replayed
		}
		e, err := decodeEntry(body[f.Off+frameHeader : f.End])
		if err != nil {
			rewrite = true
			if err := s.quarantine(name, body[f.Off:f.End], int64(fileHeaderSize+f.Off), err.Error()); err != nil {
				return err
			}
			continue
		}
		live = append(live, body[f.Off:f.End])
		entries = append(entries, e)
	}
	if res.torn >= 0 {
		s.recovery.TornTails++
		s.recovery.TornBytes += int64(len(body) - res.torn)
		s.log.Warn("cut torn tail of spool segment", zap.String("segment", name), zap.Int("bytes", len(body)-res.torn))
		if !rewrite && !s.opts.ReadOnly {
			if err := truncateSync(path, int64(fileHeaderSize+res.torn)); err != nil {
				return err
			}
			sg.size = int64(fileHeaderSize + res.torn)
		}
	}
	if s.opts.ReadOnly {
		rewrite = false // the file stays as it is, and so does pos
	}
	if rewrite {
		size, err := s.rewriteSegment(id, live)
		if err != nil {
			return err
		}
		sg.size, pos = size, fileHeaderSize
	}
	if !posFound || rewrite {
		pos = fileHeaderSize
	}
	if len(entries) == 0 {
		// Empty or fully replayed: nothing to keep.
		return s.removeSeg(id)
	}
	sg.pos = pos
	sg.records = int64(len(entries))
	if len(entries) > 0 {
		sg.first = entries[0].SpooledAt
	}
	for i := range entries {
		s.perTopic[entries[i].Topic]++
	}
	s.records.Add(sg.records)
	s.bytes.Add(sg.size)
	s.segs = append(s.segs, sg)
	return nil
}

func isPrefixOfHeader(b []byte) bool {
	h := fileHeaderBytes()
	return string(h[:len(b)]) == string(b)
}

// rewriteSegment atomically replaces segment id with a header and frames.
//
// Crash safety: the progress file (.pos) is an offset into the old file,
// so it must never apply to the new, shorter one. The steps are:
//
//  1. write and fsync id.seg.tmp (a crash leaves a .tmp that Open deletes);
//  2. remove id.pos and fsync the directory (a crash now replays the old
//     segment from its start: duplicates, never a loss);
//  3. rename the .tmp over id.seg and fsync the directory.
//
// Independently, a .pos names the CRC of the frame it follows and Open
// ignores one that does not match, so even a reordered directory update
// cannot skip records of the rewritten file.
func (s *Spool) rewriteSegment(id uint64, frames [][]byte) (int64, error) {
	buf := fileHeaderBytes()
	for _, f := range frames {
		buf = append(buf, f...)
	}
	path := s.segPath(id)
	tmp := path + ".tmp"
	if err := writeFileSync(tmp, buf); err != nil {
		return 0, fmt.Errorf("kprod: spool: rewrite %s: %w", path, err)
	}
	if err := s.crashPoint("rewrite:tmp-written"); err != nil {
		return 0, err
	}
	if err := os.Remove(s.posPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("kprod: spool: rewrite %s: %w", path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return 0, err
	}
	if err := s.crashPoint("rewrite:pos-removed"); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("kprod: spool: rewrite %s: %w", path, err)
	}
	if err := syncDir(s.dir); err != nil {
		return 0, err
	}
	return int64(len(buf)), nil
}

// crashPoint lets tests stop a multi-step file update at a named step, as
// a crash would, and look at the directory. It is nil outside tests.
func (s *Spool) crashPoint(step string) error {
	if s.testCrash == nil {
		return nil
	}
	return s.testCrash(step)
}

// removeSegment removes a segment and then its progress file. A crash in
// between leaves a .pos without a segment, which Open deletes.
func removeSegment(path, pos string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kprod: spool: remove %s: %w", path, err)
	}
	if err := os.Remove(pos); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kprod: spool: remove %s: %w", pos, err)
	}
	return syncDir(filepath.Dir(path))
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("kprod: spool: truncate %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("kprod: spool: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("kprod: spool: truncate %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("kprod: spool: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("kprod: spool: sync %s: %w", dir, err)
	}
	return nil
}

// pos files: offset:u64 frameCRC:u32 crc32c:u32 (of the first 12 bytes).
// offset is the end of the last replayed frame and frameCRC that frame's
// own CRC, so a .pos only counts for the file it was written for. Anything
// else (missing, short, another format) reads as "from the start".
func readPos(path string) (int64, uint32) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) != 16 {
		return fileHeaderSize, 0
	}
	if crc32c(b[:12]) != beU32(b[12:]) {
		return fileHeaderSize, 0
	}
	return int64(beU64(b[:8])), beU32(b[8:12])
}

func writePos(path string, off int64, frameCRC uint32) error {
	b := make([]byte, 16)
	putU64(b, uint64(off))
	putU32(b[8:], frameCRC)
	putU32(b[12:], crc32c(b[:12]))
	return writeFileSync(path, b)
}

// frameCRC is the CRC stored in a frame's header.
func frameCRC(frame []byte) uint32 { return beU32(frame[8:12]) }

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
	s.segs = append(s.segs, &segment{id: id, size: fileHeaderSize, pos: fileHeaderSize})
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
			s.perTopic[t]++
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

// DrainStats reports one Drain.
type DrainStats struct {
	Sent        int64 // records acknowledged and removed
	Kept        int64 // records still in the spool
	Quarantined int64 // records found damaged during the drain
	Rejected    int64 // records send rejected for good (ErrReject), moved to dir/rejected
}

// Drain replays the spool in order: it reads sealed segments oldest first,
// hands send up to chunk entries at a time (in spool order), and removes
// an entry only after send reported nil for it. send returns one error
// per entry. On the first chunk with a failure, Drain keeps the failed
// entries and everything after them, in order, and returns the first
// failure. Drain writes its progress after every fully sent chunk, so a
// crash resends at most one chunk. Only one Drain or Purge runs at a time.
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

func (s *Spool) drainSegment(ctx context.Context, sg *segment, chunk int, send func(context.Context, []Entry) []error, st *DrainStats) error {
	path := s.segPath(sg.id)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("kprod: spool drain: %w", err)
	}
	if sg.pos > int64(len(data)) || sg.pos < fileHeaderSize {
		sg.pos = fileHeaderSize
	}
	base := int(sg.pos)
	res := scanFrames(data[base:])
	type fr struct {
		raw []byte
		end int
		e   Entry
	}
	var frames []fr
	damaged := false
	s.mu.Lock()
	for _, b := range res.bad {
		damaged = true
		if err := s.quarantine(filepath.Base(path), data[base+b.Off:base+b.End], int64(base+b.Off), "checksum mismatch or bad framing (found while replaying)"); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	for _, f := range res.frames {
		raw := data[base+f.Off : base+f.End]
		e, err := decodeEntry(raw[frameHeader:])
		if err != nil {
			damaged = true
			st.Quarantined++
			if err := s.quarantine(filepath.Base(path), raw, int64(base+f.Off), err.Error()); err != nil {
				s.mu.Unlock()
				return err
			}
			continue
		}
		frames = append(frames, fr{raw: raw, end: base + f.End, e: e})
	}
	s.mu.Unlock()
	if damaged {
		// Drop the damaged bytes (now quarantined) and recount.
		raws := make([][]byte, len(frames))
		for i := range frames {
			raws[i] = frames[i].raw
		}
		if err := s.replaceSegment(sg, raws, func() {
			lost := sg.records - int64(len(frames))
			sg.records = int64(len(frames))
			s.records.Add(-lost)
		}); err != nil {
			return err
		}
		return s.drainSegment(ctx, sg, chunk, send, st)
	}
	entries := make([]Entry, 0, chunk)
	for i := 0; i < len(frames); i += chunk {
		part := frames[i:min(i+chunk, len(frames))]
		entries = entries[:0]
		for _, f := range part {
			entries = append(entries, f.e)
		}
		errs := send(ctx, entries)
		var firstErr error
		var kept, rejected [][]byte
		sent := map[string]int64{}
		for j, f := range part {
			e := errors.New("kprod: spool drain: send returned no result")
			if j < len(errs) {
				e = errs[j]
			}
			if e != nil && errors.Is(e, ErrReject) {
				rejected = append(rejected, f.raw)
				sent[f.e.Topic]++
				s.log.Warn("spool entry rejected for good", zap.String("topic", f.e.Topic), zap.Error(e))
				continue
			}
			if e != nil {
				if firstErr == nil {
					firstErr = e
				}
				kept = append(kept, f.raw)
				continue
			}
			sent[f.e.Topic]++
		}
		if len(rejected) > 0 {
			if err := s.reject(sg, part[0].end, rejected); err != nil {
				return err
			}
			st.Rejected += int64(len(rejected))
		}
		s.forget(sg, sent)
		st.Sent += int64(len(part) - len(kept) - len(rejected))
		if firstErr != nil {
			// Keep the failures and the rest of the segment, in order.
			failed := len(kept)
			for _, f := range frames[i+len(part):] {
				kept = append(kept, f.raw)
			}
			if err := s.replaceSegment(sg, kept, nil); err != nil {
				return err
			}
			return fmt.Errorf("kprod: spool drain: %d of %d records in a chunk failed: %w", failed, len(part), firstErr)
		}
		sg.pos = int64(part[len(part)-1].end)
		if err := writePos(s.posPath(sg.id), sg.pos, frameCRC(part[len(part)-1].raw)); err != nil {
			return fmt.Errorf("kprod: spool drain: %w", err)
		}
		if i+chunk < len(frames) {
			s.mu.Lock()
			sg.first = frames[i+chunk].e.SpooledAt
			s.mu.Unlock()
		}
	}
	// Every record sent: drop the segment.
	if err := removeSegment(path, s.posPath(sg.id)); err != nil {
		return err
	}
	s.mu.Lock()
	for i, x := range s.segs {
		if x == sg {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	s.mu.Unlock()
	s.bytes.Add(-sg.size)
	return nil
}

// reject writes frames to dir/rejected/<segment>.<offset>.rej, a file in
// segment format, fsync'd before the frames leave the spool.
func (s *Spool) reject(sg *segment, off int, frames [][]byte) error {
	rdir := filepath.Join(s.dir, "rejected")
	if err := os.MkdirAll(rdir, 0o700); err != nil {
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
	return syncDir(rdir)
}

// replaceSegment rewrites sealed segment sg to hold exactly frames.
func (s *Spool) replaceSegment(sg *segment, frames [][]byte, update func()) error {
	size, err := s.rewriteSegment(sg.id, frames)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bytes.Add(size - sg.size)
	sg.size, sg.pos = size, fileHeaderSize
	if len(frames) > 0 {
		if e, err := decodeEntry(frames[0][frameHeader:]); err == nil {
			sg.first = e.SpooledAt
		}
	}
	if update != nil {
		update()
	}
	return nil
}

// forget accounts records sent from sg.
func (s *Spool) forget(sg *segment, sent map[string]int64) {
	var n int64
	s.mu.Lock()
	for t, k := range sent {
		s.perTopic[t] -= k
		if s.perTopic[t] <= 0 {
			delete(s.perTopic, t)
		}
		n += k
	}
	sg.records -= n
	s.mu.Unlock()
	s.records.Add(-n)
}

// Entries calls fn for every waiting record in spool order, without
// removing anything, until fn returns false. It is for inspection tools;
// it reads sealed and active segments as they are on disk.
func (s *Spool) Entries(fn func(Entry) bool) error {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	s.mu.Lock()
	segs := make([]segment, len(s.segs))
	for i, sg := range s.segs {
		segs[i] = *sg
	}
	s.mu.Unlock()
	for _, sg := range segs {
		data, err := os.ReadFile(s.segPath(sg.id))
		if err != nil {
			return fmt.Errorf("kprod: spool read: %w", err)
		}
		if sg.pos > int64(len(data)) || sg.pos < fileHeaderSize {
			sg.pos = fileHeaderSize
		}
		body := data[sg.pos:]
		for _, f := range scanFrames(body).frames {
			e, err := decodeEntry(body[f.Off+frameHeader : f.End])
			if err != nil {
				continue
			}
			if !fn(e) {
				return nil
			}
		}
	}
	return nil
}

// Purge deletes every waiting record and returns how many there were.
func (s *Spool) Purge(ctx context.Context) (int64, error) {
	if s.opts.ReadOnly {
		return 0, ErrReadOnly
	}
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if err := s.rotate(ctx); err != nil {
		return 0, err
	}
	s.mu.Lock()
	sealed := append([]*segment(nil), s.segs[:len(s.segs)-1]...)
	s.mu.Unlock()
	var n int64
	for _, sg := range sealed {
		if err := removeSegment(s.segPath(sg.id), s.posPath(sg.id)); err != nil {
			return n, err
		}
		s.mu.Lock()
		for i, x := range s.segs {
			if x == sg {
				s.segs = append(s.segs[:i], s.segs[i+1:]...)
				break
			}
		}
		n += sg.records
		sg.records = 0
		s.mu.Unlock()
		s.bytes.Add(-sg.size)
	}
	s.mu.Lock()
	clear(s.perTopic)
	s.mu.Unlock()
	s.records.Add(-n)
	return n, nil
}

// Close waits for pending appends, closes the files and releases the
// directory. It is idempotent; later calls return the first result.
func (s *Spool) Close() error {
	s.closeOne.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		<-s.done
		var errs []error
		if s.active != nil {
			errs = append(errs, s.active.Close())
		}
		errs = append(errs, s.unlock())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
