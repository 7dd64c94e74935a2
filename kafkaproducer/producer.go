package kafkaproducer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Producer sends records to Kafka through one franz-go client. It is safe
// for concurrent use; create one per process (or per cluster) and share it.
type Producer struct {
	cl     *kgo.Client
	cfg    Config
	log    *zap.Logger
	hooks  []Hook
	manual bool // Partitioner is PartitionerManual
	// tally: successes on franz-go's promise goroutine are counted in
	// pend until closing (doneOnRing); see tallySafe.
	tally bool

	// clock stamps records: their send times are monotonic nanoseconds
	// since its epoch, when the producer was built.
	clock sendClock
	// promise is p.deliver, bound once rather than per record.
	promise func(*kgo.Record, error)

	// Close waits, once closing, for finished to reach sent: every
	// record handed to franz-go completed and its callback returned.
	// Senders write sent and the completing goroutine writes finished,
	// each on a cache line of its own, and closing, read on every record
	// and written once, shares neither: a counter both sides wrote, next
	// to closing, cost about 35ns a record in the profile. Successes the
	// promise goroutine completes before closing are counted in pend, a
	// plain field, and added to finished by a promise Close has franz-go
	// run (doneOnRing, flushTally): franz-go calls promises one at a
	// time, so only they touch it, and an atomic add per record cost
	// about 2.5% of a record's CPU.
	_         cacheLinePad
	sent      atomic.Int64
	_         cacheLinePad
	finished  atomic.Int64
	pend      int64
	_         cacheLinePad
	closing   atomic.Bool
	_         cacheLinePad
	drained   chan struct{}
	drainOnce sync.Once

	closeOnce sync.Once
	closeErr  error

	mu          sync.Mutex // guards undelivered
	undelivered []Result

	watch connWatch
	acks  ackClock
}

// New validates cfg and builds a producer. It does not contact the
// cluster; use Ping to check connectivity.
func New(cfg Config) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("kprod").With(zap.String("client_id", cfg.clientID()))
	p := &Producer{
		cfg:     cfg,
		log:     log,
		hooks:   cfg.Hooks,
		drained: make(chan struct{}),
		manual:  cfg.Partitioner == PartitionerManual,
	}
	p.clock.init(time.Now())
	p.promise = p.deliver
	p.watch.p = p
	p.acks.epoch = p.clock.epoch
	opts := append(cfg.kgoOpts(log.Named("kgo")), kgo.WithHooks(&p.watch))
	if cfg.Acks != AcksNone {
		opts = append(opts, kgo.WithHooks(&p.acks))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kprod: build client: %w", err)
	}
	p.cl = cl
	p.tally = tallySafe(cl)
	log.Debug("producer created", zap.Strings("brokers", cfg.Brokers), zap.String("acks", string(cfg.Acks)),
		zap.Bool("idempotent", !cfg.DisableIdempotence), zap.Duration("delivery_timeout", cfg.DeliveryTimeout))
	return p, nil
}

// Config returns the configuration the producer was built with.
func (p *Producer) Config() Config { return p.cfg }

// Client returns the underlying franz-go client, for what kprod does not
// wrap (admin requests through kadm, transactions in package txn). Do not
// close it: Close the Producer.
func (p *Producer) Client() *kgo.Client { return p.cl }

// Logger returns the producer's logger (named "kprod").
func (p *Producer) Logger() *zap.Logger { return p.log }

// pending is one record in flight: franz-go's record plus what kprod needs
// to report it, in one allocation of 176 bytes (franz-go's own record is
// 160). The promise, which franz-go hands &pd.kr, finds the pending
// record from it without a map, a closure or a context lookup
// (pendingAt). The callback and send time come first: franz-go reads the
// head of the record (its key, value and headers) just before calling the
// promise, so they are usually on a cache line already loaded; after the
// record they were on a line of their own for half the records, the
// promise's one cache miss (measured with cachegrind: 0.49 misses a
// record, now 0.20). The record's Context stays the caller's ctx.
type pending struct {
	// cb is the SendAsync or TrySend callback; with startErrOnly it
	// holds SendAsyncErr's func(error) instead (errCb).
	cb func(Result)
	// start is when the record was sent, in monotonic nanoseconds since
	// the producer's epoch; startExt marks a pending that heads a
	// pendingExt.
	start int64
	kr    kgo.Record
}

// The bits of pending.start marking a pendingExt, a typedHead (which is a
// pendingExt too), and a SendAsyncErr record.
const (
	startExt     = int64(1) << 62
	startTyped   = int64(1) << 61
	startErrOnly = int64(1) << 60
	startFlags   = startExt | startTyped | startErrOnly
)

// errCb returns the func(error) SendAsyncErr stored in cb: both func types
// are one pointer to the same kind of closure.
func (pd *pending) errCb() func(error) { return *(*func(error))(unsafe.Pointer(&pd.cb)) }

// pendingExt is a pending with what only some records need: records with
// an explicit partition, and every SendBatch record. Its record's Context
// is the pendingExt itself (wrapping the caller's ctx), so the
// partitioner can tell kprod's explicit partitions from a hand-built
// record's zero Partition (pendingOf).
type pendingExt struct {
	pending
	context.Context
	idx int32 // position in a SendBatch
	// partitions is set by the partitioner when an explicit partition
	// is not in the topic (it holds the topic's partition count).
	partitions int32
	explicit   bool
}

// typedHead heads the pending record of a typed SendAsync or TrySend
// (typedPending in typed.go): its deliver, not pending.cb, receives the
// Result.
type typedHead struct {
	pendingExt
	deliver func(*typedHead, Result)
}

type pendingKey struct{}

// Value lets pendingOf find the pendingExt even when a franz-go hook
// (kotel, say) has wrapped the record's context.
func (px *pendingExt) Value(k any) any {
	if k == (pendingKey{}) {
		return px
	}
	return px.Context.Value(k)
}

// pendingAt returns the pending record whose kgo.Record is r. Only for
// records kprod built: r must be the kr field of a pending.
func pendingAt(r *kgo.Record) *pending {
	return (*pending)(unsafe.Add(unsafe.Pointer(r), -int(unsafe.Offsetof(pending{}.kr))))
}

// ext returns the pendingExt that pd heads, or nil.
func (pd *pending) ext() *pendingExt {
	if pd.start&startExt == 0 {
		return nil
	}
	return (*pendingExt)(unsafe.Pointer(pd)) // pending is pendingExt's first field
}

// check refuses a record before it reaches franz-go. The common record (a
// topic, no partition, no timestamp) passes at once.
func (p *Producer) check(rec *Record) error {
	if rec.Topic != "" && !rec.PartitionSet && rec.Timestamp.IsZero() && !p.manual {
		return nil
	}
	return p.cfg.checkAt(rec, time.Now)
}

// CheckRecord returns the error a Producer with this config refuses rec
// with before sending it, or nil: no topic (ErrNoTopic), a negative
// partition (ErrBadPartition), no partition with PartitionerManual
// (ErrPartitionRequired), a timestamp older than DeliveryTimeout
// (ErrStaleTimestamp, measured from now). For code that sends through a
// client of its own and refuses as a Producer does.
func (c *Config) CheckRecord(rec *Record, now time.Time) error {
	return c.checkAt(rec, func() time.Time { return now })
}

func (c *Config) checkAt(rec *Record, now func() time.Time) error {
	switch {
	case rec.Topic == "":
		return ErrNoTopic
	case rec.PartitionSet && rec.Partition < 0:
		return fmt.Errorf("%w: %d is negative", ErrBadPartition, rec.Partition)
	case c.Partitioner == PartitionerManual && !rec.PartitionSet:
		return ErrPartitionRequired
	case c.DeliveryTimeout > 0 && !rec.Timestamp.IsZero() && now().Sub(rec.Timestamp) >= c.DeliveryTimeout:
		// franz-go measures the delivery timeout from the record's
		// timestamp: this record would time out before being sent.
		return fmt.Errorf("%w: timestamp %s is older than DeliveryTimeout %v; leave Timestamp zero, carry the original time in a header, or raise DeliveryTimeout",
			ErrStaleTimestamp, rec.Timestamp.Format(time.RFC3339Nano), c.DeliveryTimeout)
	}
	return nil
}

// Refuse reports a record that the caller refused before sending it (a
// serialization failure, say) as the producer's own refusals are
// reported: its hooks see it (so metrics count it by class), and the
// returned Result carries err as a *SendError. Nothing is sent.
func (p *Producer) Refuse(rec Record, err error) Result { return p.refuse(rec, err) }

// refuse reports a record that never reached franz-go.
func (p *Producer) refuse(rec Record, err error) Result {
	res := FailedResult(rec, err)
	p.runHooks(res)
	return res
}

func sendError(topic string, partition int32, key []byte, err error) error {
	if se, ok := errors.AsType[*SendError](err); ok {
		return se
	}
	return &SendError{Topic: topic, Partition: partition, Key: key, Class: classify(err), Err: err}
}

func (p *Producer) runHooks(res Result) {
	for _, h := range p.hooks {
		h.OnRecordDone(res)
	}
}

// cacheLinePad keeps the fields around it on separate cache lines.
type cacheLinePad struct{ _ [64]byte }

// begin registers a record as outstanding, or refuses it when the
// producer is closing.
func (p *Producer) begin() error {
	p.sent.Add(1)
	if p.closing.Load() {
		p.done()
		return ErrClosed
	}
	return nil
}

// done ends what begin started. Sequentially consistent atomics make the
// check sound: a sender that missed closing added to sent before Close
// reads it, and a completion that Close's check missed reads closing
// after Close set it.
func (p *Producer) done() {
	n := p.finished.Add(1)
	if p.closing.Load() {
		p.drainedAt(n)
	}
}

// doneOnRing is done for a record completed on franz-go's promise
// goroutine. Until closing it only counts the record in pend, which a
// promise Close has franz-go run adds to finished (flushTally).
func (p *Producer) doneOnRing() {
	if p.tally && !p.closing.Load() {
		p.pend++
		return
	}
	p.done()
}

// flushTally adds pend to finished. Only a promise may call it: Close
// has franz-go run it as the promise of a record that fails before it is
// buffered. Every promise that counted in pend ran before it (it saw
// closing unset, and this one runs after Close set it, in franz-go's
// one-at-a-time order), and every later one calls done itself.
func (p *Producer) flushTally() {
	n := p.finished.Add(p.pend)
	p.pend = 0
	p.drainedAt(n)
}

// tallySafe says whether Close can have franz-go run flushTally as the
// promise of a record with no topic: franz-go fails such a record before
// buffering it, unless a default topic is set (kprod sends no record
// without a topic, so a default is only ever set through Config.Opts);
// and no franz-go record hook should see it (kotel would trace it).
// Otherwise every completion goes straight to finished. The tally relies
// on how franz-go v1.22.3 runs promises (one at a time, in the order
// they are queued, including on a closed client);
// TestTallyWithSendsInFlightAtClose and TestTallyAddsUpAtClose check it.
func tallySafe(cl *kgo.Client) bool {
	if t, _ := cl.OptValue(kgo.DefaultProduceTopic).(string); t != "" {
		return false
	}
	hs, _ := cl.OptValue(kgo.WithHooks).([]kgo.Hook)
	for _, h := range hs {
		switch h.(type) {
		case kgo.HookProduceRecordBuffered, kgo.HookProduceRecordUnbuffered:
			return false
		}
	}
	return true
}

// drainedAt closes drained when n, the records finished, is all of them.
func (p *Producer) drainedAt(n int64) {
	if n == p.sent.Load() {
		p.drainOnce.Do(func() { close(p.drained) })
	}
}

// fill builds pd's record from rec. kr.Context is set by the caller: ctx
// for a plain pending, the pendingExt for an extended one.
func (p *Producer) fill(pd *pending, rec *Record) {
	ts := rec.Timestamp
	if ts.IsZero() {
		// One clock read: the start time is also the record's
		// timestamp, so franz-go does not read the clock again.
		pd.start, ts = p.clock.now()
	} else {
		pd.start = p.clock.since()
	}
	pd.kr = kgo.Record{
		Topic:     rec.Topic,
		Key:       rec.Key,
		Value:     rec.Value,
		Headers:   rec.Headers,
		Timestamp: ts,
		Partition: -1,
	}
}

// newPending builds the pending record of a Send, SendAsync or TrySend.
func (p *Producer) newPending(ctx context.Context, rec *Record) *pending {
	if ctx == nil {
		ctx = context.Background()
	}
	if !rec.PartitionSet {
		pd := new(pending)
		p.fill(pd, rec)
		pd.kr.Context = ctx
		return pd
	}
	px := new(pendingExt)
	p.fillExt(px, ctx, rec)
	return &px.pending
}

func (p *Producer) fillExt(px *pendingExt, ctx context.Context, rec *Record) {
	if ctx == nil {
		// franz-go fills in only a nil record context, and this one
		// is px: its Done must not reach a nil ctx.
		ctx = context.Background()
	}
	p.fill(&px.pending, rec)
	px.start |= startExt
	px.Context = ctx
	px.kr.Context = px
	if rec.PartitionSet {
		px.explicit = true
		px.kr.Partition = rec.Partition
	}
}

// pendingOf finds the pendingExt behind a franz-go record: nil for a
// plain pending and for a record kprod did not send.
func pendingOf(r *kgo.Record) *pendingExt {
	if r.Context == nil {
		return nil
	}
	if px, ok := r.Context.(*pendingExt); ok {
		return px
	}
	px, _ := r.Context.Value(pendingKey{}).(*pendingExt)
	return px
}

// ResultFor builds the Result a Producer with this config reports for a
// franz-go record and the error its produce ended with, for code that
// drives a client from ClientOpts itself (a kgo.GroupTransactSession,
// say) but reports like a Producer: a failure becomes a *SendError with
// its Class; franz-go's timeout, buffer-full and closed errors wrap
// kprod's sentinels; a retriable error that outlived DeliveryTimeout
// wraps ErrDeliveryTimeout; an explicit partition (a record from
// NewKgoRecord) the topic does not have wraps ErrBadPartition. Hooks are
// not run.
func (c *Config) ResultFor(r *kgo.Record, err error, latency time.Duration) Result {
	return c.result(pendingOf(r), r, err, latency)
}

// result is ResultFor with the record's pendingExt (nil for a plain one).
// Like checkAt it takes a pointer: a Producer calls it per record, and a
// Config is too large to copy each time.
func (c *Config) result(px *pendingExt, r *kgo.Record, err error, latency time.Duration) Result {
	res := resultOf(r, latency)
	if px != nil && px.explicit {
		res.Record.Partition, res.Record.PartitionSet = r.Partition, true
	}
	if err == nil {
		return res
	}
	if px != nil && px.partitions > 0 {
		err = fmt.Errorf("%w: partition %d of a topic with %d: %w", ErrBadPartition, r.Partition, px.partitions, err)
	}
	// franz-go fails a record whose delivery timeout passed while
	// waiting on an unreachable cluster with the last connection error;
	// say that it timed out. With unlimited retries nothing else fails a
	// record with a retriable error (franz-go measures the timeout from
	// the first record of a batch, so this record's own latency can fall
	// just short of it).
	if c.DeliveryTimeout > 0 && classify(err) == ClassRetriable && !errors.Is(err, kgo.ErrMaxBuffered) &&
		(c.Retries == 0 || latency >= c.DeliveryTimeout) {
		err = fmt.Errorf("%w after %v: %w", ErrDeliveryTimeout, latency.Round(time.Millisecond), err)
	}
	res.Offset = -1
	res.Err = sendError(r.Topic, r.Partition, r.Key, wrapCause(err))
	return res
}

// NewKgoRecord returns the franz-go record a Producer sends for rec, for
// code that drives a client from ClientOpts itself. Use it rather than
// building the kgo.Record by hand when rec may carry an explicit
// partition: ClientOpts' partitioner pins only records built here (or by
// a Producer) to their Partition, since a hand-built record's zero
// Partition does not say whether it was meant. ctx becomes the record's
// context. Refusals are not checked here: see Config.CheckRecord.
func NewKgoRecord(ctx context.Context, rec Record) *kgo.Record {
	if ctx == nil {
		ctx = context.Background()
	}
	kr := kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp, Partition: -1, Context: ctx}
	if !rec.PartitionSet {
		return &kr
	}
	px := &pendingExt{pending: pending{kr: kr}, Context: ctx, explicit: true}
	px.kr.Partition = rec.Partition
	px.kr.Context = px
	return &px.kr
}

// resultOf is the Result of a record franz-go wrote.
func resultOf(r *kgo.Record, latency time.Duration) Result {
	return Result{
		Record: Record{
			Topic:     r.Topic,
			Key:       r.Key,
			Value:     r.Value,
			Headers:   r.Headers,
			Timestamp: r.Timestamp,
		},
		Partition: r.Partition,
		Offset:    r.Offset,
		Timestamp: r.Timestamp,
		Latency:   latency,
	}
}

// FailedResult is the Result of a record refused before it was sent (by
// code other than a Producer, which has Refuse): err becomes a
// *SendError with its Class.
func FailedResult(rec Record, err error) Result {
	return Result{Record: rec, Partition: -1, Offset: -1, Err: sendError(rec.Topic, -1, rec.Key, err)}
}

// deliver is the franz-go promise of every SendAsync and TrySend record
// (bound once, in New, as p.promise).
func (p *Producer) deliver(r *kgo.Record, err error) {
	pd := pendingAt(r)
	if err != nil || len(p.hooks) > 0 || pd.start&(startExt|startTyped) != 0 {
		p.deliverAny(pd, err)
		return
	}
	// The common success, kept to what it needs: this runs on franz-go's
	// one promise goroutine, which serves every record.
	if pd.start&startErrOnly != 0 {
		pd.errCb()(nil) // SendAsyncErr: no Result to build
	} else {
		pd.cb(resultOf(r, p.acks.since(pd.start))) // built straight into the argument
	}
	p.doneOnRing() // after the callback: Close waits for callbacks too
}

// deliverAny is deliver for any record: hooks to run, a failure, a typed
// or extended pending record.
func (p *Producer) deliverAny(pd *pending, err error) {
	res := p.complete(pd, err)
	switch {
	case pd.start&startTyped != 0:
		h := (*typedHead)(unsafe.Pointer(pd)) // pending heads typedHead
		h.deliver(h, res)
	case pd.start&startErrOnly != 0:
		pd.errCb()(res.Err)
	default:
		pd.cb(res)
	}
	p.done() // after the callback: Close waits for callbacks too
}

// complete turns a finished record into its Result: the error classified
// and wrapped, the record kept for Close's report if closing, the hooks
// run. Every record kprod hands to franz-go passes through here once,
// but for a success without hooks on deliver's short path; the caller
// then calls done, after any callback.
func (p *Producer) complete(pd *pending, err error) Result {
	r := &pd.kr
	var latency time.Duration
	if err == nil {
		latency = p.acks.since(pd.start &^ startFlags)
	} else {
		latency = time.Duration(p.clock.since() - pd.start&^startFlags)
	}
	if err == nil && pd.start&startExt == 0 {
		// The common case, kept short: for SendAsync it runs on
		// franz-go's one promise goroutine, which serves every record.
		res := resultOf(r, latency)
		if len(p.hooks) > 0 {
			p.runHooks(res)
		}
		return res
	}
	if err != nil && errors.Is(err, kgo.ErrAborting) {
		if ce := p.watch.last.Load(); ce != nil {
			err = ce // the authentication or TLS failure behind the abort
		}
	}
	res := p.cfg.result(pd.ext(), r, err, latency)
	if err != nil && p.closing.Load() {
		p.mu.Lock()
		p.undelivered = append(p.undelivered, res)
		p.mu.Unlock()
	}
	p.runHooks(res)
	return res
}

// wrapCause puts kprod's sentinel in front of franz-go's equivalent, so
// callers match one error whatever produced it.
func wrapCause(err error) error {
	switch {
	case errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries):
		return fmt.Errorf("%w: %w", ErrDeliveryTimeout, err)
	case errors.Is(err, kgo.ErrMaxBuffered):
		return fmt.Errorf("%w: %w", ErrBufferFull, err)
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// Send sends one record and waits for its outcome: acknowledged by the
// brokers (as Config.Acks asks) or failed. The error, if any, is a
// *SendError; Classify tells what to do about it.
//
// ctx bounds the wait for buffer space and the record itself: if ctx ends
// before the record is written, the record fails with ctx's error
// (ClassTimeout or ClassCanceled). Once a request carrying the record is
// in flight, the record can only fail on ctx if Config.DeliveryTimeout is
// set (as every preset does); its outcome is then ambiguous. Send never
// returns before the record's outcome is known, so what it returns is
// always the truth.
func (p *Producer) Send(ctx context.Context, rec Record) (Result, error) {
	if err := p.check(&rec); err != nil {
		res := p.refuse(rec, err)
		return res, res.Err
	}
	if err := p.begin(); err != nil {
		res := p.refuse(rec, err)
		return res, res.Err
	}
	pd := p.newPending(ctx, &rec)
	// ProduceSync also stops the partition's linger: a caller waiting
	// on one record should not wait for a batch to fill.
	rs := p.cl.ProduceSync(ctx, &pd.kr)
	res := p.complete(pd, rs[0].Err)
	p.done()
	return res, res.Err
}

// SendAsync hands one record to the producer and returns once it is
// buffered; cb receives its outcome. It returns an error only when it
// refuses the record outright (no topic, a bad partition, a closed
// producer); cb is then not called. Otherwise cb is called exactly once.
//
// cb runs on franz-go's promise goroutine, one callback at a time in
// completion order (per partition, the order records were sent). It must
// not block and must not call Send, Flush or Close: hand slow work to
// another goroutine. cb may be nil.
//
// SendAsync blocks while the buffer is full, as long as ctx allows. ctx
// also stays attached to the record: canceling it fails the record if it
// has not been written yet. Do not pass a request context that ends when
// your handler returns unless that is what you want.
func (p *Producer) SendAsync(ctx context.Context, rec Record, cb func(Result)) error {
	return p.sendAsync(ctx, &rec, cb, 0, true)
}

// TrySend is SendAsync without blocking: when the buffer is full it fails
// at once with ErrBufferFull (ClassRetriable) and cb is not called. A
// record that finds the buffer full in the instant between that check and
// buffering still reaches cb with an error wrapping ErrBufferFull.
func (p *Producer) TrySend(ctx context.Context, rec Record, cb func(Result)) error {
	if p.bufferFull(&rec) {
		res := p.refuse(rec, ErrBufferFull)
		return res.Err
	}
	return p.sendAsync(ctx, &rec, cb, 0, false)
}

// SendAsyncErr is SendAsync for callers that need only each record's
// outcome: cb receives nil once the record is acknowledged, or its error
// (a *SendError, as Result.Err would be). No Result is built for a
// success, which is what a SendAsync callback costs most of on the
// producer's busiest goroutine: use it where records go out in bulk and
// only failures matter, as librdkafka's delivery.report.only.error
// does. Hooks (metrics) still see every record's Result. On a producer
// without hooks, where nothing reads a success's latency, a record with
// no timestamp and no explicit partition sent while such records go out
// at a million a second or more is stamped with no clock read: it takes
// the reading of a ticker that runs only then, renewed every millisecond
// (a few more if the ticker waits for a CPU). The rate is judged over
// 10-100ms, so the first records of a burst still read the clock.
// Everything else is as SendAsync: it blocks while the buffer is full, as
// long as ctx allows; it returns an error only when it refuses the record
// outright, and cb is then not called; otherwise cb is called exactly
// once, on franz-go's promise goroutine, and must not block.
func (p *Producer) SendAsyncErr(ctx context.Context, rec Record, cb func(error)) error {
	return p.sendAsync(ctx, &rec, *(*func(Result))(unsafe.Pointer(&cb)), startErrOnly, true)
}

// The callbacks a nil cb stands for; nopErr is stored as pending.cb is
// (errCb).
var (
	nopResult = func(Result) {}
	nopErr    = func(error) {}
)

// nopCallback is the callback a nil cb of a send with these flags stands
// for.
func nopCallback(flags int64) func(Result) {
	if flags&startErrOnly != 0 {
		return *(*func(Result))(unsafe.Pointer(&nopErr))
	}
	return nopResult
}

func (p *Producer) bufferFull(rec *Record) bool {
	maxRecs := int64(p.cfg.MaxBufferedRecords)
	if maxRecs == 0 {
		maxRecs = 50_000
	}
	if p.cl.BufferedProduceRecords() >= maxRecs {
		return true
	}
	if p.cfg.MaxBufferedBytes > 0 {
		size := int64(len(rec.Key) + len(rec.Value))
		for _, h := range rec.Headers {
			size += int64(len(h.Key) + len(h.Value))
		}
		return p.cl.BufferedProduceBytes()+size > int64(p.cfg.MaxBufferedBytes)
	}
	return false
}

// sendAsync is SendAsync, TrySend and SendAsyncErr (flags is
// startErrOnly, cb its func(error)). The common record (a topic, no
// partition, no timestamp) takes a path written out in this one function:
// it runs for every record, and the calls of the general path cost more
// than what they do here.
func (p *Producer) sendAsync(ctx context.Context, rec *Record, cb func(Result), flags int64, block bool) error {
	if cb == nil {
		cb = nopCallback(flags)
	}
	if rec.Topic == "" || rec.PartitionSet || !rec.Timestamp.IsZero() || p.manual {
		return p.sendAsyncChecked(ctx, rec, cb, flags, block)
	}
	seq := p.sent.Add(1) // begin, written out
	if p.closing.Load() {
		p.done()
		return p.refuse(*rec, ErrClosed).Err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var start int64
	var now time.Time // the send time, and the record's timestamp (see fill)
	if flags&startErrOnly != 0 && len(p.hooks) == 0 {
		// No hook reads this record's latency: the coarse clock will do.
		start, now = p.clock.coarse(seq)
	} else {
		start, now = p.clock.now()
	}
	pd := &pending{
		kr: kgo.Record{Topic: rec.Topic, Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: now, Partition: -1, Context: ctx},
		cb: cb, start: start | flags,
	}
	if block { // produce, written out
		p.cl.Produce(ctx, &pd.kr, p.promise)
	} else {
		p.cl.TryProduce(ctx, &pd.kr, p.promise)
	}
	return nil
}

// sendAsyncChecked is sendAsync for any record (cb is not nil).
func (p *Producer) sendAsyncChecked(ctx context.Context, rec *Record, cb func(Result), flags int64, block bool) error {
	if err := p.check(rec); err != nil {
		return p.refuse(*rec, err).Err
	}
	if err := p.begin(); err != nil {
		return p.refuse(*rec, err).Err
	}
	pd := p.newPending(ctx, rec)
	pd.cb = cb
	pd.start |= flags
	p.produce(ctx, pd, block)
	return nil
}

// sendAsyncTyped is sendAsync for a typed record, whose pending record h
// was allocated with the typed callback (Typed.SendAsync).
func (p *Producer) sendAsyncTyped(ctx context.Context, rec *Record, h *typedHead, block bool) error {
	if err := p.check(rec); err != nil {
		return p.refuse(*rec, err).Err
	}
	if err := p.begin(); err != nil {
		return p.refuse(*rec, err).Err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	p.fillExt(&h.pendingExt, ctx, rec)
	h.start |= startTyped
	p.produce(ctx, &h.pending, block)
	return nil
}

func (p *Producer) produce(ctx context.Context, pd *pending, block bool) {
	if block {
		p.cl.Produce(ctx, &pd.kr, p.promise)
	} else {
		p.cl.TryProduce(ctx, &pd.kr, p.promise)
	}
}

// SendBatch sends records and waits for all of them, returning one Result
// per record in the order given; records refused outright carry their
// error too. Records to the same partition keep their order. ctx applies
// to every record as in Send.
func (p *Producer) SendBatch(ctx context.Context, recs []Record) Results {
	results := make(Results, len(recs))
	pds := make([]pendingExt, len(recs))
	krs := make([]*kgo.Record, 0, len(recs))
	for i := range recs {
		rec := &recs[i]
		if err := p.check(rec); err != nil {
			results[i] = p.refuse(*rec, err)
			continue
		}
		if err := p.begin(); err != nil {
			results[i] = p.refuse(*rec, err)
			continue
		}
		px := &pds[i]
		p.fillExt(px, ctx, rec)
		px.idx = int32(i)
		krs = append(krs, &px.kr)
	}
	if len(krs) == 0 {
		return results
	}
	// Results come back in completion order; each finds its slot.
	for _, r := range p.cl.ProduceSync(ctx, krs...) {
		pd := pendingAt(r.Record)
		results[pd.ext().idx] = p.complete(pd, r.Err)
		p.done()
	}
	return results
}

// Flush sends everything buffered now, without waiting for Linger, and
// waits until every record sent before the call has its outcome, or ctx
// ends (returning ctx's error; records keep going).
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("kprod: flush: %w", err)
	}
	return nil
}

// Ping checks that at least one broker answers a metadata request, for
// readiness probes.
func (p *Producer) Ping(ctx context.Context) error {
	if err := p.cl.Ping(ctx); err != nil {
		return fmt.Errorf("kprod: ping %s (tls %v, sasl %v): %w", strings.Join(p.cfg.Brokers, ","), p.cfg.TLS, p.cfg.SASL, err)
	}
	return nil
}

// Buffered returns the records and bytes waiting for delivery.
func (p *Producer) Buffered() (records, bytes int64) {
	return p.cl.BufferedProduceRecords(), p.cl.BufferedProduceBytes()
}

// CloseError is returned by Close when records could not be delivered
// before ctx ended. Undelivered holds each of them with its error (which
// wraps the cause; records cut off by closing wrap ErrClosed); their
// callbacks and hooks were called too.
type CloseError struct {
	Undelivered Results
	Err         error // why flushing stopped: usually ctx's error
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("kprod: close: %d record(s) not delivered: %v", len(e.Undelivered), e.Err)
}

func (e *CloseError) Unwrap() error { return e.Err }

// Close stops accepting records (later sends fail with ErrClosed), flushes
// what is buffered while ctx allows, then closes the client. Records that
// were not delivered by then fail with ErrClosed (ClassClosed) through
// their callbacks, and are returned in a *CloseError, so nothing is lost
// silently. Close waits for every callback to finish. It is idempotent:
// later calls return the first call's result.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Producer) close(ctx context.Context) error {
	p.closing.Store(true)
	flushErr := p.cl.Flush(ctx)
	if flushErr != nil {
		p.log.Warn("close: flush did not finish; failing undelivered records", zap.Error(flushErr),
			zap.Int64("buffered_records", p.cl.BufferedProduceRecords()))
	}
	p.cl.Close()
	p.watch.stop()
	p.clock.stop()
	if p.tally {
		// Successes counted in pend reach finished in flushTally, run
		// as the promise of a record without a topic: franz-go fails
		// it before buffering, closed client or not.
		ran := make(chan struct{})
		p.cl.Produce(context.Background(), &kgo.Record{}, func(*kgo.Record, error) {
			p.flushTally()
			close(ran)
		})
		<-ran
	}
	if p.finished.Load() == p.sent.Load() {
		p.drainOnce.Do(func() { close(p.drained) })
	}
	<-p.drained
	p.mu.Lock()
	undelivered := p.undelivered
	p.undelivered = nil
	p.mu.Unlock()
	if len(undelivered) == 0 {
		return nil
	}
	if flushErr == nil {
		flushErr = errors.New("records failed while closing")
	}
	return &CloseError{Undelivered: undelivered, Err: flushErr}
}
