package kafkaproducer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Producer sends records to Kafka through one franz-go client. It is safe
// for concurrent use; create one per process (or per cluster) and share it.
type Producer struct {
	cl    *kgo.Client
	cfg   Config
	log   *zap.Logger
	hooks []Hook
	// ackHooks holds hooks[i] as an AckHook, or nil where it is not
	// one; allAck says every hook is one (or there are none).
	ackHooks []AckHook
	allAck   bool
	manual   bool      // Partitioner is PartitionerManual
	clock    clock     // time.Now outside tests
	epoch    time.Time // a reading of clock; pending.start counts from it
	gate     *gate
	promise  func(*kgo.Record, error) // p.deliver, bound once rather than per record

	closing     atomic.Bool
	mu          sync.Mutex // guards undelivered
	undelivered []Result
	closeOnce   sync.Once
	closeErr    error

	watch connWatch
	acks  ackClock
}

// clock tells the time; tests replace it (zapcore.Clock is the model).
type clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// defaultMaxBufferedRecords is MaxBufferedRecords when it is zero
// (franz-go's own default).
const defaultMaxBufferedRecords = 50_000

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
	maxRecords := int64(cfg.MaxBufferedRecords)
	if maxRecords == 0 {
		maxRecords = defaultMaxBufferedRecords
	}
	p := &Producer{
		cfg:    cfg,
		log:    log,
		hooks:  slices.Clone(cfg.Hooks), // ackHooks matches it, whatever the caller does with cfg
		manual: cfg.Partitioner == PartitionerManual,
		clock:  systemClock{},
		gate:   newGate(maxRecords, int64(cfg.MaxBufferedBytes)),
	}
	p.allAck = true
	for _, h := range p.hooks {
		a, ok := h.(AckHook)
		p.ackHooks = append(p.ackHooks, a)
		p.allAck = p.allAck && ok
	}
	p.epoch = p.clock.Now()
	p.promise = p.deliver
	p.watch.p = p
	p.acks.p = p
	opts := cfg.kgoOpts(log.Named("kgo"))
	if cfg.Acks != AcksNone {
		opts = append(opts, kgo.WithHooks(&p.acks))
	}
	// The gate bounds the buffer (see gate): franz-go's own limits only
	// back it up, one record over it while a promise finishes, and are
	// never what a send waits on.
	opts = append(opts, kgo.WithHooks(&p.watch), kgo.MaxBufferedRecords(int(maxRecords)+1), kgo.MaxBufferedBytes(0))
	opts = append(opts, cfg.Opts...)
	newClient := kgo.NewClient
	if cfg.NewClient != nil {
		newClient = cfg.NewClient
	}
	cl, err := newClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kprod: build client: %w", err)
	}
	p.cl = cl
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

// Send sends one record and waits for its outcome: acknowledged by the
// brokers (as Config.Acks asks) or failed. The error, if any, is a
// *SendError; Classify tells what to do about it.
//
// ctx bounds the caller's wait, never the record: if ctx ends before the
// record is buffered (while Send waits for buffer space), the record is
// not sent and Send returns ctx's error. If ctx ends after that, Send
// returns at once with an error wrapping ErrOutcomeUnknown and ctx's error
// (ClassCanceled or ClassTimeout), while the record goes on: its real
// outcome reaches the hooks (metrics), and Close waits for it. Only the
// hooks see that outcome; to act on it, use SendAsync with a ctx that
// bounds only the wait for buffer space. ctx's values (trace spans)
// travel with the record.
func (p *Producer) Send(ctx context.Context, rec Record) (Result, error) {
	ctx = orBackground(ctx)
	pd := new(pending)
	if err := p.admit(ctx, pd, &rec, true); err != nil {
		return failedResult(rec, err), err
	}
	if ctx.Done() == nil {
		res := p.produceSync(pd)
		return res, res.Err
	}
	// A goroutine waits for the record so that Send can stop waiting
	// on ctx; it ends with the record, which Close waits for.
	out := make(chan Result, 1)
	go func() { out <- p.produceSync(pd) }()
	select {
	case res := <-out:
		return res, res.Err
	case <-ctx.Done():
		res := p.unknownResult(ctx, &rec, p.startTime(pd))
		return res, res.Err
	}
}

// produceSync sends one admitted record and waits for its outcome.
// ProduceSync, unlike Produce, also cuts the partition's linger short: a
// caller waiting on one record should not wait for a batch to fill.
func (p *Producer) produceSync(pd *pending) Result {
	rs := p.cl.ProduceSync(pd, &pd.kr)
	var res Result
	p.complete(&res, pd, rs[0].Err)
	p.gate.release(1, int64(pd.size))
	return res
}

// SendAsync hands one record to the producer and returns once it is
// buffered; cb receives its outcome. It returns an error only when it
// refuses the record outright (no topic, a bad partition, a closed
// producer, ctx ended before the record was buffered); cb is then not
// called. Otherwise cb is called exactly once.
//
// cb runs on franz-go's promise goroutine, one callback at a time in
// completion order (per partition, the order records were sent). It must
// not block and must not call Send, Flush or Close: hand slow work to
// another goroutine. cb may be nil.
//
// SendAsync blocks while the buffer is full (MaxBufferedRecords,
// MaxBufferedBytes), as long as ctx allows. Once the record is buffered,
// ctx no longer matters: ending it neither withdraws this record nor
// affects any other. A request context that ends when a handler returns
// is fine to pass; its values (trace spans) travel with the record.
func (p *Producer) SendAsync(ctx context.Context, rec Record, cb func(Result)) error {
	pd := &pending{}
	if cb != nil {
		pd.recv = resultFunc(cb)
	}
	return p.sendAsync(ctx, pd, &rec, true)
}

// SendAsyncErr is SendAsync for callers that need only each record's
// outcome: cb receives nil once the record is acknowledged, or its error
// (a *SendError, as Result.Err would be). On a producer whose hooks are
// all AckHooks (metrics.Instrument's is) or that has none, no Result is
// built for a success (nor for any send with a nil callback): use it where
// records go out in bulk and only failures matter, as librdkafka's
// delivery.report.only.error does. Hooks still see every record.
// Everything else is as SendAsync.
func (p *Producer) SendAsyncErr(ctx context.Context, rec Record, cb func(error)) error {
	pd := &pending{}
	if cb != nil {
		pd.recv = errFunc(cb)
	}
	return p.sendAsync(ctx, pd, &rec, true)
}

// TrySend is SendAsync without blocking: when the buffer is full it fails
// at once with ErrBufferFull (ClassRetriable) and cb is not called.
func (p *Producer) TrySend(ctx context.Context, rec Record, cb func(Result)) error {
	pd := &pending{}
	if cb != nil {
		pd.recv = resultFunc(cb)
	}
	return p.sendAsync(ctx, pd, &rec, false)
}

// sendAsync is SendAsync, SendAsyncErr, TrySend and their typed forms: pd
// carries the callback.
func (p *Producer) sendAsync(ctx context.Context, pd *pending, rec *Record, block bool) error {
	if err := p.admit(orBackground(ctx), pd, rec, block); err != nil {
		return err
	}
	p.cl.Produce(pd, &pd.kr, p.promise)
	return nil
}

// admit checks a record and takes its room in the buffer, filling pd. It
// returns the refused record's *SendError when the record may not be
// sent: a check failed, ctx ended first, there is no room (and block is
// false), or the producer is closing. The refusal runs the hooks.
func (p *Producer) admit(ctx context.Context, pd *pending, rec *Record, block bool) error {
	size, err := p.vet(rec)
	if err == nil {
		err = p.reserve(ctx, 1, size, block)
	}
	if err != nil {
		return p.refuse(*rec, err).Err
	}
	pd.size = int32(size) // vet refuses what does not fit
	p.fill(pd, ctx, rec)
	return nil
}

// vet checks a record (check, checkSize) and returns the size it takes in
// the buffer.
func (p *Producer) vet(rec *Record) (int64, error) {
	size := userSize(rec.Key, rec.Value, rec.Headers)
	if err := p.check(rec); err != nil {
		return size, err
	}
	return size, p.checkSize(size)
}

// reserve takes room for n records of size bytes in the buffer, unless
// ctx has already ended or ends first: the records are then not sent.
func (p *Producer) reserve(ctx context.Context, n, size int64, block bool) error {
	if ctx.Err() != nil {
		return notSent(ctx)
	}
	err := p.gate.take(ctx, n, size, block)
	if err != nil && ctx.Err() != nil {
		return notSent(ctx)
	}
	return err
}

// notSent is the error of a record withdrawn because its ctx ended
// before it was buffered.
func notSent(ctx context.Context) error {
	return fmt.Errorf("record not sent: %w", context.Cause(ctx))
}

// fill builds pd's franz-go record from rec (pd.size is already set).
// pd is new (zeroed); it becomes the record's context, and the context it
// is produced with (see pending).
func (p *Producer) fill(pd *pending, ctx context.Context, rec *Record) {
	pd.parent = ctx
	now := p.clock.Now()
	pd.start = int64(now.Sub(p.epoch))
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = now
	}
	// Field by field into the zeroed pending: a kgo.Record literal is
	// built aside and copied in, 160 bytes per record.
	r := &pd.kr
	r.Topic, r.Key, r.Value, r.Headers = rec.Topic, rec.Key, rec.Value, rec.Headers
	r.Timestamp, r.Partition, r.Context = ts, -1, pd
	if rec.PartitionSet {
		pd.explicit = -1
		pd.kr.Partition = rec.Partition
	}
}

// sinceEpoch reads the clock: monotonic nanoseconds since the epoch.
func (p *Producer) sinceEpoch() int64 { return int64(p.clock.Now().Sub(p.epoch)) }

// startTime is when pd's record was sent.
func (p *Producer) startTime(pd *pending) time.Time {
	return p.epoch.Add(time.Duration(pd.start))
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

// check refuses a record before it reaches franz-go. The common record (a
// topic, no partition, no timestamp) passes at once.
func (p *Producer) check(rec *Record) error {
	if rec.Topic != "" && !rec.PartitionSet && rec.Timestamp.IsZero() && !p.manual {
		return nil
	}
	return p.cfg.checkRecord(rec, p.clock.Now())
}

// checkSize refuses a record that could never fit in the buffer.
func (p *Producer) checkSize(size int64) error {
	if size > math.MaxInt32 {
		return fmt.Errorf("%w: the record's key, value and headers are %d bytes, more than a Kafka record can hold", kerr.MessageTooLarge, size)
	}
	if p.gate.maxBytes > 0 && size > p.gate.maxBytes {
		return fmt.Errorf("%w: the record's key, value and headers are %d bytes, more than MaxBufferedBytes (%d) lets the producer hold; raise MaxBufferedBytes or send a smaller record",
			kerr.MessageTooLarge, size, p.gate.maxBytes)
	}
	return nil
}

// checkRecord returns the error a Producer with this config refuses rec
// with before sending it, or nil.
func (c *Config) checkRecord(rec *Record, now time.Time) error {
	switch {
	case rec.Topic == "":
		return ErrNoTopic
	case rec.PartitionSet && rec.Partition < 0:
		return fmt.Errorf("%w: %d is negative", ErrBadPartition, rec.Partition)
	case c.Partitioner == PartitionerManual && !rec.PartitionSet:
		return ErrPartitionRequired
	case c.DeliveryTimeout > 0 && !rec.Timestamp.IsZero() && now.Sub(rec.Timestamp) >= c.DeliveryTimeout:
		// franz-go measures the delivery timeout from the record's
		// timestamp: this record would time out before being sent.
		return fmt.Errorf("%w: timestamp %s is older than DeliveryTimeout %v; leave Timestamp zero, carry the original time in a header, or raise DeliveryTimeout",
			ErrStaleTimestamp, rec.Timestamp.Format(time.RFC3339Nano), c.DeliveryTimeout)
	}
	return nil
}

// refuse reports a record that never reached franz-go: its hooks see it
// (so metrics count it by class).
func (p *Producer) refuse(rec Record, err error) Result {
	res := failedResult(rec, err)
	p.runHooks(&res)
	return res
}

// failedResult is the Result of a record that was not sent.
func failedResult(rec Record, err error) Result {
	return Result{Record: rec, Partition: -1, Offset: -1, Err: sendError(rec.Topic, -1, rec.Key, err)}
}

// unknownResult is what Send and SendBatch return for a record still in
// flight when the caller's ctx ended. It is built from the caller's copy
// of the record: franz-go may be writing to the one in flight.
func (p *Producer) unknownResult(ctx context.Context, rec *Record, start time.Time) Result {
	if rec.Timestamp.IsZero() {
		rec.Timestamp = start
	}
	err := fmt.Errorf("%w: %w", ErrOutcomeUnknown, context.Cause(ctx))
	if ce := p.watch.lastDial.Load(); ce != nil {
		// Say what the producer could not reach, and why.
		err = fmt.Errorf("%w; meanwhile %w", err, ce)
	}
	res := failedResult(*rec, err)
	res.Latency = p.clock.Now().Sub(start)
	return res
}

func sendError(topic string, partition int32, key []byte, err error) error {
	if se, ok := errors.AsType[*SendError](err); ok {
		return se
	}
	return &SendError{Topic: topic, Partition: partition, Key: key, Class: classify(err), Err: err}
}

// runHooks tells the hooks of a record's Result: an AckHook of a success
// through OnRecordAcked.
func (p *Producer) runHooks(res *Result) {
	for i, h := range p.hooks {
		if a := p.ackHooks[i]; a != nil && res.Err == nil {
			a.OnRecordAcked(AckedRecord{Topic: res.Record.Topic, Partition: res.Partition, Offset: res.Offset, Latency: res.Latency})
		} else {
			h.OnRecordDone(*res)
		}
	}
}

// deliver is the franz-go promise of every SendAsync, SendAsyncErr and
// TrySend record (bound once, in New, as p.promise).
func (p *Producer) deliver(r *kgo.Record, err error) {
	pd := pendingOf(r)
	if pd == nil {
		// Every record kprod produces with this promise has its
		// pending record as its context; anything else is a bug that
		// must not pass unnoticed (franz-go's Record.Recycle is the
		// model).
		panic(fmt.Sprintf("kprod: promise called for a record kprod did not send (topic %q)", r.Topic))
	}
	f, isErr := pd.recv.(errFunc)
	if err == nil && p.allAck && (isErr || pd.recv == nil) {
		// Nobody reads a Result: build none.
		if len(p.ackHooks) > 0 {
			r := &pd.kr
			ack := AckedRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Latency: p.acks.latency(pd.start)}
			for _, h := range p.ackHooks {
				h.OnRecordAcked(ack)
			}
		}
		if isErr {
			f(nil)
		}
	} else {
		// One Result, built in place and copied once per hook and
		// once to the callback: it is 184 bytes, and each copy costs
		// franz-go's one promise goroutine time per record.
		var res Result
		p.complete(&res, pd, err)
		switch recv := pd.recv.(type) {
		case errFunc:
			recv(res.Err)
		case resultFunc:
			recv(res)
		case nil:
		default:
			recv.receive(res)
		}
	}
	p.gate.release(1, int64(pd.size)) // after the callback: Close waits for callbacks too
}

// complete turns a finished record into its Result, in res: the error
// classified and wrapped, the record kept for Close's report if closing,
// the hooks run. Every record kprod hands to franz-go passes through here
// once but a success without a Result callback (SendAsyncErr, or a send
// with a nil callback) when every hook is an AckHook: deliver tells those
// hooks itself. The caller then releases the record, after any callback.
func (p *Producer) complete(res *Result, pd *pending, err error) {
	var latency time.Duration
	if err == nil {
		latency = p.acks.latency(pd.start) // no clock read per record
	} else {
		latency = time.Duration(p.sinceEpoch() - pd.start)
	}
	if err != nil && errors.Is(err, kgo.ErrAborting) {
		if ce := p.watch.last.Load(); ce != nil {
			err = ce // the authentication or TLS failure behind the abort
		}
	}
	p.cfg.result(res, pd, err, latency)
	if err != nil && p.closing.Load() {
		p.mu.Lock()
		p.undelivered = append(p.undelivered, *res)
		p.mu.Unlock()
	}
	p.runHooks(res)
}

// result fills res with the Result of a record franz-go finished: a failure
// becomes a *SendError with its Class; franz-go's timeout, buffer-full and
// closed errors wrap kprod's sentinels; a retriable error that outlived
// DeliveryTimeout wraps ErrDeliveryTimeout; an explicit partition the
// topic does not have wraps ErrBadPartition.
func (c *Config) result(res *Result, pd *pending, err error, latency time.Duration) {
	r := &pd.kr
	*res = Result{
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
	if pd.explicit != 0 {
		res.Record.Partition, res.Record.PartitionSet = r.Partition, true
	}
	if err == nil {
		return
	}
	if pd.explicit > 0 {
		err = fmt.Errorf("%w: partition %d of a topic with %d: %w", ErrBadPartition, r.Partition, pd.explicit, err)
	}
	err = c.explain(r, err)
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
	// Not written (or not known to be): Partition and Offset say so,
	// the SendError names the partition it was going to.
	res.Partition, res.Offset = -1, -1
	res.Err = sendError(r.Topic, r.Partition, r.Key, wrapCause(err))
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

// SendBatch sends records and waits for all of them, returning one Result
// per record in the order given; records refused outright carry their
// error too. Records to the same partition keep their order. ctx works as
// in Send: records not yet buffered when it ends are not sent (their
// error wraps ctx's), records already buffered or in flight carry
// ErrOutcomeUnknown and go on.
func (p *Producer) SendBatch(ctx context.Context, recs []Record) Results {
	ctx = orBackground(ctx)
	results := make(Results, len(recs))
	pds := make([]pending, len(recs))
	var chunk []int // positions of the records checked and not yet sent
	var chunkBytes int64
	for i := range recs {
		rec := &recs[i]
		size, err := p.vet(rec)
		if err != nil {
			results[i] = p.refuse(*rec, err)
			continue
		}
		// A chunk takes at most a quarter of the buffer, so it gets in
		// while other senders keep the buffer busy.
		full := int64(len(chunk)) >= max(p.gate.maxRecords/4, 1) ||
			(p.gate.maxBytes > 0 && chunkBytes+size > p.gate.maxBytes/4)
		if len(chunk) > 0 && full {
			p.sendChunk(ctx, recs, pds, results, chunk, chunkBytes)
			chunk, chunkBytes = chunk[:0], 0
		}
		pds[i].size = int32(size) // vet refuses what does not fit
		chunk = append(chunk, i)
		chunkBytes += size
	}
	if len(chunk) > 0 {
		p.sendChunk(ctx, recs, pds, results, chunk, chunkBytes)
	}
	return results
}

// sendChunk sends the records of SendBatch at positions idx, which fit in
// the buffer together, and fills their results.
func (p *Producer) sendChunk(ctx context.Context, recs []Record, pds []pending, results Results, idx []int, size int64) {
	if err := p.reserve(ctx, int64(len(idx)), size, true); err != nil {
		for _, i := range idx {
			results[i] = p.refuse(recs[i], err)
		}
		return
	}
	// Each record's Result goes to its slot: in the caller's results,
	// or (as in Send, so that the caller can stop waiting on ctx while a
	// goroutine waits for the records) in the chunk's own.
	var out Results
	if ctx.Done() != nil {
		out = make(Results, len(idx))
	}
	krs := make([]*kgo.Record, len(idx))
	for j, i := range idx {
		pd := &pds[i]
		if out != nil {
			pd.recv = (*resultSlot)(&out[j])
		} else {
			pd.recv = (*resultSlot)(&results[i])
		}
		p.fill(pd, ctx, &recs[i])
		krs[j] = &pd.kr
	}
	if ctx.Done() == nil {
		p.produceChunk(krs, size)
		return
	}
	finished := make(chan struct{})
	go func() {
		p.produceChunk(krs, size)
		close(finished)
	}()
	select {
	case <-finished:
		for j, i := range idx {
			results[i] = out[j]
		}
	case <-ctx.Done():
		for _, i := range idx {
			results[i] = p.unknownResult(ctx, &recs[i], p.startTime(&pds[i]))
		}
	}
}

// produceChunk sends admitted records, waits for them and hands each
// Result to its record's resultSlot.
func (p *Producer) produceChunk(krs []*kgo.Record, size int64) {
	// Every record of the chunk has its own context: its pending.
	// ProduceSync keeps the context a record already has.
	for _, r := range p.cl.ProduceSync(context.Background(), krs...) {
		pd := pendingOf(r.Record)
		var res Result
		p.complete(&res, pd, r.Err)
		pd.recv.receive(res)
	}
	p.gate.release(int64(len(krs)), size)
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

// flushAdmitted flushes until every record admitted before Close began
// has its outcome, or ctx ends. One Flush is not enough: a sender admitted
// just before Close may not have handed its record to franz-go yet when
// Flush looks, and closing the client would then fail a record Close had
// time to deliver.
func (p *Producer) flushAdmitted(ctx context.Context, drained <-chan struct{}) error {
	for {
		if err := p.cl.Flush(ctx); err != nil {
			return err
		}
		select {
		case <-drained:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond): // a sender between admission and Produce
		}
	}
}

// closeGrace bounds Close's wait for the outcomes of records the closed
// client failed, once ctx has already ended: their callbacks run on
// franz-go's promise goroutine and must not block, so they take
// microseconds, but Close must not hang on one that does.
const closeGrace = time.Second

// Close stops accepting records (later sends fail with ErrClosed), flushes
// what is buffered while ctx allows, then closes the client. Records that
// were not delivered by then fail with ErrClosed (ClassClosed) through
// their callbacks, and are returned in a *CloseError, so nothing is lost
// silently. Close then waits for every callback to return: while ctx
// allows, or for at most a second once ctx has ended; a record still
// unreported after that is named in the error. It is idempotent: later
// calls return the first call's result.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(orBackground(ctx)) })
	return p.closeErr
}

func (p *Producer) close(ctx context.Context) error {
	p.closing.Store(true)
	drained := p.gate.close()
	flushErr := p.flushAdmitted(ctx, drained)
	if flushErr != nil {
		p.log.Warn("close: flush did not finish; failing undelivered records", zap.Error(flushErr),
			zap.Int64("buffered_records", p.cl.BufferedProduceRecords()))
	}
	p.cl.Close()
	p.watch.stop()

	wait := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeGrace)
		defer cancel()
	}
	late := false
	select {
	case <-drained:
	case <-wait.Done():
		late = true
		n := p.gate.buffered()
		p.log.Error("close: records still unreported; their callbacks are late", zap.Int64("records", n))
		if flushErr == nil {
			flushErr = ctx.Err()
		}
		flushErr = fmt.Errorf("%w; %d record(s) not yet reported (a callback or hook blocks?)", flushErr, n)
	}
	p.mu.Lock()
	undelivered := p.undelivered
	p.undelivered = nil
	p.mu.Unlock()
	if len(undelivered) == 0 && !late {
		return nil
	}
	if flushErr == nil {
		flushErr = errors.New("records failed while closing")
	}
	return &CloseError{Undelivered: undelivered, Err: flushErr}
}
