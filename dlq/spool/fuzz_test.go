package spool

import (
	"bytes"
	"testing"
)

// FuzzScan feeds arbitrary bytes to the segment scanner and the entry
// decoder: no panic, frames and bad spans never overlap or leave the
// input, and every entry that decodes re-encodes to the same bytes.
func FuzzScan(f *testing.F) {
	var good []byte
	for i := range 3 {
		e := entry("t", i)
		good = appendFrame(good, &e)
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	flipped := bytes.Clone(good)
	flipped[20] ^= 1
	f.Add(flipped)
	f.Add([]byte("not a spool at all"))
	f.Add(append(bytes.Clone(frameMagic[:]), 0, 0, 0, 1, 0, 0, 0, 0, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		res := scanFrames(data)
		last := 0
		spans := append(append([]span(nil), res.frames...), res.bad...)
		for _, sp := range spans {
			if sp.Off < 0 || sp.End > len(data) || sp.Off >= sp.End {
				t.Fatalf("span %+v outside %d bytes", sp, len(data))
			}
		}
		for _, fr := range res.frames {
			if fr.Off < last {
				t.Fatalf("frames overlap at %d", fr.Off)
			}
			last = fr.End
			e, err := decodeEntry(data[fr.Off+frameHeader : fr.End])
			if err != nil {
				continue
			}
			again := appendFrame(nil, &e)
			if !bytes.Equal(again[frameHeader:], data[fr.Off+frameHeader:fr.End]) {
				t.Fatalf("entry does not round-trip")
			}
		}
		if res.torn >= 0 && (res.torn < last || res.torn > len(data)) {
			t.Fatalf("torn tail at %d after frame end %d", res.torn, last)
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
