package spool

import (
	"bytes"
	"testing"
)

// FuzzScan feeds arbitrary bytes to the segment scanner (as a whole
// segment file, header included) and the entry decoder: no panic; the
// header, frames, damaged ranges and torn tail cover every byte exactly
// once, in order (nothing is dropped unaccounted); every frame checks out
// again; every entry that decodes re-encodes to the same bytes.
func FuzzScan(f *testing.F) {
	good := fileHeaderBytes()
	for i := range 3 {
		e := entry("t", i)
		good = appendFrame(good, &e)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	flipped := bytes.Clone(good)
	flipped[fileHeaderSize+20] ^= 1
	f.Add(flipped)
	header := bytes.Clone(good)
	header[2] ^= 0xff
	header[5] ^= 0xff
	f.Add(header)
	length := bytes.Clone(good)
	length[len(length)-len(appendFrame(nil, new(entry("t", 2))))+5] ^= 0x01 // last frame's length
	f.Add(length)
	f.Add([]byte("not a spool at all"))
	f.Add(append(fileHeaderBytes(), append(bytes.Clone(frameMagic[:]), 0, 0, 0, 1, 0, 0, 0, 0, 1)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := scanSegment(data)
		type piece struct {
			span
			what string
		}
		var pieces []piece
		if res.header {
			pieces = append(pieces, piece{span{0, fileHeaderSize}, "header"})
		}
		for _, fr := range res.frames {
			pieces = append(pieces, piece{fr, "frame"})
		}
		for _, b := range res.bad {
			if b.why == "" {
				t.Fatalf("damaged range %+v without a reason", b.span)
			}
			pieces = append(pieces, piece{b.span, "bad"})
		}
		if res.torn >= 0 {
			pieces = append(pieces, piece{span{res.torn, len(data)}, "torn"})
		}
		// Sort by offset (few pieces: insertion sort).
		for i := 1; i < len(pieces); i++ {
			for j := i; j > 0 && pieces[j].Off < pieces[j-1].Off; j-- {
				pieces[j], pieces[j-1] = pieces[j-1], pieces[j]
			}
		}
		at := 0
		for _, p := range pieces {
			if p.Off != at || p.End <= p.Off || p.End > len(data) {
				t.Fatalf("%s %+v: expected a piece starting at %d (of %d bytes); pieces %+v", p.what, p.span, at, len(data), pieces)
			}
			at = p.End
		}
		if at != len(data) {
			t.Fatalf("bytes %d..%d unaccounted for; pieces %+v", at, len(data), pieces)
		}
		if res.torn >= 0 && len(pieces) > 1 && pieces[len(pieces)-2].what == "bad" {
			t.Fatalf("torn tail right after damage (should be quarantined with it): %+v", pieces)
		}
		for _, fr := range res.frames {
			if end, st, _ := checkFrame(data, fr.Off); st != frameOK || end != fr.End {
				t.Fatalf("frame %+v does not check out", fr)
			}
			e, err := decodeEntry(data[fr.Off+frameHeader : fr.End])
			if err != nil {
				continue
			}
			again := appendFrame(nil, &e)
			if !bytes.Equal(again[frameHeader:], data[fr.Off+frameHeader:fr.End]) {
				t.Fatalf("entry does not round-trip")
			}
		}
	})
}

// FuzzDecodeEntry decodes arbitrary payloads.
func FuzzDecodeEntry(f *testing.F) {
	e := entry("t", 1)
	f.Add(appendEntry(nil, &e))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		e, err := decodeEntry(payload)
		if err != nil {
			return
		}
		if !bytes.Equal(appendEntry(nil, &e), payload) {
			t.Fatalf("entry does not round-trip")
		}
	})
}
