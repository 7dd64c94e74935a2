package outbox

import (
	"encoding/binary"
	"errors"

	"github.com/kprod/kprod/kafkaproducer"
)

// Headers are stored in one column: a version byte (1), the count as a
// uvarint, then per header its key's length (uvarint) and bytes and its
// value's length plus one (uvarint; 0 is a null value) and bytes. No
// headers is NULL.

const headersV1 = 1

// errBadHeaders reports a headers column this package did not write.
var errBadHeaders = errors.New("outbox: malformed headers column")

func encodeHeaders(hs []kafkaproducer.Header) any {
	if len(hs) == 0 {
		return nil
	}
	n := 1 + binary.MaxVarintLen64
	for _, h := range hs {
		n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
	}
	b := make([]byte, 0, n)
	b = append(b, headersV1)
	b = binary.AppendUvarint(b, uint64(len(hs)))
	for _, h := range hs {
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		if h.Value == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(h.Value))+1)
		b = append(b, h.Value...)
	}
	return b
}

// decodeHeaders parses what encodeHeaders wrote, appending to dst. Values
// alias b.
func decodeHeaders(dst []kafkaproducer.Header, b []byte) ([]kafkaproducer.Header, error) {
	if len(b) == 0 {
		return dst, nil
	}
	if b[0] != headersV1 {
		return dst, errBadHeaders
	}
	b = b[1:]
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) { // each header takes at least two bytes
		return dst, errBadHeaders
	}
	b = b[n:]
	for range count {
		kl, n := binary.Uvarint(b)
		if n <= 0 || kl > uint64(len(b)-n) {
			return dst, errBadHeaders
		}
		key := string(b[n : n+int(kl)])
		b = b[n+int(kl):]
		vl, n := binary.Uvarint(b)
		if n <= 0 || (vl > 0 && vl-1 > uint64(len(b)-n)) {
			return dst, errBadHeaders
		}
		var val []byte
		if vl > 0 {
			val = b[n : n+int(vl-1) : n+int(vl-1)]
			b = b[n+int(vl-1):]
		} else {
			b = b[n:]
		}
		dst = append(dst, kafkaproducer.Header{Key: key, Value: val})
	}
	if len(b) != 0 {
		return dst, errBadHeaders
	}
	return dst, nil
}
