package avro

import (
	"sync"

	hamba "github.com/hamba/avro/v2"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/serde/sr"
	franzsr "github.com/twmb/franz-go/pkg/sr"
)

// maxPooledBuffer caps the encoding buffers kept for reuse, so one huge
// record does not pin its buffer forever.
const maxPooledBuffer = 64 << 10

// Serializer encodes values of type T as Avro binary (no container, no
// header) with one schema. It implements kafkaproducer.Serializer[T]. T is
// anything hamba/avro can encode with the schema: a struct with `avro`
// field tags, a map[string]any, a primitive.
//
// Values are encoded into pooled buffers and copied once into the record's
// own exact-size slice. A Serializer is safe for concurrent use.
type Serializer[T any] struct {
	schema hamba.Schema
	text   string
	api    hamba.API
	pool   sync.Pool
}

// NewSerializer parses schema (Avro JSON) and returns a Serializer for T.
// api is hamba/avro's configuration (tag key, type converters); nil means
// hamba's DefaultConfig. The schema is parsed into a cache of its own, so
// named types do not leak into hamba's global schema cache.
func NewSerializer[T any](schema string, api hamba.API) (*Serializer[T], error) {
	parsed, err := hamba.ParseWithCache(schema, "", &hamba.SchemaCache{})
	if err != nil {
		return nil, &kafkaproducer.ConfigError{Field: "avro schema", Reason: err.Error()}
	}
	if api == nil {
		api = hamba.DefaultConfig
	}
	s := &Serializer[T]{schema: parsed, text: schema, api: api}
	s.pool.New = func() any { return hamba.NewWriter(nil, 512, hamba.WithWriterConfig(api)) }
	return s, nil
}

// Schema returns the parsed schema.
func (s *Serializer[T]) Schema() hamba.Schema { return s.schema }

// Serialize implements kafkaproducer.Serializer. With a nil dst the result
// is a new slice of exactly the encoded size.
func (s *Serializer[T]) Serialize(_ string, v T, dst []byte) ([]byte, error) {
	return s.AppendEncode(dst, v)
}

// AppendEncode appends the Avro encoding of v to dst.
func (s *Serializer[T]) AppendEncode(dst []byte, v T) ([]byte, error) {
	w := s.pool.Get().(*hamba.Writer)
	w.Reset(nil)
	w.WriteVal(s.schema, v)
	if err := w.Error; err != nil {
		w.Error = nil
		s.pool.Put(w)
		return nil, err
	}
	buf := w.Buffer()
	if dst == nil {
		dst = make([]byte, 0, len(buf))
	}
	dst = append(dst, buf...)
	if cap(buf) <= maxPooledBuffer {
		s.pool.Put(w)
	}
	return dst, nil
}

// Format returns the Schema Registry Format for this serializer: the
// schema as type AVRO, its full name as the record name (for named
// schemas), and this serializer's encoding. Pass it to sr.NewSerializer.
func (s *Serializer[T]) Format() sr.Format[T] {
	f := sr.Format[T]{
		Schema:       franzsr.Schema{Schema: s.text, Type: franzsr.TypeAvro},
		AppendEncode: s.AppendEncode,
	}
	if named, ok := s.schema.(hamba.NamedSchema); ok {
		f.RecordName = named.FullName()
	}
	return f
}

var _ kafkaproducer.Serializer[int] = (*Serializer[int])(nil)
