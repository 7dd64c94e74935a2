package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

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

// makeDirSync creates dir (0700) if it is missing, and then fsyncs its
// parent so the new entry survives a crash.
func makeDirSync(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}
