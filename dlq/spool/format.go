package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// On-disk format (version 1), all integers big-endian:
//
//	segment file = fileHeader frame*
//	fileHeader   = "KPRODSPL" version:u8 reserved:[7]u8            (16 bytes)
//	frame        = magic:[4]u8 length:u32 crc:u32 payload:[length]u8
//	crc          = CRC-32C (Castagnoli) of the 4 length bytes and the payload
//
// The magic lets a reader find the next frame after a damaged one; the CRC
// covers the length so a flipped length bit is caught, not followed.
// The payload is one Entry, see appendEntry; its first byte is the entry
// version.
//
// Every frame stands alone, so the file header is redundant: it marks the
// file, and a reader needs nothing from it (the version that matters is
// each payload's). A header that is not exactly the one above (reserved
// bytes zero) is damage like any other: its 16 bytes are quarantined and
// the frames after it read as usual. A change of format must change the
// entry version (old readers then quarantine such frames, naming the
// version) or the frame magic.

const (
	fileMagic      = "KPRODSPL"
	formatVersion  = 1
	fileHeaderSize = 16
	frameHeader    = 12
	// MaxEntryBytes bounds one encoded entry; a length beyond it is
	// corruption, not a record.
	MaxEntryBytes = 64 << 20
)

var frameMagic = [4]byte{0x6b, 0x70, 0x72, 0xf1} // "kpr" + 0xf1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one spooled record: the record exactly as it is to be produced
// on replay (Topic is its destination: its original topic, or a
// dead-letter topic), plus why it was spooled.
type Entry struct {
	// ID is the record's unique ID, also carried in its record-ID header.
	ID [16]byte
	// SpooledAt is when the entry was handed to the spool.
	SpooledAt time.Time
	// Topic is where replay sends the record.
	Topic string
	// OriginalTopic is the topic the application sent the record to.
	OriginalTopic string
	// Partition is used on replay only when PartitionSet is true.
	Partition    int32
	PartitionSet bool
	Key          []byte // nil stays nil
	Value        []byte // nil stays nil (a tombstone)
	Headers      []kgo.RecordHeader
	Timestamp    time.Time // zero stays zero
	// Class is the kafkaproducer.Class name of the failure ("timeout",
	// "bad_input", ...), Err its message.
	Class string
	Err   string
	// Attempts counts how often the record was sent before it was
	// spooled.
	Attempts uint32
}

const (
	flagPartitionSet = 1 << iota
	flagKeyNil
	flagValueNil
	flagTimestampZero
)

// appendFrame appends e as one frame to dst.
func appendFrame(dst []byte, e *Entry) []byte {
	start := len(dst)
	dst = append(dst, frameMagic[:]...)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0) // length, crc
	dst = appendEntry(dst, e)
	n := len(dst) - start - frameHeader
	binary.BigEndian.PutUint32(dst[start+4:], uint32(n))
	crc := crc32.Update(0, castagnoli, dst[start+4:start+8])
	crc = crc32.Update(crc, castagnoli, dst[start+frameHeader:])
	binary.BigEndian.PutUint32(dst[start+8:], crc)
	return dst
}

func appendEntry(dst []byte, e *Entry) []byte {
	var flags byte
	if e.PartitionSet {
		flags |= flagPartitionSet
	}
	if e.Key == nil {
		flags |= flagKeyNil
	}
	if e.Value == nil {
		flags |= flagValueNil
	}
	if e.Timestamp.IsZero() {
		flags |= flagTimestampZero
	}
	dst = append(dst, formatVersion, flags)
	dst = append(dst, e.ID[:]...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(e.SpooledAt.UnixNano()))
	var ts int64
	if !e.Timestamp.IsZero() {
		ts = e.Timestamp.UnixNano()
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.Partition))
	dst = binary.BigEndian.AppendUint32(dst, e.Attempts)
	dst = appendBytes(dst, []byte(e.Topic))
	dst = appendBytes(dst, []byte(e.OriginalTopic))
	dst = appendBytes(dst, []byte(e.Class))
	dst = appendBytes(dst, []byte(e.Err))
	dst = appendBytes(dst, e.Key)
	dst = appendBytes(dst, e.Value)
	dst = binary.AppendUvarint(dst, uint64(len(e.Headers)))
	for _, h := range e.Headers {
		dst = appendBytes(dst, []byte(h.Key))
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// ErrCorrupt is wrapped by every decoding error.
var ErrCorrupt = errors.New("kprod: spool entry corrupt")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, what)
	}
}

func (d *decoder) n(k int, what string) []byte {
	if d.err != nil || len(d.b) < k {
		d.fail(what)
		return nil
	}
	out := d.b[:k:k]
	d.b = d.b[k:]
	return out
}

func (d *decoder) u32(what string) uint32 {
	if b := d.n(4, what); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if b := d.n(8, what); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) bytes(what string) []byte {
	if d.err != nil {
		return nil
	}
	l, k := binary.Uvarint(d.b)
	if k <= 0 || l > uint64(len(d.b)-k) {
		d.fail(what + " length")
		return nil
	}
	d.b = d.b[k:]
	return d.n(int(l), what)
}

// decodeEntry decodes one payload. It never panics and never allocates
// more than a small multiple of len(payload).
func decodeEntry(payload []byte) (Entry, error) {
	var e Entry
	d := &decoder{b: payload}
	hdr := d.n(2, "header")
	if d.err != nil {
		return e, d.err
	}
	if hdr[0] != formatVersion {
		return e, fmt.Errorf("%w: unknown entry version %d", ErrCorrupt, hdr[0])
	}
	flags := hdr[1]
	if flags&^(flagPartitionSet|flagKeyNil|flagValueNil|flagTimestampZero) != 0 {
		return e, fmt.Errorf("%w: unknown flags %#x", ErrCorrupt, flags)
	}
	copy(e.ID[:], d.n(16, "id"))
	e.SpooledAt = time.Unix(0, int64(d.u64("spooled at")))
	ts := int64(d.u64("timestamp"))
	e.Partition = int32(d.u32("partition"))
	e.Attempts = d.u32("attempts")
	e.Topic = string(d.bytes("topic"))
	e.OriginalTopic = string(d.bytes("original topic"))
	e.Class = string(d.bytes("class"))
	e.Err = string(d.bytes("error"))
	e.Key = d.bytes("key")
	e.Value = d.bytes("value")
	if d.err != nil {
		return Entry{}, d.err
	}
	nh, k := binary.Uvarint(d.b)
	// Each header takes at least two bytes, which bounds the count by
	// what is left and keeps a forged count from allocating much.
	if k <= 0 || nh > uint64(len(d.b)-k)/2 {
		return Entry{}, fmt.Errorf("%w: header count", ErrCorrupt)
	}
	d.b = d.b[k:]
	if nh > 0 {
		e.Headers = make([]kgo.RecordHeader, nh)
		for i := range e.Headers {
			e.Headers[i].Key = string(d.bytes("header key"))
			e.Headers[i].Value = d.bytes("header value")
		}
	}
	if d.err != nil {
		return Entry{}, d.err
	}
	if len(d.b) != 0 {
		return Entry{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	if e.Topic == "" {
		return Entry{}, fmt.Errorf("%w: empty topic", ErrCorrupt)
	}
	if flags&flagKeyNil != 0 {
		if len(e.Key) != 0 {
			return Entry{}, fmt.Errorf("%w: nil key with bytes", ErrCorrupt)
		}
		e.Key = nil
	} else if e.Key == nil {
		e.Key = []byte{}
	}
	if flags&flagValueNil != 0 {
		if len(e.Value) != 0 {
			return Entry{}, fmt.Errorf("%w: nil value with bytes", ErrCorrupt)
		}
		e.Value = nil
	} else if e.Value == nil {
		e.Value = []byte{}
	}
	if flags&flagTimestampZero == 0 {
		e.Timestamp = time.Unix(0, ts)
	}
	e.PartitionSet = flags&flagPartitionSet != 0
	return e, nil
}

// span is a byte range [Off, End) of a segment file.
type span struct{ Off, End int }

// badSpan is a damaged range and why the scanner rejected its first bytes.
type badSpan struct {
	span
	why string
}

// scanResult is what a scan found in a segment file: whether it starts
// with an intact file header, the good frames, the damaged ranges
// between them, and whether the data ends in a torn (incomplete) frame.
// All offsets are from the start of the file. The header (if intact),
// frames, bad ranges and the torn tail cover the bytes scanned exactly
// once, in order: no byte goes unaccounted.
type scanResult struct {
	header bool      // data starts with an intact file header
	frames []span    // frame ranges (frame header included)
	bad    []badSpan // damaged bytes, to quarantine
	torn   int       // start of a torn tail, or -1
}

// scanSegment scans a whole segment file. The file header carries
// nothing a frame needs (each payload has its own version byte), so a
// damaged header costs only its own 16 bytes: they become the first
// damaged range and the frames after it are read as usual.
func scanSegment(data []byte) scanResult {
	if validFileHeader(data) {
		res := scanFrames(data, fileHeaderSize, "")
		res.header = true
		return res
	}
	why := "segment file header damaged"
	if len(data) > len(fileMagic) && string(data[:len(fileMagic)]) == fileMagic && data[len(fileMagic)] != formatVersion {
		why = fmt.Sprintf("segment file header names version %d, not %d", data[len(fileMagic)], formatVersion)
	}
	return scanFrames(data, 0, why)
}

// scanFrames walks data frame by frame from offset from. A frame whose
// magic, length or CRC is wrong makes it search for the next magic that
// starts a valid frame; the bytes skipped are reported as bad. An
// incomplete frame at the very end (a write cut short by a crash) is a
// torn tail, not damage, unless damage came just before it or its bytes
// hold a whole frame whose length field alone is wrong. A non-empty
// damaged says the bytes from from are damaged already (and why).
func scanFrames(data []byte, from int, damaged string) scanResult {
	res := scanResult{torn: -1}
	off := from
	bad := badSpan{span: span{-1, -1}}
	if damaged != "" {
		bad = badSpan{span{from, -1}, damaged}
	}
	flushBad := func(end int) {
		if bad.Off >= 0 && end > bad.Off {
			bad.End = end
			res.bad = append(res.bad, bad)
		}
		bad.Off = -1
	}
	for off < len(data) {
		end, st, why := checkFrame(data, off)
		if st == frameOK {
			flushBad(off)
			res.frames = append(res.frames, span{off, end})
			off = end
			continue
		}
		if st == frameTruncated && bad.Off < 0 {
			// Incomplete: a torn tail if no valid frame follows (a
			// damaged length can also look incomplete).
			switch {
			case validFrameAfter(data, off+1):
				why = "frame length runs past the next valid frame"
			case wholeFrameMisLength(data, off):
				why = "frame length damaged (the bytes to the end hold a whole frame)"
			default:
				res.torn = off
				return res
			}
		}
		if bad.Off < 0 {
			bad = badSpan{span{off, -1}, why}
		}
		next := nextMagic(data, off+1)
		if next < 0 {
			break // nothing after: damaged to the end
		}
		off = next
	}
	flushBad(len(data))
	return res
}

type frameStatus uint8

const (
	frameOK frameStatus = iota
	frameBad
	frameTruncated
)

// checkFrame checks the frame at off: its end and status, and for a bad
// one, why.
func checkFrame(data []byte, off int) (int, frameStatus, string) {
	rest := data[off:]
	if len(rest) < frameHeader {
		if len(rest) >= 4 && [4]byte(rest[:4]) != frameMagic || len(rest) < 4 && !isMagicPrefix(rest) {
			return 0, frameBad, "no frame magic"
		}
		return 0, frameTruncated, "frame header cut short"
	}
	if [4]byte(rest[:4]) != frameMagic {
		return 0, frameBad, "no frame magic"
	}
	n := binary.BigEndian.Uint32(rest[4:8])
	if n > MaxEntryBytes {
		return 0, frameBad, fmt.Sprintf("frame length %d above the %d-byte limit", n, MaxEntryBytes)
	}
	if uint64(len(rest)) < frameHeader+uint64(n) {
		return 0, frameTruncated, "frame cut short"
	}
	crc := crc32.Update(0, castagnoli, rest[4:8])
	crc = crc32.Update(crc, castagnoli, rest[frameHeader:frameHeader+int(n)])
	if crc != binary.BigEndian.Uint32(rest[8:12]) {
		return 0, frameBad, "frame CRC-32C mismatch"
	}
	return off + frameHeader + int(n), frameOK, ""
}

func validFrameAfter(data []byte, from int) bool {
	for i := nextMagic(data, from); i >= 0; i = nextMagic(data, i+1) {
		if _, st, _ := checkFrame(data, i); st == frameOK {
			return true
		}
	}
	return false
}

// wholeFrameMisLength reports whether the frame at off, which claims more
// bytes than data holds, checks out with the length the data implies: up
// to the end, or up to a later magic (a torn frame after it). Then it is
// a whole frame, written and acknowledged, whose length field was
// damaged: damage to quarantine, not a torn tail to cut.
func wholeFrameMisLength(data []byte, off int) bool {
	if len(data)-off < frameHeader {
		return false
	}
	want := binary.BigEndian.Uint32(data[off+8 : off+12])
	check := func(end int) bool {
		var l [4]byte
		binary.BigEndian.PutUint32(l[:], uint32(end-off-frameHeader))
		crc := crc32.Update(0, castagnoli, l[:])
		return crc32.Update(crc, castagnoli, data[off+frameHeader:end]) == want
	}
	if check(len(data)) {
		return true
	}
	for i := nextMagic(data, off+frameHeader); i >= 0; i = nextMagic(data, i+1) {
		if check(i) {
			return true
		}
	}
	return false
}

func isMagicPrefix(b []byte) bool {
	for i := range b {
		if b[i] != frameMagic[i] {
			return false
		}
	}
	return true
}

func nextMagic(data []byte, from int) int {
	for i := from; i+4 <= len(data); i++ {
		if data[i] == frameMagic[0] && [4]byte(data[i:i+4]) == frameMagic {
			return i
		}
	}
	return -1
}

func fileHeaderBytes() []byte {
	h := make([]byte, fileHeaderSize)
	copy(h, fileMagic)
	h[len(fileMagic)] = formatVersion
	return h
}

// validFileHeader reports whether b starts with the exact file header
// (reserved bytes zero), so that any damage to it is seen and reported.
func validFileHeader(b []byte) bool {
	return len(b) >= fileHeaderSize && string(b[:fileHeaderSize]) == string(fileHeaderBytes())
}

// isPrefixOfHeader reports whether b, shorter than a header, is the start
// of one: a segment created but cut before its header was complete.
func isPrefixOfHeader(b []byte) bool {
	h := fileHeaderBytes()
	return len(b) <= len(h) && string(h[:len(b)]) == string(b)
}

func crc32c(b []byte) uint32    { return crc32.Checksum(b, castagnoli) }
func beU32(b []byte) uint32     { return binary.BigEndian.Uint32(b) }
func beU64(b []byte) uint64     { return binary.BigEndian.Uint64(b) }
func putU32(b []byte, v uint32) { binary.BigEndian.PutUint32(b, v) }
func putU64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }
