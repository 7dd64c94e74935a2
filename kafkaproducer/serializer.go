package kafkaproducer

import "encoding/json"

// Serializer turns a value of type T into the bytes of a record key or
// value, for the topic the record goes to (schema-aware serializers use
// the topic to pick a subject).
//
// Serialize appends the encoding of v to dst and returns the extended
// slice, so a caller can reuse a buffer (pass buf[:0]). A serializer that
// already holds the encoded bytes, or whose encoder returns a fresh exact
// slice, may return that slice without copying when len(dst) == 0; Typed
// always passes a nil dst, so the record owns its bytes and nothing is
// copied twice. A nil result with a nil error means "no bytes" (no key,
// or a tombstone value).
//
// Serializers must be safe for concurrent use.
type Serializer[T any] interface {
	Serialize(topic string, v T, dst []byte) ([]byte, error)
}

// SerializerFunc adapts a function to Serializer.
type SerializerFunc[T any] func(topic string, v T, dst []byte) ([]byte, error)

// Serialize calls f.
func (f SerializerFunc[T]) Serialize(topic string, v T, dst []byte) ([]byte, error) {
	return f(topic, v, dst)
}

// BytesSerializer passes byte slices through. With an empty dst it returns
// v itself, without a copy: do not modify v until the record's result is
// reported. A nil slice stays nil (no key, or a tombstone).
type BytesSerializer struct{}

// Serialize implements Serializer.
func (BytesSerializer) Serialize(_ string, v []byte, dst []byte) ([]byte, error) {
	if len(dst) == 0 {
		return v, nil
	}
	return append(dst, v...), nil
}

// StringSerializer encodes a string as its UTF-8 bytes. The empty string
// encodes as an empty, non-nil slice: an empty key, not a missing one (use
// TypedRecord.NoKey for that).
type StringSerializer struct{}

// Serialize implements Serializer.
func (StringSerializer) Serialize(_ string, v string, dst []byte) ([]byte, error) {
	if dst == nil {
		dst = make([]byte, 0, len(v))
	}
	return append(dst, v...), nil
}

// JSONSerializer encodes values with a Marshal function; the zero value
// uses encoding/json's json.Marshal. The output has no trailing newline.
type JSONSerializer[T any] struct {
	// Marshal replaces json.Marshal, to plug in another encoder with the
	// same contract (it must return a slice the caller may keep). Nil
	// means json.Marshal.
	Marshal func(v any) ([]byte, error)
}

// JSON returns a serializer that encodes T with encoding/json.
func JSON[T any]() JSONSerializer[T] { return JSONSerializer[T]{} }

// Serialize implements Serializer. With an empty dst it returns the
// encoder's own exact-size slice, so a send costs one encoding and no
// copy.
func (s JSONSerializer[T]) Serialize(_ string, v T, dst []byte) ([]byte, error) {
	marshal := s.Marshal
	if marshal == nil {
		marshal = json.Marshal
	}
	b, err := marshal(v)
	if err != nil {
		return nil, err
	}
	if len(dst) == 0 {
		return b, nil
	}
	return append(dst, b...), nil
}

var (
	_ Serializer[[]byte] = BytesSerializer{}
	_ Serializer[string] = StringSerializer{}
	_ Serializer[int]    = JSONSerializer[int]{}
)
