package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"
)

// segLayout is one segment file of a spool built for the corruption test:
// its bytes and the units damage can touch (the file header and each
// frame, with the ID of the frame's record).
type segLayout struct {
	name  string
	data  []byte
	units []unit
}

type unit struct {
	span
	id string // record ID; "" for the file header
}

// buildSpool appends n small records, one Append each, to a spool whose
// segments hold perSeg records, closes it and returns its segment files
// (in order) and every record ID in spool order.
func buildSpool(t *testing.T, n int) ([]segLayout, []string) {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 200})
	for i := range n {
		e := Entry{Topic: "t", Value: fmt.Appendf(nil, "v%d", i), SpooledAt: time.Unix(1_700_000_000, 0)}
		e.ID[15] = byte(i + 1)
		if err := s.Append(ctxT(t), e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var segs []segLayout
	var ids []string
	for _, path := range mustGlob(t, dir, "*.seg") {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res := scanSegment(data)
		if !res.header || len(res.bad) != 0 || res.torn >= 0 {
			t.Fatalf("%s is not clean: %+v", path, res)
		}
		sl := segLayout{name: filepath.Base(path), data: data, units: []unit{{span: span{0, fileHeaderSize}}}}
		for _, f := range res.frames {
			e, err := decodeEntry(data[f.Off+frameHeader : f.End])
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("%x", e.ID)
			sl.units = append(sl.units, unit{f, id})
			ids = append(ids, id)
		}
		segs = append(segs, sl)
	}
	return segs, ids
}

// damageCase damages bytes [off, off+n) of segment seg (XOR mask).
type damageCase struct {
	seg, off, n int
	mask        byte
}

func (c damageCase) String() string {
	return fmt.Sprintf("segment %d bytes %d..%d ^%#02x", c.seg, c.off, c.off+c.n-1, c.mask)
}

// TestCorruptionEveryOffset builds a small spool of several segments,
// then for every byte of every segment file flips that byte (and, at each
// offset of the segment headers, damages 4 bytes), and opens the damaged
// directory. It checks that Open never panics or fails, that every
// record whose frame the damage did not touch is kept (exactly that set,
// in order), that the bytes quarantined are exactly the touched header
// and frames (no more, no less), that the quarantine files hold them, and
// that Stats counts them; every 16th case (and every 4-byte case) also
// reopens the repaired spool, which must come up clean with the same
// records.
func TestCorruptionEveryOffset(t *testing.T) {
	segs, allIDs := buildSpool(t, 9)
	if len(segs) < 3 {
		t.Fatalf("built %d segments, want at least 3", len(segs))
	}
	var cases []damageCase
	for i, sl := range segs {
		for off := range sl.data {
			cases = append(cases, damageCase{i, off, 1, 0xff})
		}
		for off := range fileHeaderSize {
			cases = append(cases, damageCase{i, off, min(4, len(sl.data)-off), 0xa5})
		}
	}
	total := 0
	for _, sl := range segs {
		total += len(sl.data)
	}
	root := t.TempDir()
	start := time.Now()
	// The cases wait on fsync more than they use CPU: four shards in
	// parallel.
	const shards = 4
	t.Run("shards", func(t *testing.T) {
		for k := range shards {
			t.Run(fmt.Sprint(k), func(t *testing.T) {
				t.Parallel()
				for n := k; n < len(cases); n += shards {
					c := cases[n]
					checkDamage(t, filepath.Join(root, fmt.Sprint(n)), segs, allIDs, c, n%16 == 0 || c.n > 1)
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d damage cases over %d segments (%d records, %d bytes): every intact record kept, every damaged byte quarantined; %v",
		len(cases), len(segs), len(allIDs), total, time.Since(start).Round(time.Millisecond))
}

func checkDamage(t *testing.T, dir string, segs []segLayout, allIDs []string, c damageCase, reopen bool) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%v: panic: %v", c, p)
		}
	}()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	damaged := make([]byte, 0, c.n)
	for i, sl := range segs {
		data := sl.data
		if i == c.seg {
			data = bytes.Clone(data)
			for j := c.off; j < c.off+c.n; j++ {
				data[j] ^= c.mask
			}
			damaged = data
		}
		writeRaw(t, filepath.Join(dir, sl.name), data)
	}
	// What the damage touched: those units are lost, the rest kept.
	var touched []span // merged, in order
	lost := map[string]bool{}
	for _, u := range segs[c.seg].units {
		if u.Off < c.off+c.n && c.off < u.End {
			if k := len(touched); k > 0 && touched[k-1].End == u.Off {
				touched[k-1].End = u.End
			} else {
				touched = append(touched, u.span)
			}
			if u.id != "" {
				lost[u.id] = true
			}
		}
	}
	var want []string
	for _, id := range allIDs {
		if !lost[id] {
			want = append(want, id)
		}
	}

	s, err := Open(dir, Options{SegmentBytes: 200})
	if err != nil {
		t.Fatalf("%v: Open: %v", c, err)
	}
	defer s.Close()
	got := ids(t, s)
	if !slices.Equal(got, want) {
		t.Fatalf("%v: kept %d records %v, want %d %v", c, len(got), got, len(want), want)
	}
	r := s.Recovery()
	if r.TornTails != 0 {
		t.Fatalf("%v: damage reported as a torn tail: %+v", c, r)
	}
	var qs []span
	var qBytes int64
	for _, q := range r.Quarantined {
		if q.Segment != segs[c.seg].name || q.Reason == "" {
			t.Fatalf("%v: quarantined %+v, want ranges of %s with a reason", c, q, segs[c.seg].name)
		}
		b, err := os.ReadFile(q.File)
		if err != nil || !bytes.Equal(b, damaged[q.Offset:q.Offset+q.Bytes]) {
			t.Fatalf("%v: quarantine file %s does not hold the damaged bytes (%v)", c, q.File, err)
		}
		qs = append(qs, span{int(q.Offset), int(q.Offset + q.Bytes)})
		qBytes += q.Bytes
	}
	sort.Slice(qs, func(i, j int) bool { return qs[i].Off < qs[j].Off })
	var merged []span
	for _, q := range qs {
		if k := len(merged); k > 0 && merged[k-1].End == q.Off {
			merged[k-1].End = q.End
		} else {
			merged = append(merged, q)
		}
	}
	if !slices.Equal(merged, touched) {
		t.Fatalf("%v: quarantined %v, want exactly the touched header/frames %v (report %+v)", c, merged, touched, r.Quarantined)
	}
	if r.Recovered != int64(len(segs[c.seg].units)-1-len(lost)) {
		t.Fatalf("%v: Recovered %d, want %d", c, r.Recovered, len(segs[c.seg].units)-1-len(lost))
	}
	st := s.Stats()
	if st.Records != int64(len(want)) || st.PerTopic["t"] != int64(len(want)) || st.QuarantinedRanges != int64(len(r.Quarantined)) || st.QuarantinedBytes != qBytes {
		t.Fatalf("%v: stats %+v, want %d records, %d ranges, %d bytes quarantined", c, st, len(want), len(r.Quarantined), qBytes)
	}
	if a, err := s.SetAside(); err != nil || a.QuarantineFiles != len(r.Quarantined) || a.QuarantineBytes != qBytes || a.RejectedFiles != 0 {
		t.Fatalf("%v: SetAside %+v %v", c, a, err)
	}
	if !reopen {
		return
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(dir, Options{SegmentBytes: 200})
	if err != nil {
		t.Fatalf("%v: reopen: %v", c, err)
	}
	defer s2.Close()
	if r := s2.Recovery(); r.TornTails != 0 || len(r.Quarantined) != 0 {
		t.Fatalf("%v: repaired spool reopens with damage: %+v", c, r)
	}
	if got := ids(t, s2); !slices.Equal(got, want) {
		t.Fatalf("%v: after reopen %v, want %v", c, got, want)
	}
}

// ids lists the IDs of every waiting record, in spool order.
func ids(t *testing.T, s *Spool) []string {
	t.Helper()
	var out []string
	if err := s.Entries(func(e Entry) bool { out = append(out, fmt.Sprintf("%x", e.ID)); return true }); err != nil {
		t.Fatal(err)
	}
	return out
}
