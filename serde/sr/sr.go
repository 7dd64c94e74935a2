package sr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	franzsr "github.com/twmb/franz-go/pkg/sr"
	"go.uber.org/zap"
)

// Format says how values of type T are encoded and which schema describes
// them. serde/avro and serde/protobuf build Formats; any other encoding
// (JSON Schema, say) can be described by filling the fields.
type Format[T any] struct {
	// Schema is registered (or looked up) for each subject. Its
	// References are kept; Dependencies are added to them.
	Schema franzsr.Schema
	// Dependencies are schemas Schema references (protobuf imports, say)
	// that must exist in the registry first. Each is registered or looked
	// up once under its own subject.
	Dependencies []Dependency
	// RecordName is the fully qualified record or message name
	// ("com.example.Order"), used by the record-name strategies.
	RecordName string
	// Index is the protobuf message index path written after the schema
	// ID (nil for Avro and JSON).
	Index []int
	// AppendEncode appends the encoding of v (without any header) to dst.
	// Required.
	AppendEncode func(dst []byte, v T) ([]byte, error)
	// Size, if set, returns the exact size AppendEncode will append, so
	// the record's buffer is allocated once at its final size. The
	// Serializer calls it for every value right before AppendEncode, so
	// AppendEncode may reuse what Size cached (protobuf's cached size).
	Size func(v T) int
}

// Dependency is a schema another schema references.
type Dependency struct {
	// Name is the name the referencing schema uses (the import path of a
	// protobuf file, the full name of an Avro type).
	Name string
	// Subject is where the dependency is registered; empty means Name.
	Subject string
	// Schema is the dependency's own schema, registered under Subject
	// (only looked up, with WithAutoRegister(false)) before the schema
	// that references it; references to Dependencies are added to it.
	Schema franzsr.Schema
	// Dependencies are the schemas this one references in turn,
	// registered first, at most 32 levels deep.
	Dependencies []Dependency
}

// Strategy derives the subject a schema is registered under.
type Strategy uint8

// The subject name strategies (Confluent's key.subject.name.strategy and
// value.subject.name.strategy).
const (
	// TopicName: "<topic>-key" or "<topic>-value". The default.
	TopicName Strategy = iota
	// RecordName: the Format's RecordName, whatever the topic.
	RecordName
	// TopicRecordName: "<topic>-<RecordName>".
	TopicRecordName
)

// Option configures a Serializer.
type Option func(*options)

type options struct {
	strategy     Strategy
	autoRegister bool
	timeout      time.Duration
	header       franzsr.SerdeHeader
	log          *zap.Logger
	now          func() time.Time
}

// WithStrategy sets the subject name strategy, overriding the default
// TopicName. RecordName and TopicRecordName need Format.RecordName.
func WithStrategy(s Strategy) Option { return func(o *options) { o.strategy = s } }

// WithAutoRegister chooses between registering the schema (true, the
// default, like Confluent's auto.register.schemas) and only looking it up
// (false: a subject without this schema fails every record until an
// operator registers it).
func WithAutoRegister(on bool) Option { return func(o *options) { o.autoRegister = on } }

// WithTimeout bounds each registry round trip made while serializing a
// record for a subject not yet cached (Serialize has no context). Zero
// means 10s. Warm takes a context instead.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithHeader replaces the Confluent wire-format header (franz-go's
// sr.ConfluentHeader: magic byte 0, big-endian schema ID, protobuf message
// indexes) with another SerdeHeader.
func WithHeader(h franzsr.SerdeHeader) Option { return func(o *options) { o.header = h } }

// WithLogger logs registry look-ups (debug) and failures (warn). Zero
// means zap.NewNop().
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.log = l } }

// Serializer writes values in the Schema Registry wire format: the header
// (magic byte, schema ID, message indexes) then the encoded value. It
// implements kafkaproducer.Serializer[T].
//
// The schema ID of each subject is resolved through the registry the first
// time a topic is seen (or by Warm) and cached for the Serializer's life:
// once warm, Serialize makes no registry call and takes no lock. Failed
// look-ups are not cached; the next record tries again.
//
// A Serializer is safe for concurrent use.
type Serializer[T any] struct {
	cl   *franzsr.Client
	side string
	f    Format[T]
	o    options

	byTopic atomic.Pointer[map[string]*subjectID] // copy on write

	mu        sync.Mutex            // serializes registry calls; guards bySubject
	bySubject map[string]*subjectID // resolved subjects, deps included

	hint atomic.Int64 // last encoded size, for allocation without Size
}

type subjectID struct {
	subject string
	id      int
	version int
	hdr     []byte // the encoded header for this ID, appended to each record
}

// NewSerializer returns a Serializer for the key side (key true) or value
// side of records, using cl to reach the registry. It does not contact the
// registry; use Warm to resolve subjects up front.
func NewSerializer[T any](cl *franzsr.Client, key bool, f Format[T], opts ...Option) (*Serializer[T], error) {
	o := options{autoRegister: true, timeout: 10 * time.Second, header: new(franzsr.ConfluentHeader), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = zap.NewNop()
	}
	if o.timeout <= 0 {
		o.timeout = 10 * time.Second
	}
	switch {
	case cl == nil:
		return nil, &kafkaproducer.ConfigError{Field: "sr.NewSerializer client", Reason: "nil; build one with franz-go sr.NewClient"}
	case f.AppendEncode == nil:
		return nil, &kafkaproducer.ConfigError{Field: "sr.Format.AppendEncode", Reason: "nil; build the Format with serde/avro or serde/protobuf"}
	case f.Schema.Schema == "":
		return nil, &kafkaproducer.ConfigError{Field: "sr.Format.Schema", Reason: "empty schema text"}
	case o.strategy != TopicName && f.RecordName == "":
		return nil, &kafkaproducer.ConfigError{Field: "sr.WithStrategy", Reason: "record-name strategies need Format.RecordName"}
	case o.strategy > TopicRecordName:
		return nil, &kafkaproducer.ConfigError{Field: "sr.WithStrategy", Reason: fmt.Sprintf("unknown strategy %d", o.strategy)}
	}
	side := kafkaproducer.SideValue
	if key {
		side = kafkaproducer.SideKey
	}
	s := &Serializer[T]{cl: cl, side: side, f: f, o: o, bySubject: make(map[string]*subjectID)}
	empty := map[string]*subjectID{}
	s.byTopic.Store(&empty)
	return s, nil
}

// Subject returns the subject the schema for topic is registered under.
func (s *Serializer[T]) Subject(topic string) string {
	switch s.o.strategy {
	case RecordName:
		return s.f.RecordName
	case TopicRecordName:
		return topic + "-" + s.f.RecordName
	default:
		return topic + "-" + s.side
	}
}

// Serialize implements kafkaproducer.Serializer: it appends the header and
// the encoded v to dst. With a nil dst it allocates one buffer of the
// record's size (exactly, when the Format has Size).
func (s *Serializer[T]) Serialize(topic string, v T, dst []byte) ([]byte, error) {
	sid := (*s.byTopic.Load())[topic]
	if sid == nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.o.timeout)
		var err error
		sid, err = s.resolve(ctx, topic)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	switch {
	case s.f.Size != nil && dst == nil:
		dst = make([]byte, 0, len(sid.hdr)+s.f.Size(v))
	case s.f.Size != nil:
		dst = slices.Grow(dst, len(sid.hdr)+s.f.Size(v))
	case dst == nil:
		dst = make([]byte, 0, len(sid.hdr)+int(s.hint.Load()))
	}
	start := len(dst)
	dst = append(dst, sid.hdr...)
	out, err := s.f.AppendEncode(dst, v)
	if err != nil {
		return nil, fmt.Errorf("kprod: encode for subject %q: %w", sid.subject, err)
	}
	if n := int64(len(out) - start - len(sid.hdr)); s.f.Size == nil && n != s.hint.Load() {
		s.hint.Store(n) // only on change: one shared word, written rarely
	}
	return out, nil
}

// ID returns the schema ID cached for topic, and whether there is one.
func (s *Serializer[T]) ID(topic string) (int, bool) {
	sid := (*s.byTopic.Load())[topic]
	if sid == nil {
		return 0, false
	}
	return sid.id, true
}

// Warm resolves the subjects of topics now, so that the first records do
// not wait for the registry (and registry trouble shows at startup). ctx
// bounds the registry calls.
func (s *Serializer[T]) Warm(ctx context.Context, topics ...string) error {
	var errs []error
	for _, t := range topics {
		if _, err := s.resolve(ctx, t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resolve finds or registers the schema for topic's subject and caches it.
func (s *Serializer[T]) resolve(ctx context.Context, topic string) (*subjectID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sid := (*s.byTopic.Load())[topic]; sid != nil {
		return sid, nil
	}
	subject := s.Subject(topic)
	sid := s.bySubject[subject]
	if sid == nil {
		schema := s.f.Schema
		refs, err := s.resolveDeps(ctx, s.f.Dependencies, 0)
		if err != nil {
			return nil, err
		}
		if len(refs) > 0 {
			schema.References = append(append([]franzsr.SchemaReference(nil), schema.References...), refs...)
		}
		sid, err = s.lookup(ctx, subject, schema, false)
		if err != nil {
			return nil, err
		}
		hdr, err := s.o.header.AppendEncode(nil, sid.id, s.f.Index)
		if err != nil {
			return nil, fmt.Errorf("kprod: schema registry: header for subject %q id %d: %w", subject, sid.id, err)
		}
		sid.hdr = hdr
		s.bySubject[subject] = sid
	}
	old := *s.byTopic.Load()
	next := make(map[string]*subjectID, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[topic] = sid
	s.byTopic.Store(&next)
	return sid, nil
}

const maxDepDepth = 32

func (s *Serializer[T]) resolveDeps(ctx context.Context, deps []Dependency, depth int) ([]franzsr.SchemaReference, error) {
	if depth > maxDepDepth {
		return nil, fmt.Errorf("kprod: schema registry: dependencies nested deeper than %d (a cycle?)", maxDepDepth)
	}
	var refs []franzsr.SchemaReference
	for _, d := range deps {
		subject := d.Subject
		if subject == "" {
			subject = d.Name
		}
		sid := s.bySubject[subject]
		if sid == nil {
			schema := d.Schema
			sub, err := s.resolveDeps(ctx, d.Dependencies, depth+1)
			if err != nil {
				return nil, err
			}
			if len(sub) > 0 {
				schema.References = append(append([]franzsr.SchemaReference(nil), schema.References...), sub...)
			}
			if sid, err = s.lookup(ctx, subject, schema, true); err != nil {
				return nil, err
			}
			s.bySubject[subject] = sid
		}
		refs = append(refs, franzsr.SchemaReference{Name: d.Name, Subject: subject, Version: sid.version})
	}
	return refs, nil
}

// lookup registers schema under subject (or only looks it up), returning
// its ID, and its version if needVersion (references need it).
func (s *Serializer[T]) lookup(ctx context.Context, subject string, schema franzsr.Schema, needVersion bool) (*subjectID, error) {
	start := s.o.now()
	var (
		ss  franzsr.SubjectSchema
		err error
		op  = "look up"
	)
	if s.o.autoRegister {
		op = "register"
		var id int
		id, err = s.cl.RegisterSchema(ctx, subject, schema, -1, -1)
		ss.ID = id
		if err == nil && needVersion {
			// Registering returns only the ID; the version (needed
			// for references) comes from a look-up, cold path only.
			ss, err = s.cl.LookupSchema(ctx, subject, schema)
			if err == nil && ss.ID != id {
				err = fmt.Errorf("registry returned id %d on register and %d on look-up", id, ss.ID)
			}
		}
	} else {
		ss, err = s.cl.LookupSchema(ctx, subject, schema)
	}
	if err != nil {
		s.o.log.Warn("schema registry call failed", zap.String("op", op), zap.String("subject", subject), zap.Error(err))
		return nil, fmt.Errorf("kprod: schema registry: %s subject %q: %w", op, subject, classifyRegistry(err))
	}
	s.o.log.Debug("schema resolved", zap.String("op", op), zap.String("subject", subject),
		zap.Int("id", ss.ID), zap.Int("version", ss.Version), zap.Duration("took", s.o.now().Sub(start)))
	return &subjectID{subject: subject, id: ss.ID, version: ss.Version}, nil
}

// classifyRegistry gives registry answers the class they deserve: a
// registry that is overloaded or failing (429, 5xx) is retriable, one that
// refuses our credentials (401, 403) is an authorization problem, and
// every other answer (an unknown or incompatible schema) is left to be
// bad input.
func classifyRegistry(err error) error {
	re, ok := errors.AsType[*franzsr.ResponseError](err)
	if !ok {
		return err
	}
	switch {
	case re.StatusCode == http.StatusTooManyRequests || re.StatusCode >= 500:
		return kafkaproducer.WithClass(kafkaproducer.ClassRetriable, err)
	case re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden:
		return kafkaproducer.WithClass(kafkaproducer.ClassAuthorization, err)
	}
	return err
}

var _ kafkaproducer.Serializer[int] = (*Serializer[int])(nil)
