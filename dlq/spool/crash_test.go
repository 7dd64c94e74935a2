package spool

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyDir copies the regular files of src into a new directory, the way
// they would be found after a crash at this instant.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if !de.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, de.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// reopenValues opens dir, reads every waiting value and closes it.
func reopenValues(t *testing.T, dir string) []string {
	t.Helper()
	s, err := Open(dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return all(t, s)
}

// TestRewriteCrashPoints stops a segment rewrite (a drain whose chunk
// failed after earlier chunks of the same segment were sent and recorded
// in its .pos) at every step, and also builds the state a crash leaves
// when the directory updates reach the disk in another order (the new,
// shorter segment renamed in but the old .pos still there). Reopening
// any of them must keep every record the drain did not send: a replay
// may repeat records, never skip them.
func TestRewriteCrashPoints(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 1 << 20})
	ctx := ctxT(t)
	for i := range 100 {
		if err := s.Append(ctx, entry("t", i+100)); err != nil { // same-size frames
			t.Fatal(err)
		}
	}
	snaps := map[string]string{}
	s.testCrash = func(step string) error {
		snaps[step] = copyDir(t, dir)
		return nil
	}
	boom := errors.New("broker down")
	// Chunks of 5: records 100..139 are sent (8 chunks, .pos at the end
	// of 139), then 140 fails (141..144 of its chunk are sent) and the
	// segment is rewritten to 140, 145..199.
	_, err := s.Drain(ctx, 5, func(_ context.Context, es []Entry) []error {
		errs := make([]error, len(es))
		for i, e := range es {
			if string(e.Value) == "value-000140" {
				errs[i] = boom
			}
		}
		return errs
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Drain: %v", err)
	}
	want := all(t, s)
	if len(want) != 56 || want[0] != "value-000140" || want[1] != "value-000145" {
		t.Fatalf("kept %d records starting %v, want 56 from value-000140", len(want), want[:2])
	}
	s.testCrash = nil
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"rewrite:tmp-written", "rewrite:pos-removed"} {
		if snaps[step] == "" {
			t.Fatalf("no crash point %q reached", step)
		}
	}
	// The state an unordered directory update can leave: the rewritten
	// segment in place, the old .pos not yet gone.
	reordered := copyDir(t, snaps["rewrite:tmp-written"])
	segs := mustGlob(t, reordered, "*.seg.tmp")
	if len(segs) != 1 || len(mustGlob(t, reordered, "*.pos")) != 1 {
		t.Fatalf("tmp-written snapshot: tmp %v, pos %v", segs, mustGlob(t, reordered, "*.pos"))
	}
	if err := os.Rename(segs[0], strings.TrimSuffix(segs[0], ".tmp")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		dir  string
		// exact: the reopened spool holds exactly want; otherwise it
		// may also hold records already sent (replayed again).
		exact bool
	}{
		{"crash after tmp written", snaps["rewrite:tmp-written"], false},
		{"crash after pos removed", snaps["rewrite:pos-removed"], false},
		{"rename reached disk before pos removal", reordered, true},
		{"after rewrite", copyDir(t, dir), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := reopenValues(t, tt.dir)
			// want must be a subsequence of got: every kept record, in
			// order; resent duplicates may sit between them.
			j := 0
			for _, v := range got {
				if j < len(want) && v == want[j] {
					j++
				}
			}
			if j < len(want) {
				t.Fatalf("reopened spool (%d records) lost %q and later records", len(got), want[j])
			}
			if tt.exact && len(got) != len(want) {
				t.Fatalf("reopened spool holds %d records, want %d", len(got), len(want))
			}
		})
	}
}

// TestOrphanPosIgnored: a .pos whose segment was removed (a crash inside
// removeSegment) must not apply to a new segment with the same number
// after a restart.
func TestOrphanPosIgnored(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ctx := ctxT(t)
	for i := range 20 {
		if err := s.Append(ctx, entry("t", i+100)); err != nil {
			t.Fatal(err)
		}
	}
	var posSnap []byte
	if _, err := s.Drain(ctx, 5, func(_ context.Context, es []Entry) []error {
		// Read the .pos the previous chunk left.
		if b, err := os.ReadFile(s.posPath(1)); err == nil {
			posSnap = b
		}
		return make([]error, len(es))
	}); err != nil {
		t.Fatal(err)
	}
	if posSnap == nil {
		t.Fatal("no .pos seen during the drain")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Restart with an empty spool: remove all segments, leave a stale .pos
	// for segment 1, which Open would create again.
	for _, f := range mustGlob(t, dir, "*.seg") {
		_ = os.Remove(f)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.pos"), posSnap, 0o600); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, Options{})
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.pos")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("orphan .pos still there after Open: %v", err)
	}
	for i := range 20 {
		if err := s.Append(ctx, entry("t", i+100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := reopenValues(t, dir); len(got) != 20 {
		t.Fatalf("after reopen %d records, want 20", len(got))
	}
}

// dirState maps every file under dir to its content.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		out[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReadOnlyOpen: a read-only open of a damaged spool (a torn tail, a
// flipped byte, a stale .tmp) reports what a writable open would repair,
// shows the good records, refuses changes, takes no lock (so it works
// beside the owner) and leaves every file as it was.
func TestReadOnlyOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	ctx := ctxT(t)
	for i := range 20 {
		if err := s.Append(ctx, entry("t", i+100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := mustGlob(t, dir, "*.seg")[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff                               // damage one frame
	data = append(data, frameMagic[0], frameMagic[1], 0, 0) // torn tail
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(seg+".tmp", []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, dir)

	repaired := open(t, copyDir(t, dir), Options{}) // what a writable open keeps
	wantLen := repaired.Len()
	ro, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	r, w := ro.Recovery(), repaired.Recovery()
	if ro.Len() != wantLen || wantLen != 19 || r.TornTails != w.TornTails || len(r.Quarantined) == 0 || len(r.Quarantined) != len(w.Quarantined) {
		t.Fatalf("read-only: Len %d (writable %d, want 19), recovery %+v, writable recovery %+v", ro.Len(), wantLen, r, w)
	}
	for i, q := range r.Quarantined {
		if q.File != "" || q.Offset != w.Quarantined[i].Offset || q.Bytes != w.Quarantined[i].Bytes {
			t.Fatalf("read-only quarantine report %+v, writable %+v", q, w.Quarantined[i])
		}
	}
	if got := len(all(t, ro)); got != 19 {
		t.Fatalf("read-only Entries: %d, want 19", got)
	}
	if err := ro.Append(ctx, entry("t", 1)); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append: %v", err)
	}
	if _, err := ro.Drain(ctx, 10, nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Drain: %v", err)
	}
	if _, err := ro.Purge(ctx); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Purge: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after := dirState(t, dir)
	if len(after) != len(before) {
		t.Fatalf("read-only open changed the directory: %d files before, %d after", len(before), len(after))
	}
	for f, b := range before {
		if after[f] != b {
			t.Fatalf("read-only open changed %s", f)
		}
	}
	// Beside the owner, which holds the lock.
	owner := open(t, dir, Options{})
	ro2, err := Open(dir, Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open beside the owner: %v", err)
	}
	if ro2.Len() != owner.Len() {
		t.Fatalf("read-only Len %d, owner %d", ro2.Len(), owner.Len())
	}
	_ = ro2.Close()
}

// TestDamageAroundReplayPosition: with a .pos part-way into a segment,
// damage before it (records already replayed) and after it are both
// quarantined, the first one marked as already replayed, and exactly the
// intact records after the position are kept.
func TestDamageAroundReplayPosition(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for i := range 10 {
		if err := s.Append(ctxT(t), entry("t", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := mustGlob(t, dir, "*.seg")[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	frames := scanSegment(data).frames
	// Records 0..4 replayed; then frames 1 and 7 damaged.
	if err := writePos(strings.TrimSuffix(seg, ".seg")+".pos", int64(frames[4].End), frameCRC(data[frames[4].Off:frames[4].End])); err != nil {
		t.Fatal(err)
	}
	data[frames[1].Off+frameHeader+2] ^= 0x20
	data[frames[7].Off+frameHeader+2] ^= 0x20
	writeRaw(t, seg, data)

	s = open(t, dir, Options{})
	got := all(t, s)
	want := []string{"value-000005", "value-000006", "value-000008", "value-000009"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("kept %v, want %v", got, want)
	}
	r := s.Recovery()
	if len(r.Quarantined) != 2 || r.Recovered != 4 ||
		r.Quarantined[0].Offset != int64(frames[1].Off) || !strings.Contains(r.Quarantined[0].Reason, "already replayed") ||
		r.Quarantined[1].Offset != int64(frames[7].Off) || strings.Contains(r.Quarantined[1].Reason, "already replayed") {
		t.Fatalf("report %+v", r)
	}
	if st := s.Stats(); st.Records != 4 || st.QuarantinedRanges != 2 {
		t.Fatalf("stats %+v", st)
	}
}
