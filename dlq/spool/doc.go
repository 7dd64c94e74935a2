// Package spool is kprod's durable on-disk spool: an append-only log of
// records in segment files, each record framed with a magic number, its
// length and a CRC-32C, written by one goroutine that batches concurrent
// appends into one write and one fsync (group commit). Append returns
// only once the record is on disk.
//
//	s, err := spool.Open("/var/lib/app/spool", spool.Options{MaxBytes: 1 << 30})
//	err = s.Append(ctx, spool.Entry{Topic: "orders", Value: v})
//	st, err := s.Drain(ctx, 1000, func(ctx context.Context, es []spool.Entry) []error { ... })
//	s.Close()
//
// Files are created 0600 in a 0700 directory; a group- or world-writable
// directory is refused, and a lock file keeps two processes apart. Open
// checks every segment: a torn tail (a write cut by a crash) is cut; bytes
// that fail their checksum, a damaged segment header and foreign files
// are moved to dir/quarantine and reported by Recovery; every intact
// frame is kept, wherever the damage is (the scanner resynchronises on
// the next frame that checks out).
// Options.MaxBytes bounds the disk used: Append fails with ErrFull beyond
// it.
//
// Options.ReadOnly opens a spool to look only (no lock, no repair, no
// writes), for inspection tools.
//
// Nothing leaves the spool unsent without being counted: damaged ranges
// (moved to dir/quarantine by Open or Drain) and records a send rejects
// for good (moved to dir/rejected, see ErrReject) are counted in Stats
// and DrainStats, and SetAside reports what both directories hold,
// earlier runs included.
//
// Drain hands records out in the order they were appended and removes
// each only after its send succeeded; progress is written after every
// chunk, so a crash during a drain resends at most one chunk. Rewriting a
// segment (after damage, or to keep a failed replay's tail) is ordered so
// a crash at any step loses nothing: at worst the segment is replayed
// from its start.
//
// A Spool is safe for concurrent use. The format is documented in
// format.go and docs/deadletter.md.
package spool
