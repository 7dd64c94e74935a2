package protobuf

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/serde/sr"
	franzsr "github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Serializer encodes protobuf messages in the protobuf binary format (no
// header). It implements kafkaproducer.Serializer[T]. The zero value uses
// proto.MarshalOptions{}; a nil message never reaches it through
// kafkaproducer.Typed (a nil value is a tombstone, a nil key no key).
//
// With a nil dst the message is sized once and marshaled into a buffer of
// exactly that size. A Serializer is safe for concurrent use (as long as
// nobody modifies a message while it is being serialized).
type Serializer[T proto.Message] struct {
	// Options are the marshal options (Deterministic, say).
	// UseCachedSize is managed by the Serializer.
	Options proto.MarshalOptions
}

// NewSerializer returns a Serializer for T with default marshal options.
func NewSerializer[T proto.Message]() *Serializer[T] { return &Serializer[T]{} }

// Serialize implements kafkaproducer.Serializer.
func (s *Serializer[T]) Serialize(_ string, v T, dst []byte) ([]byte, error) {
	return s.AppendEncode(dst, v)
}

// Size returns the encoded size of v.
func (s *Serializer[T]) Size(v T) int {
	o := s.Options
	o.UseCachedSize = false
	return o.Size(v)
}

// AppendEncode appends the protobuf encoding of v to dst.
func (s *Serializer[T]) AppendEncode(dst []byte, v T) ([]byte, error) {
	o := s.Options
	o.UseCachedSize = false
	if cap(dst)-len(dst) == 0 {
		// Size once, then marshal with that cached size into a buffer
		// that fits exactly.
		dst = grow(dst, o.Size(v))
		o.UseCachedSize = true
	}
	return o.MarshalAppend(dst, v)
}

// grow returns dst with room for n more bytes: a new exact-size buffer
// when dst is nil.
func grow(dst []byte, n int) []byte {
	if dst == nil {
		return make([]byte, 0, n)
	}
	return slices.Grow(dst, n)
}

// appendSized is AppendEncode right after Size(v): it reuses the size
// Size cached in v instead of walking the message again.
func (s *Serializer[T]) appendSized(dst []byte, v T) ([]byte, error) {
	o := s.Options
	o.UseCachedSize = true
	return o.MarshalAppend(dst, v)
}

// FormatOption configures Format.
type FormatOption func(*formatOptions)

type formatOptions struct {
	registerKnown bool
	marshal       proto.MarshalOptions
}

// RegisterWellKnown also registers imported google/protobuf/*.proto files
// as references. By default they are left out, as the Confluent registry
// and its clients resolve the well-known types themselves.
func RegisterWellKnown() FormatOption { return func(o *formatOptions) { o.registerKnown = true } }

// WithMarshalOptions sets the marshal options of the Format's encoder.
func WithMarshalOptions(m proto.MarshalOptions) FormatOption {
	return func(o *formatOptions) { o.marshal = m }
}

// Format returns the Schema Registry Format for T, a generated message
// type (its descriptor is read from the zero T). See FormatFor.
func Format[T proto.Message](opts ...FormatOption) (f sr.Format[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &kafkaproducer.ConfigError{Field: "protobuf.Format type", Reason: fmt.Sprintf("%T has no descriptor on its zero value (use FormatFor with a descriptor): %v", *new(T), r)}
		}
	}()
	var zero T
	return FormatFor[T](zero.ProtoReflect().Descriptor(), opts...)
}

// FormatFor returns the Schema Registry Format for messages described by
// md (for dynamicpb messages, say):
//
//   - the schema is md's .proto file as a base64-encoded
//     FileDescriptorProto, type PROTOBUF, which the Confluent registry
//     accepts in place of .proto source (as Confluent's Python client
//     sends it); set Format.Schema.Schema to the .proto text to register
//     source instead;
//   - each imported file becomes a Dependency registered under its import
//     path (Confluent's default reference subject strategy), except
//     well-known types unless RegisterWellKnown;
//   - the message index is md's path in its file ([0] for the first
//     top-level message);
//   - the record name is md's full name.
func FormatFor[T proto.Message](md protoreflect.MessageDescriptor, opts ...FormatOption) (sr.Format[T], error) {
	var o formatOptions
	for _, opt := range opts {
		opt(&o)
	}
	if md == nil {
		return sr.Format[T]{}, &kafkaproducer.ConfigError{Field: "protobuf.FormatFor descriptor", Reason: "nil"}
	}
	fd := md.ParentFile()
	text, err := fileSchema(fd)
	if err != nil {
		return sr.Format[T]{}, err
	}
	deps, err := fileDeps(fd, o.registerKnown, 0)
	if err != nil {
		return sr.Format[T]{}, err
	}
	s := &Serializer[T]{Options: o.marshal}
	return sr.Format[T]{
		Schema:       franzsr.Schema{Schema: text, Type: franzsr.TypeProtobuf},
		Dependencies: deps,
		RecordName:   string(md.FullName()),
		Index:        MessageIndex(md),
		AppendEncode: s.appendSized,
		Size:         s.Size,
	}, nil
}

// MessageIndex returns md's index path in its file, as the Confluent wire
// format writes it: the top-level message's position, then the nested
// message's position inside it, and so on.
func MessageIndex(md protoreflect.MessageDescriptor) []int {
	var idx []int
	for d := protoreflect.Descriptor(md); d != nil; d = d.Parent() {
		if _, ok := d.(protoreflect.MessageDescriptor); !ok {
			break
		}
		idx = append(idx, d.Index())
	}
	slices.Reverse(idx)
	return idx
}

func fileSchema(fd protoreflect.FileDescriptor) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(protodesc.ToFileDescriptorProto(fd))
	if err != nil {
		return "", fmt.Errorf("kprod: protobuf: encode descriptor of %q: %w", fd.Path(), err)
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

func fileDeps(fd protoreflect.FileDescriptor, known bool, depth int) ([]sr.Dependency, error) {
	if depth > 32 {
		return nil, fmt.Errorf("kprod: protobuf: imports of %q nested deeper than 32", fd.Path())
	}
	imports := fd.Imports()
	var deps []sr.Dependency
	for i := range imports.Len() {
		imp := imports.Get(i)
		if !known && strings.HasPrefix(imp.Path(), "google/protobuf/") {
			continue
		}
		text, err := fileSchema(imp.FileDescriptor)
		if err != nil {
			return nil, err
		}
		sub, err := fileDeps(imp.FileDescriptor, known, depth+1)
		if err != nil {
			return nil, err
		}
		deps = append(deps, sr.Dependency{
			Name:         imp.Path(),
			Schema:       franzsr.Schema{Schema: text, Type: franzsr.TypeProtobuf},
			Dependencies: sub,
		})
	}
	return deps, nil
}

var _ kafkaproducer.Serializer[proto.Message] = (*Serializer[proto.Message])(nil)
