package spool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func entry(topic string, i int) Entry {
	e := Entry{
		Topic:         topic,
		OriginalTopic: topic,
		Key:           fmt.Appendf(nil, "k%d", i%7),
		Value:         fmt.Appendf(nil, "value-%06d", i),
		Headers:       []kgo.RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}},
		Timestamp:     time.UnixMilli(1_700_000_000_000 + int64(i)),
		Class:         "timeout",
		Err:           "kprod: delivery timed out",
		Attempts:      3,
	}
	e.ID[0], e.ID[1] = byte(i>>8), byte(i)
	return e
}

func open(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// all reads every waiting entry's value.
func all(t *testing.T, s *Spool) []string {
	t.Helper()
	var out []string
	if err := s.Entries(func(e Entry) bool { out = append(out, string(e.Value)); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTripAndReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s := open(t, dir, Options{SegmentBytes: 4096})
	ctx := ctxT(t)
	var want []Entry
	for i := range 300 {
		e := entry([]string{"a", "b"}[i%2], i)
		if i == 5 {
			e.Key, e.Value, e.Timestamp, e.Headers = nil, nil, time.Time{}, nil
		}
		if i == 6 {
			e.Partition, e.PartitionSet = 2, true
			e.Key = []byte{}
		}
		want = append(want, e)
	}
	for i := 0; i < len(want); i += 10 {
		if err := s.Append(ctx, want[i:i+10]...); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.Records != 300 || st.PerTopic["a"] != 150 || st.PerTopic["b"] != 150 || st.Segments < 3 || st.Oldest.IsZero() {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Append(ctx, want[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	for _, path := range mustGlob(t, dir, "*.seg") {
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", path, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v", fi.Mode().Perm())
	}

	s2 := open(t, dir, Options{SegmentBytes: 4096})
	if r := s2.Recovery(); r.TornTails != 0 || len(r.Quarantined) != 0 {
		t.Fatalf("clean reopen reported damage: %+v", r)
	}
	var got []Entry
	_ = s2.Entries(func(e Entry) bool { got = append(got, e); return true })
	if len(got) != len(want) {
		t.Fatalf("got %d entries back, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.ID != g.ID || w.Topic != g.Topic || !bytes.Equal(w.Key, g.Key) || (w.Key == nil) != (g.Key == nil) ||
			!bytes.Equal(w.Value, g.Value) || (w.Value == nil) != (g.Value == nil) || !w.Timestamp.Equal(g.Timestamp) ||
			w.PartitionSet != g.PartitionSet || w.Partition != g.Partition || len(w.Headers) != len(g.Headers) ||
			w.Class != g.Class || w.Err != g.Err || w.Attempts != g.Attempts {
			t.Fatalf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

func mustGlob(t *testing.T, dir, pat string) []string {
	m, err := filepath.Glob(filepath.Join(dir, pat))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func TestUnsafeDirAndLock(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrUnsafeDir) {
		t.Fatalf("world-writable dir: %v", err)
	}
	_ = os.Chmod(dir, 0o700)
	s := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v", err)
	}
	_ = s.Close()
	s2 := open(t, dir, Options{})
	_ = s2.Close()
}

func TestFull(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 2000})
	ctx := ctxT(t)
	var full error
	n := 0
	for i := range 100 {
		if err := s.Append(ctx, entry("a", i)); err != nil {
			full = err
			break
		}
		n++
	}
	if !errors.Is(full, ErrFull) || n == 0 {
		t.Fatalf("after %d appends: %v", n, full)
	}
	if got := s.Len(); got != int64(n) {
		t.Fatalf("Len %d, want %d", got, n)
	}
	t.Logf("%d records fit; then: %v", n, full)
}

func TestConcurrentGroupCommit(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 64 << 10})
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 100 {
				if err := s.Append(ctx, entry("t", g*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if s.Len() != 1600 || len(all(t, s)) != 1600 {
		t.Fatalf("Len %d", s.Len())
	}
}

// TestDrainOrderAndPartialFailure: entries come out in spool order; a chunk
// with a failure keeps the failures and what follows, in order, and a
// later drain resumes from them.
func TestDrainOrderAndPartialFailure(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 2048})
	ctx := ctxT(t)
	for i := range 200 {
		if err := s.Append(ctx, entry("t", i)); err != nil {
			t.Fatal(err)
		}
	}
	var sent []string
	boom := errors.New("broker down")
	calls := 0
	st, err := s.Drain(ctx, 25, func(_ context.Context, es []Entry) []error {
		calls++
		errs := make([]error, len(es))
		for i, e := range es {
			if string(e.Value) == "value-000110" || string(e.Value) == "value-000112" {
				errs[i] = boom
				continue
			}
			sent = append(sent, string(e.Value))
		}
		return errs
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Drain: %v", err)
	}
	if st.Sent != int64(len(sent)) || s.Len() != int64(200-len(sent)) {
		t.Fatalf("stats %+v, sent %d, Len %d", st, len(sent), s.Len())
	}
	left := all(t, s)
	if left[0] != "value-000110" || left[1] != "value-000112" {
		t.Fatalf("kept entries start %v", left[:3])
	}
	for i := 1; i < len(left); i++ {
		if left[i] <= left[i-1] {
			t.Fatalf("kept entries out of order at %d: %q after %q", i, left[i], left[i-1])
		}
	}
	// A restart in between keeps progress.
	_ = s.Close()
	s = open(t, dir, Options{SegmentBytes: 2048})
	if got := s.Len(); got != int64(len(left)) {
		t.Fatalf("after reopen Len %d, want %d", got, len(left))
	}
	var again []string
	if _, err := s.Drain(ctx, 25, func(_ context.Context, es []Entry) []error {
		for _, e := range es {
			again = append(again, string(e.Value))
		}
		return make([]error, len(es))
	}); err != nil {
		t.Fatal(err)
	}
	if len(again) != len(left) || again[0] != "value-000110" {
		t.Fatalf("second drain sent %d (%v...), want %d", len(again), again[:2], len(left))
	}
	if s.Len() != 0 || len(mustGlob(t, dir, "*.seg")) != 1 {
		t.Fatalf("after full drain: Len %d, segments %v", s.Len(), mustGlob(t, dir, "*.seg"))
	}
}

func TestPurge(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	ctx := ctxT(t)
	for i := range 50 {
		_ = s.Append(ctx, entry("t", i))
	}
	n, err := s.Purge(ctx)
	if err != nil || n != 50 || s.Len() != 0 || len(s.Stats().PerTopic) != 0 {
		t.Fatalf("Purge: %d %v, Len %d", n, err, s.Len())
	}
}

// TestDamagedSegments: torn tails, flipped bytes and foreign files are
// detected on Open; damaged bytes go to quarantine, the rest is kept.
func TestDamagedSegments(t *testing.T) {
	tests := []struct {
		name        string
		damage      func(t *testing.T, dir, seg string, data []byte)
		wantKept    int
		wantTorn    int
		quarantined bool
	}{
		{"torn tail", func(t *testing.T, dir, seg string, data []byte) {
			writeRaw(t, seg, data[:len(data)-7])
		}, 19, 1, false},
		{"flipped byte in a value", func(t *testing.T, dir, seg string, data []byte) {
			data[len(data)/2] ^= 0x40
			writeRaw(t, seg, data)
		}, 19, 0, true},
		{"flipped length byte", func(t *testing.T, dir, seg string, data []byte) {
			i := fileHeaderSize + 4 + 1 // first frame's length
			data[i] ^= 0x10
			writeRaw(t, seg, data)
		}, 19, 0, true},
		{"foreign file named as a segment", func(t *testing.T, dir, seg string, data []byte) {
			writeRaw(t, filepath.Join(dir, "00000000000000000000.seg"), []byte("this is not a spool segment, just some text that is long enough"))
		}, 20, 0, true},
		{"garbage appended", func(t *testing.T, dir, seg string, data []byte) {
			writeRaw(t, seg, append(data, bytes.Repeat([]byte{0xAB}, 100)...))
		}, 20, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			for i := range 20 {
				if err := s.Append(ctxT(t), entry("t", i)); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.Close()
			segs := mustGlob(t, dir, "*.seg")
			data, err := os.ReadFile(segs[len(segs)-1])
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir, segs[len(segs)-1], data)

			s2 := open(t, dir, Options{})
			r := s2.Recovery()
			if got := len(all(t, s2)); got != tt.wantKept || s2.Len() != int64(tt.wantKept) {
				t.Fatalf("kept %d (Len %d), want %d; report %+v", got, s2.Len(), tt.wantKept, r)
			}
			if r.TornTails != tt.wantTorn || (len(r.Quarantined) > 0) != tt.quarantined {
				t.Fatalf("report %+v", r)
			}
			for _, q := range r.Quarantined {
				if fi, err := os.Stat(q.File); err != nil || fi.Size() != q.Bytes || fi.Mode().Perm() != 0o600 {
					t.Fatalf("quarantine file %s: %v", q.File, err)
				}
			}
			// The repaired spool takes appends and reopens clean.
			if err := s2.Append(ctxT(t), entry("t", 99)); err != nil {
				t.Fatal(err)
			}
			_ = s2.Close()
			s3 := open(t, dir, Options{})
			if r := s3.Recovery(); r.TornTails != 0 || len(r.Quarantined) != 0 || s3.Len() != int64(tt.wantKept+1) {
				t.Fatalf("after repair: Len %d, report %+v", s3.Len(), r)
			}
		})
	}
}

func writeRaw(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestDrainReject: an entry send rejects for good leaves the spool for
// dir/rejected (in segment format) instead of blocking what follows.
func TestDrainReject(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ctx := ctxT(t)
	for i := range 10 {
		if err := s.Append(ctx, entry("t", i)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Drain(ctx, 4, func(_ context.Context, es []Entry) []error {
		errs := make([]error, len(es))
		for i, e := range es {
			if string(e.Value) == "value-000002" {
				errs[i] = fmt.Errorf("%w: too large", ErrReject)
			}
		}
		return errs
	})
	if err != nil || st.Sent != 9 || st.Rejected != 1 || s.Len() != 0 {
		t.Fatalf("Drain: %+v %v, Len %d", st, err, s.Len())
	}
	if ss := s.Stats(); ss.Rejected != 1 || ss.QuarantinedRanges != 0 || len(ss.PerTopic) != 0 {
		t.Fatalf("Stats after a rejection: %+v", ss)
	}
	if a, err := s.SetAside(); err != nil || a.RejectedFiles != 1 || a.RejectedRecords != 1 || a.QuarantineFiles != 0 || a.Empty() {
		t.Fatalf("SetAside: %+v %v", a, err)
	}
	rej := mustGlob(t, filepath.Join(dir, "rejected"), "*.rej")
	if len(rej) != 1 {
		t.Fatalf("rejected files %v", rej)
	}
	data, _ := os.ReadFile(rej[0])
	res := scanSegment(data)
	if !res.header || len(res.frames) != 1 || len(res.bad) != 0 || res.torn >= 0 {
		t.Fatalf("rejected file: %+v", res)
	}
	e, err := decodeEntry(data[res.frames[0].Off+frameHeader : res.frames[0].End])
	if err != nil || string(e.Value) != "value-000002" {
		t.Fatalf("rejected entry %q %v", e.Value, err)
	}
}

// TestDrainFindsDamage: damage that appears after Open (a flipped byte, an
// unfinished frame at the end of a sealed segment) is quarantined by
// Drain, counted in DrainStats and Stats, and costs only the damaged
// record: the others are sent, in order, and the per-topic counts stay
// right.
func TestDrainFindsDamage(t *testing.T) {
	tests := []struct {
		name      string
		damage    func(data []byte, frames []span) []byte
		wantSent  int
		wantBytes func(frames []span, size int) int64
	}{
		{"flipped byte in the third record", func(data []byte, frames []span) []byte {
			data[frames[2].Off+frameHeader+3] ^= 0x08
			return data
		}, 9, func(frames []span, _ int) int64 { return int64(frames[2].End - frames[2].Off) }},
		{"unfinished frame at the end", func(data []byte, frames []span) []byte {
			return append(data, frameMagic[0], frameMagic[1], frameMagic[2])
		}, 10, func(_ []span, _ int) int64 { return 3 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			ctx := ctxT(t)
			for i := range 10 {
				if err := s.Append(ctx, entry([]string{"a", "b"}[i%2], i)); err != nil {
					t.Fatal(err)
				}
			}
			seg := mustGlob(t, dir, "*.seg")[0]
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			frames := scanSegment(data).frames
			writeRaw(t, seg, tt.damage(data, frames))
			var sent []string
			st, err := s.Drain(ctx, 4, func(_ context.Context, es []Entry) []error {
				for _, e := range es {
					sent = append(sent, string(e.Value))
				}
				return make([]error, len(es))
			})
			wantBytes := tt.wantBytes(frames, len(data))
			if err != nil || st.Sent != int64(tt.wantSent) || st.Quarantined != 1 || st.QuarantinedBytes != wantBytes || len(sent) != tt.wantSent {
				t.Fatalf("Drain: %+v %v (sent %v), want %d sent and 1 range of %d bytes quarantined", st, err, sent, tt.wantSent, wantBytes)
			}
			if !sort.StringsAreSorted(sent) {
				t.Fatalf("sent out of order: %v", sent)
			}
			ss := s.Stats()
			if ss.Records != 0 || len(ss.PerTopic) != 0 || ss.QuarantinedRanges != 1 || ss.QuarantinedBytes != wantBytes {
				t.Fatalf("Stats %+v", ss)
			}
			r := s.Recovery()
			if len(r.Quarantined) != 1 || !strings.Contains(r.Quarantined[0].Reason, "found while replaying") {
				t.Fatalf("Recovery %+v", r)
			}
			if a, err := s.SetAside(); err != nil || a.QuarantineFiles != 1 || a.QuarantineBytes != wantBytes {
				t.Fatalf("SetAside %+v %v", a, err)
			}
		})
	}
}

// TestDamagedHeaderKeepsRecords (issue #17): a segment whose file header
// is damaged keeps all its records; only the 16 header bytes are
// quarantined, the segment is rewritten with a good header, and a
// read-only open reports the same without changing anything.
func TestDamagedHeaderKeepsRecords(t *testing.T) {
	tests := []struct {
		name   string
		damage func(h []byte)
		reason string
	}{
		{"4 bytes flipped at offset 2", func(h []byte) {
			for i := 2; i < 6; i++ {
				h[i] ^= 0xff
			}
		}, "header damaged"},
		{"unknown version", func(h []byte) { h[len(fileMagic)] = 7 }, "version 7"},
		{"reserved byte set", func(h []byte) { h[fileHeaderSize-1] = 1 }, "header damaged"},
		{"header zeroed", func(h []byte) { clear(h[:fileHeaderSize]) }, "header damaged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{})
			for i := range 20 {
				if err := s.Append(ctxT(t), entry("t", i)); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.Close()
			seg := mustGlob(t, dir, "*.seg")[0]
			data, _ := os.ReadFile(seg)
			tt.damage(data)
			writeRaw(t, seg, data)

			ro := open(t, dir, Options{ReadOnly: true})
			if r := ro.Recovery(); ro.Len() != 20 || len(r.Quarantined) != 1 || r.Quarantined[0].Bytes != fileHeaderSize || r.Quarantined[0].File != "" {
				t.Fatalf("read-only: Len %d, report %+v", ro.Len(), r)
			}
			if after, _ := os.ReadFile(seg); !bytes.Equal(after, data) {
				t.Fatal("read-only open changed the segment")
			}
			_ = ro.Close()

			s2 := open(t, dir, Options{})
			r := s2.Recovery()
			if got := all(t, s2); len(got) != 20 || got[0] != "value-000000" || got[19] != "value-000019" {
				t.Fatalf("kept %d records, want 20; report %+v", len(got), r)
			}
			if len(r.Quarantined) != 1 || r.Quarantined[0].Offset != 0 || r.Quarantined[0].Bytes != fileHeaderSize ||
				!strings.Contains(r.Quarantined[0].Reason, tt.reason) || r.Recovered != 20 {
				t.Fatalf("report %+v, want the 16 header bytes quarantined (%q) and 20 recovered", r, tt.reason)
			}
			if st := s2.Stats(); st.QuarantinedRanges != 1 || st.QuarantinedBytes != fileHeaderSize || st.Records != 20 {
				t.Fatalf("stats %+v", st)
			}
			rewritten, _ := os.ReadFile(seg)
			if !validFileHeader(rewritten) || !bytes.Equal(rewritten[fileHeaderSize:], data[fileHeaderSize:]) {
				t.Fatal("segment not rewritten with a good header and the same frames")
			}
			_ = s2.Close()
			s3 := open(t, dir, Options{})
			if r := s3.Recovery(); len(r.Quarantined) != 0 || s3.Len() != 20 {
				t.Fatalf("after repair: Len %d, report %+v", s3.Len(), r)
			}
		})
	}
}
