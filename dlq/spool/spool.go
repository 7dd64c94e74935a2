package spool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
	// would block every later record. DrainStats.Rejected, Stats.Rejected
	// and SetAside count such records.
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

// Stats describes the spool's content, and what this Spool set aside
// since Open.
type Stats struct {
	Records  int64            // records waiting for replay
	Bytes    int64            // bytes of segment files on disk
	Segments int              // segment files
	Oldest   time.Time        // SpooledAt of the oldest waiting record; zero if none
	PerTopic map[string]int64 // waiting records per destination topic

	// QuarantinedRanges and QuarantinedBytes count the damaged byte
	// ranges moved to dir/quarantine since Open, by Open's recovery
	// (Recovery().Quarantined lists them) or later by Drain. A range
	// holds at least part of one record, or a damaged segment header.
	// With Options.ReadOnly they count what a writable Open would
	// move.
	QuarantinedRanges int64
	QuarantinedBytes  int64
	// Rejected counts records Drain moved to dir/rejected since Open
	// because send rejected them for good (ErrReject).
	Rejected int64
}

// Quarantined describes bytes moved out of a segment because they failed
// their checksum or did not decode.
type Quarantined struct {
	Segment string // the segment file they came from
	File    string // where they are now; empty with Options.ReadOnly
	Offset  int64  // byte offset in the segment
	Bytes   int64
	Reason  string // what was wrong with the bytes at Offset
}

// RecoveryReport says what Open found wrong and repaired, and the damage
// Drain found later.
type RecoveryReport struct {
	TornTails   int   // segments that ended in an incomplete write (cut)
	TornBytes   int64 // bytes cut from those tails
	Quarantined []Quarantined
	// Recovered counts the intact records Open kept from segments it
	// repaired (cut a torn tail from or quarantined bytes of).
	Recovered int64
}

// SetAside describes what dir/quarantine and dir/rejected hold, put there
// by this Spool or any earlier one: bytes and records that left the spool
// without being sent, waiting for an operator. Moving the files out of
// the spool directory once dealt with clears it.
type SetAside struct {
	QuarantineFiles int   // files in dir/quarantine (one per damaged range)
	QuarantineBytes int64 // their bytes
	RejectedFiles   int   // files in dir/rejected (segment format)
	RejectedRecords int64 // intact records in them
	RejectedBytes   int64 // their bytes
}

// Empty reports whether nothing is set aside.
func (a SetAside) Empty() bool { return a.QuarantineFiles == 0 && a.RejectedFiles == 0 }

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

	mu       sync.Mutex // guards segs and their fields, recovery and the set-aside counts
	segs     []*segment // oldest first; the last is the active one
	recovery RecoveryReport
	// Set aside since Open, for Stats.
	quarantinedRanges, quarantinedBytes, rejected int64

	records atomic.Int64
	bytes   atomic.Int64

	// testCrash, set only by tests before use, is called at each step of
	// a multi-step file update; an error stops the update there.
	testCrash func(step string) error

	// owned by the writer goroutine
	active *os.File
	buf    []byte
}

type segment struct {
	id      uint64
	size    int64            // bytes in the file
	pos     int64            // offset of the first record not yet replayed
	records int64            // records not yet replayed
	topics  map[string]int64 // records not yet replayed, per topic
	first   time.Time
}

func (s *Spool) segPath(id uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%020d.seg", id)) }
func (s *Spool) posPath(id uint64) string { return filepath.Join(s.dir, fmt.Sprintf("%020d.pos", id)) }

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
		dir:  dir,
		opts: opts,
		log:  opts.Logger.Named("spool").With(zap.String("dir", dir)),
		lock: lock,
		reqs: make(chan *writeReq, 1024),
		stop: make(chan struct{}),
		done: make(chan struct{}),
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

// Recovery reports what Open repaired, and damage Drain found later.
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
	st := Stats{
		Records:           s.records.Load(),
		Bytes:             s.bytes.Load(),
		Segments:          len(s.segs),
		PerTopic:          map[string]int64{},
		QuarantinedRanges: s.quarantinedRanges,
		QuarantinedBytes:  s.quarantinedBytes,
		Rejected:          s.rejected,
	}
	for _, sg := range s.segs {
		if sg.records > 0 && st.Oldest.IsZero() {
			st.Oldest = sg.first
		}
		for t, n := range sg.topics {
			if n > 0 {
				st.PerTopic[t] += n
			}
		}
	}
	return st
}

// SetAside reads dir/quarantine and dir/rejected: what this Spool and
// earlier ones set aside there. A rejected file that does not scan clean
// is counted with the intact records it holds.
func (s *Spool) SetAside() (SetAside, error) {
	var a SetAside
	q, err := readDirFiles(filepath.Join(s.dir, "quarantine"), ".bad")
	if err != nil {
		return a, err
	}
	for _, f := range q {
		a.QuarantineFiles++
		a.QuarantineBytes += f.size
	}
	r, err := readDirFiles(filepath.Join(s.dir, "rejected"), ".rej")
	if err != nil {
		return a, err
	}
	for _, f := range r {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return a, fmt.Errorf("kprod: spool: %w", err)
		}
		a.RejectedFiles++
		a.RejectedBytes += int64(len(data))
		a.RejectedRecords += int64(len(scanSegment(data).frames))
	}
	return a, nil
}

type dirFile struct {
	path string
	size int64
}

// readDirFiles lists the regular files named *suffix in dir; a missing
// dir holds none.
func readDirFiles(dir, suffix string) ([]dirFile, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kprod: spool: %w", err)
	}
	var out []dirFile
	for _, de := range ents {
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), suffix) {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			return nil, fmt.Errorf("kprod: spool: %w", err)
		}
		out = append(out, dirFile{filepath.Join(dir, de.Name()), fi.Size()})
	}
	return out, nil
}

// Entries calls fn for every waiting record in spool order, without
// removing anything, until fn returns false. It is for inspection tools;
// it reads sealed and active segments as they are on disk. It skips
// damaged bytes without moving them (Open reported those; Drain
// quarantines what it finds).
func (s *Spool) Entries(fn func(Entry) bool) error {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	type at struct {
		id  uint64
		pos int64
	}
	s.mu.Lock()
	segs := make([]at, len(s.segs))
	for i, sg := range s.segs {
		segs[i] = at{sg.id, sg.pos}
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
		for _, f := range scanFrames(data, int(sg.pos), "").frames {
			e, err := decodeEntry(data[f.Off+frameHeader : f.End])
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
		k, err := s.dropSegment(sg)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// dropSegment removes sealed segment sg and its progress file, and returns
// how many records it still held (they leave the counts).
func (s *Spool) dropSegment(sg *segment) (int64, error) {
	if err := removeSegment(s.segPath(sg.id), s.posPath(sg.id)); err != nil {
		return 0, err
	}
	s.mu.Lock()
	for i, x := range s.segs {
		if x == sg {
			s.segs = append(s.segs[:i], s.segs[i+1:]...)
			break
		}
	}
	n := sg.records
	sg.records, sg.topics = 0, nil
	s.mu.Unlock()
	s.records.Add(-n)
	s.bytes.Add(-sg.size)
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
