package kafkaproducer

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// The sides of a record a serializer can fail on, as BadInputError.Side.
const (
	SideKey   = "key"
	SideValue = "value"
)

// RecordSender is what a Typed producer sends through: *Producer, or a
// transaction from package txn, or anything else with these methods and
// their contracts (SendAsync calls cb exactly once unless it returns an
// error, and then never).
//
// If the sender also has SendBatch(ctx, []Record) Results, Typed.SendBatch
// uses it; otherwise it sends each record with SendAsync and waits. If it
// has TrySend(ctx, Record, func(Result)) error, Typed.TrySend uses it;
// otherwise Typed.TrySend refuses every record.
type RecordSender interface {
	Send(ctx context.Context, rec Record) (Result, error)
	SendAsync(ctx context.Context, rec Record, cb func(Result)) error
}

type batchSender interface {
	SendBatch(ctx context.Context, recs []Record) Results
}

type trySender interface {
	TrySend(ctx context.Context, rec Record, cb func(Result)) error
}

var (
	_ RecordSender = (*Producer)(nil)
	_ batchSender  = (*Producer)(nil)
	_ trySender    = (*Producer)(nil)
)

// TypedRecord is a record whose key and value are still Go values. Typed
// serializes them when the record is sent.
//
// A key or value whose type can be nil (pointer, map, slice, interface,
// func, chan) and is nil is sent as nil bytes without calling the
// serializer: a nil key is "no key", a nil value is a tombstone (a delete
// marker on compacted topics; consumers read a null value). NoKey and
// Tombstone do the same for types that cannot be nil.
type TypedRecord[K, V any] struct {
	Topic string
	Key   K
	Value V
	// NoKey sends the record without a key, whatever Key holds.
	NoKey bool
	// Tombstone sends the record with a nil value (a tombstone), whatever
	// Value holds.
	Tombstone bool
	Headers   []Header
	// Timestamp is the record's time; zero means the time of the send.
	Timestamp time.Time
	// Partition is used only when PartitionSet is true.
	Partition    int32
	PartitionSet bool
}

// TypedResult is the outcome of a typed record: the bytes Result (what was
// sent, where it was written, or the error) and the typed record it came
// from.
type TypedResult[K, V any] struct {
	Result
	Typed TypedRecord[K, V]
}

// Typed sends TypedRecords through a RecordSender, serializing keys with
// one Serializer and values with another. It owns nothing: several Typed
// producers (with different types or serializers) can share one Producer,
// and closing is the Producer's business.
//
// A record that fails to serialize never reaches the sender (nor its
// hooks): the call fails with a *SendError whose Err is a *BadInputError
// naming the topic, the side ("key" or "value") and the serializer's
// error. Its class is ClassBadInput, except when the serializer's error
// is itself retriable, a timeout or a cancellation (a schema registry
// that could not be reached, the caller's context): then it keeps that
// class, since the record is not at fault.
//
// Typed is safe for concurrent use if its serializers are.
type Typed[K, V any] struct {
	s      RecordSender
	ks     Serializer[K]
	vs     Serializer[V]
	keyNil func(K) bool
	valNil func(V) bool
}

// NewTyped returns a typed producer over s (usually a *Producer). It
// fails with a *ConfigError if an argument is nil.
func NewTyped[K, V any](s RecordSender, keys Serializer[K], values Serializer[V]) (*Typed[K, V], error) {
	switch {
	case isNilAny(s):
		return nil, &ConfigError{Field: "NewTyped sender", Reason: "nil; pass a *Producer or a transaction"}
	case isNilAny(keys):
		return nil, &ConfigError{Field: "NewTyped key serializer", Reason: "nil; use BytesSerializer{} for []byte keys"}
	case isNilAny(values):
		return nil, &ConfigError{Field: "NewTyped value serializer", Reason: "nil; use BytesSerializer{} for []byte values"}
	}
	return &Typed[K, V]{s: s, ks: keys, vs: values, keyNil: nilCheck[K](), valNil: nilCheck[V]()}, nil
}

// Sender returns the sender t sends through.
func (t *Typed[K, V]) Sender() RecordSender { return t.s }

// Encode serializes rec into the Record Send would hand to the sender,
// without sending it (for outboxes, spools, dead-letter paths and tests).
// It fails as Send does.
func (t *Typed[K, V]) Encode(rec TypedRecord[K, V]) (Record, error) {
	out := Record{
		Topic:        rec.Topic,
		Headers:      rec.Headers,
		Timestamp:    rec.Timestamp,
		Partition:    rec.Partition,
		PartitionSet: rec.PartitionSet,
	}
	if !rec.NoKey && (t.keyNil == nil || !t.keyNil(rec.Key)) {
		k, err := t.ks.Serialize(rec.Topic, rec.Key, nil)
		if err != nil {
			return out, serializeError(rec.Topic, SideKey, nil, err)
		}
		out.Key = k
	}
	if !rec.Tombstone && (t.valNil == nil || !t.valNil(rec.Value)) {
		v, err := t.vs.Serialize(rec.Topic, rec.Value, nil)
		if err != nil {
			return out, serializeError(rec.Topic, SideValue, out.Key, err)
		}
		out.Value = v
	}
	return out, nil
}

func serializeError(topic, side string, key []byte, err error) error {
	class := ClassBadInput
	switch c := Classify(err); c {
	case ClassRetriable, ClassTimeout, ClassCanceled, ClassAuthorization:
		class = c
	}
	return &SendError{
		Topic:     topic,
		Partition: -1,
		Key:       key,
		Class:     class,
		Err:       &BadInputError{Topic: topic, Side: side, Err: err},
	}
}

// refuse reports a record that failed to serialize: through a Producer's
// hooks, so metrics count it as bad input.
func (t *Typed[K, V]) refuse(rec Record, err error) Result {
	if p, ok := t.s.(*Producer); ok {
		return p.refuse(rec, err)
	}
	return failedResult(rec, err)
}

// Send serializes rec and sends it as the sender's Send does, waiting for
// its outcome. A serialization failure returns at once, before anything
// is sent.
func (t *Typed[K, V]) Send(ctx context.Context, rec TypedRecord[K, V]) (Result, error) {
	r, err := t.Encode(rec)
	if err != nil {
		res := t.refuse(r, err)
		return res, res.Err
	}
	return t.s.Send(ctx, r)
}

// SendAsync serializes rec and hands it to the sender's SendAsync. It
// returns an error (and cb is not called) when serialization fails or
// the sender refuses the record; otherwise cb is called exactly once,
// with the typed record alongside its Result, on the goroutine the
// sender completes records on (for a Producer, franz-go's promise
// goroutine: cb must not block). cb may be nil.
func (t *Typed[K, V]) SendAsync(ctx context.Context, rec TypedRecord[K, V], cb func(TypedResult[K, V])) error {
	r, err := t.Encode(rec)
	if err != nil {
		return t.refuse(r, err).Err
	}
	if p, ok := t.s.(*Producer); ok && cb != nil {
		return p.sendAsync(ctx, newTypedPending(rec, cb), &r, true)
	}
	return t.s.SendAsync(ctx, r, wrapCallback(rec, cb))
}

// TrySend is SendAsync without blocking for buffer space, as
// Producer.TrySend (ErrBufferFull when the buffer is full). If the sender
// has no TrySend method, every record is refused with an error saying so.
func (t *Typed[K, V]) TrySend(ctx context.Context, rec TypedRecord[K, V], cb func(TypedResult[K, V])) error {
	ts, ok := t.s.(trySender)
	if !ok {
		return fmt.Errorf("kprod: TrySend: %T has no TrySend method; use SendAsync", t.s)
	}
	r, err := t.Encode(rec)
	if err != nil {
		return t.refuse(r, err).Err
	}
	if p, ok := t.s.(*Producer); ok && cb != nil {
		return p.sendAsync(ctx, newTypedPending(rec, cb), &r, false)
	}
	return ts.TrySend(ctx, r, wrapCallback(rec, cb))
}

// typedPending is a typed SendAsync's record in flight: the producer's
// pending record with the typed record and callback, in one allocation,
// where a callback adapter would need a closure per record.
type typedPending[K, V any] struct {
	pending
	rec TypedRecord[K, V]
	cb  func(TypedResult[K, V])
}

func newTypedPending[K, V any](rec TypedRecord[K, V], cb func(TypedResult[K, V])) *pending {
	tp := &typedPending[K, V]{rec: rec, cb: cb}
	tp.recv = tp
	return &tp.pending
}

func (tp *typedPending[K, V]) receive(res Result) {
	tp.cb(TypedResult[K, V]{Result: res, Typed: tp.rec})
}

func wrapCallback[K, V any](rec TypedRecord[K, V], cb func(TypedResult[K, V])) func(Result) {
	if cb == nil {
		return nil
	}
	return func(res Result) { cb(TypedResult[K, V]{Result: res, Typed: rec}) }
}

// SendBatch serializes and sends recs, waiting for all of them, and
// returns one Result per record in the order given. Records that fail to
// serialize carry their error and are not sent; the others are sent as
// the sender's SendBatch does (records to one partition keep their
// order).
func (t *Typed[K, V]) SendBatch(ctx context.Context, recs []TypedRecord[K, V]) Results {
	out := make(Results, len(recs))
	enc := make([]Record, 0, len(recs))
	var idx []int // positions of enc in recs, only once a record failed
	for i := range recs {
		r, err := t.Encode(recs[i])
		if err != nil {
			out[i] = t.refuse(r, err)
			if idx == nil {
				idx = make([]int, len(enc), len(recs))
				for j := range idx {
					idx[j] = j
				}
			}
			continue
		}
		enc = append(enc, r)
		if idx != nil {
			idx = append(idx, i)
		}
	}
	if len(enc) == 0 {
		return out
	}
	var sent Results
	if bs, ok := t.s.(batchSender); ok {
		sent = bs.SendBatch(ctx, enc)
	} else {
		sent = sendEachAsync(ctx, t.s, enc)
	}
	if idx == nil {
		return sent
	}
	for j, res := range sent {
		out[idx[j]] = res
	}
	return out
}

// sendEachAsync is SendBatch for senders without one.
func sendEachAsync(ctx context.Context, s RecordSender, recs []Record) Results {
	out := make(Results, len(recs))
	var wg sync.WaitGroup
	for i := range recs {
		wg.Add(1)
		if err := s.SendAsync(ctx, recs[i], func(res Result) {
			out[i] = res
			wg.Done()
		}); err != nil {
			out[i] = Result{Record: recs[i], Partition: -1, Offset: -1, Err: err}
			wg.Done()
		}
	}
	wg.Wait()
	return out
}

// nilCheck returns a function reporting whether a T is nil, or nil when T
// can never be nil (so the hot path pays nothing for value types).
func nilCheck[T any]() func(T) bool {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan, reflect.UnsafePointer, reflect.Interface:
		// v does not escape (reflect.ValueOf keeps it on the stack),
		// so boxing it allocates nothing.
		return func(v T) bool { return isNilAny(v) }
	}
	return nil
}

func isNilAny(x any) bool {
	if x == nil {
		return true
	}
	v := reflect.ValueOf(x)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}
