package dlq

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Sentinel errors. Match them with errors.Is. Calls after Close began
// fail with kafkaproducer.ErrClosed (the same error the wrapped producer
// uses); match that.
var (
	// ErrCircuitOpen is the cause of a record refused (OpenFailFast) or
	// spooled because the circuit breaker was open. Its class is
	// ClassRetriable.
	ErrCircuitOpen = errors.New("kprod: circuit breaker open")
	// ErrNoSpool is wrapped by the error of a record that had to be
	// spooled when no spool is configured.
	ErrNoSpool = errors.New("kprod: no spool configured")
)

// Disposition is where a record ended.
type Disposition uint8

// The dispositions. Every record handed to the Producer ends in exactly
// one of them.
const (
	// Failed: the record is nowhere; Result.Err says why. The caller
	// learns it from the call (or its callback) and owns the record.
	Failed Disposition = iota
	// Delivered: acknowledged on its topic.
	Delivered
	// DeadLettered: acknowledged on its dead-letter topic.
	DeadLettered
	// Spooled: persisted (fsync'd) in the spool, to be replayed.
	Spooled
)

func (d Disposition) String() string {
	switch d {
	case Failed:
		return "failed"
	case Delivered:
		return "delivered"
	case DeadLettered:
		return "dead_lettered"
	case Spooled:
		return "spooled"
	}
	return fmt.Sprintf("disposition(%d)", uint8(d))
}

// Result is the outcome of one record.
type Result struct {
	// Attempt is the send to the record's own topic. Attempt.Err is why
	// it did not land there (nil when Delivered). Attempt.Record is the
	// record as sent, record-ID header included.
	Attempt kafkaproducer.Result
	// Disposition is where the record ended.
	Disposition Disposition
	// RecordID is the record's ID (32 hex digits), also in its
	// record-ID header when it carries one.
	RecordID string
	// DeadLetter is the dead-letter send when Disposition is DeadLettered.
	DeadLetter *kafkaproducer.Result
	// Ambiguous is set when the failed attempt may have written the
	// record anyway: it reached Kafka's client and failed with anything
	// but an explicit refusal (bad input, authorization). Its topic may
	// then hold it twice once replayed, with the same record ID. A record
	// the producer refused at the call (closed, no topic, ...) or that
	// never went to Kafka (open breaker) is not ambiguous.
	Ambiguous bool
	// Err is non-nil only when Disposition is Failed.
	Err error
}

// Event describes a record that was dead-lettered or spooled, for
// Config.OnRecord.
type Event struct {
	Record      kafkaproducer.Record // as sent to its topic, record-ID header included
	RecordID    string
	Disposition Disposition // DeadLettered or Spooled
	Class       kafkaproducer.Class
	Err         error // why it left its topic's path
	// Destination is the dead-letter topic, or for spooled records the
	// topic replay will send them to.
	Destination string
	Ambiguous   bool
}

// Stats are the Producer's running totals.
type Stats struct {
	Delivered, DeadLettered, Spooled, Failed int64
	Replayed                                 int64 // spooled records acknowledged on replay
	Ambiguous                                int64 // records that may be on their topic twice
	Pending                                  int64 // SendAsync records not yet reported
	Breaker                                  string
	SpoolRecords, SpoolBytes                 int64
}

// Producer wraps a kafkaproducer.Producer so that every record ends in a
// known place: its topic, its dead-letter topic, the spool, or an error
// returned to the caller. It is safe for concurrent use.
type Producer struct {
	p        *kafkaproducer.Producer
	dlt      *kafkaproducer.Producer
	cfg      Config
	log      *zap.Logger
	sp       *spool.Spool
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	ids      *idGen
	clientID string

	state   atomic.Int32 // gobreaker.State
	stateCh chan struct{}
	// window holds the breaker's closed-state counts (breaker.go);
	// windowCh restarts its Interval, winDone ends the windows goroutine.
	window   atomic.Pointer[window]
	windowCh chan struct{}
	winDone  chan struct{}

	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	sem      chan struct{}

	qmu    sync.Mutex
	queue  []*item
	wake   chan struct{}
	stopRt chan struct{}
	rtDone chan struct{}

	supCtx    context.Context
	supCancel context.CancelFunc
	supDone   chan struct{}

	replayMu     sync.Mutex // one Replay at a time; Close takes it for good
	replayClosed bool       // guarded by replayMu

	closeOnce sync.Once
	closeErr  error

	delivered, deadLettered, spooled, failed, replayed, ambiguous, pending atomic.Int64
}

// item is one record that did not reach its topic.
type item struct {
	rec       kafkaproducer.Record
	id        [16]byte
	attempt   kafkaproducer.Result
	cause     error
	class     kafkaproducer.Class
	partition int32
	attempts  uint32
	forceDLT  bool
	cb        func(Result)
}

// New wraps p. It takes ownership of p (and of Config.DeadLetterProducer):
// Close closes them. It opens the spool, if configured, and starts two
// goroutines (a router for SendAsync failures and a supervisor for pings,
// breaker events and replay) that Close stops.
func New(p *kafkaproducer.Producer, cfg Config) (*Producer, error) {
	if p == nil {
		return nil, &kafkaproducer.ConfigError{Field: "Producer", Reason: "nil producer"}
	}
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = p.Logger()
	}
	d := &Producer{
		p:        p,
		dlt:      p,
		cfg:      cfg,
		log:      log.Named("dlq"),
		ids:      newIDGen(),
		clientID: p.Config().ClientID,
		stateCh:  make(chan struct{}, 1),
		sem:      make(chan struct{}, cfg.MaxPending),
		wake:     make(chan struct{}, 1),
		stopRt:   make(chan struct{}),
		rtDone:   make(chan struct{}),
		supDone:  make(chan struct{}),
	}
	if d.clientID == "" {
		d.clientID = "kprod"
	}
	if cfg.DeadLetterProducer != nil {
		d.dlt = cfg.DeadLetterProducer
	}
	if cfg.SpoolDir != "" {
		opts := cfg.Spool
		if opts.Logger == nil {
			opts.Logger = d.log
		}
		sp, err := spool.Open(cfg.SpoolDir, opts)
		if err != nil {
			return nil, err
		}
		d.sp = sp
		if r := sp.Recovery(); r.TornTails > 0 || len(r.Quarantined) > 0 {
			d.log.Warn("spool repaired on open", zap.Int("torn_tails", r.TornTails), zap.Int("quarantined", len(r.Quarantined)))
		}
	}
	if !cfg.Breaker.Disable {
		d.window.Store(new(window))
		d.windowCh = make(chan struct{}, 1)
		b := cfg.Breaker
		d.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        "kprod",
			MaxRequests: b.HalfOpenProbes,
			Interval:    b.Interval,
			Timeout:     b.OpenTimeout,
			// On dlq's closed-state counts, not gobreaker's: while
			// closed, successes do not go through gobreaker.
			ReadyToTrip: func(gobreaker.Counts) bool { return d.window.Load().readyToTrip(b) },
			// Runs under gobreaker's mutex: only record the state and
			// nudge the supervisor, which calls the observer.
			OnStateChange: func(_ string, _, to gobreaker.State) {
				d.state.Store(int32(to))
				d.newWindow()
				select {
				case d.stateCh <- struct{}{}:
				default:
				}
			},
			IsExcluded: breakerExcluded,
		})
	}
	d.supCtx, d.supCancel = context.WithCancel(context.Background())
	d.winDone = make(chan struct{})
	go d.route()
	go d.supervise()
	if d.cb != nil {
		go d.windows()
	} else {
		close(d.winDone)
	}
	return d, nil
}

// Producer returns the wrapped producer (for Flush, Ping, Client). Do not
// Close it; Close the dead-letter Producer.
func (d *Producer) Producer() *kafkaproducer.Producer { return d.p }

// Spool returns the spool, or nil if none is configured.
func (d *Producer) Spool() *spool.Spool { return d.sp }

// BreakerState returns "closed", "half-open" or "open" ("disabled" when
// the breaker is off).
func (d *Producer) BreakerState() string {
	if d.cb == nil {
		return "disabled"
	}
	return d.cb.State().String()
}

// Healthy reports whether sends currently go to Kafka: not closed and the
// breaker not open. For readiness checks; a spool that is still draining
// does not make the producer unhealthy.
func (d *Producer) Healthy() bool {
	d.closeMu.RLock()
	closed := d.closed
	d.closeMu.RUnlock()
	return !closed && (d.cb == nil || d.cb.State() != gobreaker.StateOpen)
}

// Stats returns running totals.
func (d *Producer) Stats() Stats {
	st := Stats{
		Delivered:    d.delivered.Load(),
		DeadLettered: d.deadLettered.Load(),
		Spooled:      d.spooled.Load(),
		Failed:       d.failed.Load(),
		Replayed:     d.replayed.Load(),
		Ambiguous:    d.ambiguous.Load(),
		Pending:      d.pending.Load(),
		Breaker:      d.BreakerState(),
	}
	if d.sp != nil {
		s := d.sp.Stats()
		st.SpoolRecords, st.SpoolBytes = s.Records, s.Bytes
	}
	return st
}

func (d *Producer) begin() error {
	d.closeMu.RLock()
	defer d.closeMu.RUnlock()
	if d.closed {
		return kafkaproducer.ErrClosed
	}
	d.inflight.Add(1)
	return nil
}

// admit decides whether a record may go to Kafka now. It returns the
// breaker's ticket, to report the outcome with, or the reason to bypass
// Kafka (ErrCircuitOpen, or spoolFirst under StrictOrder).
func (d *Producer) admit() (ticket, error) {
	if d.cfg.StrictOrder && d.sp.Len() > 0 {
		return ticket{}, errSpoolFirst
	}
	return d.admitBreaker()
}

var errSpoolFirst = errors.New("kprod: spool not empty and StrictOrder set: record queued behind it")

// bypassItem is a record that does not go to Kafka now (open breaker,
// or queued behind the spool): a refusal of class ClassRetriable.
func (d *Producer) bypassItem(rec kafkaproducer.Record, id [16]byte, why error) *item {
	partition := int32(-1)
	if rec.PartitionSet {
		partition = rec.Partition
	}
	res := kafkaproducer.FailedResult(rec, kafkaproducer.WithClass(kafkaproducer.ClassRetriable, why))
	return &item{
		rec:       rec,
		id:        id,
		attempt:   res,
		cause:     res.Err,
		class:     kafkaproducer.Classify(res.Err),
		partition: partition,
	}
}

func (d *Producer) failedItem(res kafkaproducer.Result, id [16]byte) *item {
	it := &item{
		rec:       res.Record,
		id:        id,
		attempt:   res,
		cause:     res.Err,
		class:     kafkaproducer.Classify(res.Err),
		partition: res.Partition,
		attempts:  1,
	}
	if refusedAtCall(res.Err) {
		it.attempts = 0 // it never reached Kafka's client
	}
	return it
}

// refusedAtCall reports whether the wrapped producer refused a record at
// the call, before it reached franz-go: closed (a bare ErrClosed; records
// cut off by Close wrap franz-go's kgo.ErrClientClosed too), or input it
// checks itself. Such a record was never written, so it is not ambiguous.
func refusedAtCall(err error) bool {
	return badCall(err) || (errors.Is(err, kafkaproducer.ErrClosed) && !errors.Is(err, kgo.ErrClientClosed))
}

// badCall reports the refusals that are the caller's mistake in the call
// itself: no topic, a bad or missing partition, a stale timestamp. They
// are returned to the caller, never dead-lettered or spooled: the record
// has no topic to dead-letter it for, or would fail the same way again.
func badCall(err error) bool {
	return errors.Is(err, kafkaproducer.ErrNoTopic) || errors.Is(err, kafkaproducer.ErrBadPartition) ||
		errors.Is(err, kafkaproducer.ErrPartitionRequired) || errors.Is(err, kafkaproducer.ErrStaleTimestamp)
}

// precheck refuses, as the wrapped producer would, a record that is about
// to bypass it (open breaker, StrictOrder): the checks it can make without
// the producer. A stale timestamp or a partition beyond the topic's count
// is found on replay instead.
func (d *Producer) precheck(rec kafkaproducer.Record) error {
	switch {
	case rec.Topic == "":
		return kafkaproducer.ErrNoTopic
	case rec.PartitionSet && rec.Partition < 0:
		return fmt.Errorf("%w: %d is negative", kafkaproducer.ErrBadPartition, rec.Partition)
	case !rec.PartitionSet && d.p.Config().Partitioner == kafkaproducer.PartitionerManual:
		return kafkaproducer.ErrPartitionRequired
	}
	return nil
}

func (d *Producer) prepare(rec kafkaproducer.Record) (kafkaproducer.Record, [16]byte) {
	if d.cfg.RecordID == RecordIDAlways {
		return d.withID(rec, [16]byte{})
	}
	return rec, [16]byte{}
}

func hexID(id [16]byte) string {
	if id == ([16]byte{}) {
		return ""
	}
	return hex.EncodeToString(id[:])
}

func (d *Producer) deliveredResult(r kafkaproducer.Result, id [16]byte) Result {
	d.delivered.Add(1)
	return Result{Attempt: r, Disposition: Delivered, RecordID: hexID(id)}
}

// Send sends rec and waits until it has ended somewhere: on its topic, its
// dead-letter topic or the spool (error nil, Result.Disposition says
// which), or nowhere (the error, also in Result.Err). ctx bounds the
// send to Kafka as in kafkaproducer.Producer.Send; a record whose send
// ran out of ctx is then spooled (by the default Route), so the error
// means the record is truly not kept. While the breaker is open the
// record goes straight to the spool (OpenSpool) or fails with
// ErrCircuitOpen (OpenFailFast).
//
// A record the wrapped producer refuses at the call because of the call
// itself (kafkaproducer.ErrNoTopic, ErrBadPartition, ErrPartitionRequired,
// ErrStaleTimestamp) is returned Failed with that error and never
// dead-lettered or spooled; after Close began, Send returns
// kafkaproducer.ErrClosed. A nil ctx means context.Background().
func (d *Producer) Send(ctx context.Context, rec kafkaproducer.Record) (Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := d.begin(); err != nil {
		return d.refused(rec, err), err
	}
	defer d.inflight.Done()
	rec, id := d.prepare(rec)
	if err := d.precheck(rec); err != nil {
		res := d.refusedResult(d.p.Refuse(rec, err), id)
		return res, res.Err
	}
	t, why := d.admit()
	if why != nil {
		if why == ErrCircuitOpen && d.cfg.WhenOpen == OpenFailFast {
			return d.failFast(rec, id)
		}
		res := d.routeItems(ctx, []*item{d.bypassItem(rec, id, why)})[0]
		return res, res.Err
	}
	r, err := d.p.Send(ctx, rec)
	d.report(t, err)
	if err == nil {
		return d.deliveredResult(r, id), nil
	}
	res := d.routeItems(ctx, []*item{d.failedItem(r, id)})[0]
	return res, res.Err
}

func (d *Producer) failFast(rec kafkaproducer.Record, id [16]byte) (Result, error) {
	it := d.bypassItem(rec, id, ErrCircuitOpen)
	d.failed.Add(1)
	return Result{Attempt: it.attempt, Disposition: Failed, RecordID: hexID(id), Err: it.cause}, it.cause
}

func (d *Producer) refused(rec kafkaproducer.Record, err error) Result {
	d.failed.Add(1)
	return Result{Attempt: kafkaproducer.Result{Record: rec, Partition: -1, Offset: -1, Err: err}, Disposition: Failed, Err: err}
}

// refusedResult is the Failed Result of a record refused for the call
// itself (see badCall): returned to the caller, not routed.
func (d *Producer) refusedResult(r kafkaproducer.Result, id [16]byte) Result {
	d.failed.Add(1)
	return Result{Attempt: r, Disposition: Failed, RecordID: hexID(id), Err: r.Err}
}

// SendBatch sends recs and waits until each has ended somewhere, as Send
// does, returning one Result per record in order. Failed records are
// routed together: one dead-letter batch, one spool commit. Records
// refused for the call itself (no topic, bad partition, ...) are Failed
// with that error, as in Send.
func (d *Producer) SendBatch(ctx context.Context, recs []kafkaproducer.Record) []Result {
	if ctx == nil {
		ctx = context.Background()
	}
	out := make([]Result, len(recs))
	if err := d.begin(); err != nil {
		for i := range recs {
			out[i] = d.refused(recs[i], err)
		}
		return out
	}
	defer d.inflight.Done()
	ids := make([][16]byte, len(recs))
	var toKafka []kafkaproducer.Record
	var kIdx []int
	var tickets []ticket
	var routed []*item
	var rIdx []int
	for i := range recs {
		rec, id := d.prepare(recs[i])
		ids[i] = id
		if err := d.precheck(rec); err != nil {
			out[i] = d.refusedResult(d.p.Refuse(rec, err), id)
			continue
		}
		t, why := d.admit()
		if why != nil {
			if why == ErrCircuitOpen && d.cfg.WhenOpen == OpenFailFast {
				out[i], _ = d.failFast(rec, id)
				continue
			}
			routed = append(routed, d.bypassItem(rec, id, why))
			rIdx = append(rIdx, i)
			continue
		}
		toKafka = append(toKafka, rec)
		kIdx = append(kIdx, i)
		tickets = append(tickets, t)
	}
	if len(toKafka) > 0 {
		for j, r := range d.p.SendBatch(ctx, toKafka) {
			d.report(tickets[j], r.Err)
			i := kIdx[j]
			if r.Err == nil {
				out[i] = d.deliveredResult(r, ids[i])
				continue
			}
			if badCall(r.Err) {
				out[i] = d.refusedResult(r, ids[i])
				continue
			}
			routed = append(routed, d.failedItem(r, ids[i]))
			rIdx = append(rIdx, i)
		}
	}
	if len(routed) > 0 {
		for j, res := range d.routeItems(ctx, routed) {
			out[rIdx[j]] = res
		}
	}
	return out
}

// SendAsync hands rec over and returns once it is accepted; cb receives
// its final Result (delivered, dead-lettered, spooled or failed) exactly
// once. It returns an error only when it refuses rec outright, and cb is
// then not called: closed (kafkaproducer.ErrClosed), a record refused for
// the call itself (kafkaproducer.ErrNoTopic, ErrBadPartition,
// ErrPartitionRequired, ErrStaleTimestamp), ctx ended while waiting for
// MaxPending, or ErrCircuitOpen under OpenFailFast.
//
// Once accepted, ctx stays attached to the record as in
// kafkaproducer.Producer.SendAsync: if it ends while the record waits for
// buffer space or delivery, the record fails with ctx's error through cb
// and is routed like any failure (by DefaultRoute, a canceled ctx is
// Failed and a deadline is spooled). A partition beyond the topic's count,
// found after acceptance, reaches cb as Failed with ErrBadPartition and is
// not routed. A nil ctx means context.Background().
//
// cb runs on franz-go's promise goroutine for delivered records (and
// those refused after acceptance) and on the Producer's router goroutine
// for the others; it must not block and must not call Send, Flush or
// Close. cb may be nil.
func (d *Producer) SendAsync(ctx context.Context, rec kafkaproducer.Record, cb func(Result)) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := d.begin(); err != nil {
		d.failed.Add(1)
		return err
	}
	select {
	case d.sem <- struct{}{}:
	default:
		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			d.inflight.Done()
			d.failed.Add(1)
			return fmt.Errorf("kprod: send: waiting for MaxPending: %w", ctx.Err())
		}
	}
	d.pending.Add(1)
	if cb == nil {
		cb = func(Result) {}
	}
	rec, id := d.prepare(rec)
	if err := d.precheck(rec); err != nil {
		d.finish()
		return d.refusedResult(d.p.Refuse(rec, err), id).Err
	}
	t, why := d.admit()
	if why != nil {
		if why == ErrCircuitOpen && d.cfg.WhenOpen == OpenFailFast {
			d.finish()
			_, err := d.failFast(rec, id)
			return err
		}
		it := d.bypassItem(rec, id, why)
		it.cb = cb
		d.enqueue(it)
		return nil
	}
	err := d.p.SendAsync(ctx, rec, func(r kafkaproducer.Result) {
		d.report(t, r.Err)
		if r.Err == nil {
			res := d.deliveredResult(r, id)
			cb(res)
			d.finish()
			return
		}
		if badCall(r.Err) {
			cb(d.refusedResult(r, id))
			d.finish()
			return
		}
		it := d.failedItem(r, id)
		it.cb = cb
		d.enqueue(it)
	})
	if err != nil {
		d.report(t, err)
		d.finish()
		d.failed.Add(1)
		return err
	}
	return nil
}

func (d *Producer) finish() {
	d.pending.Add(-1)
	<-d.sem
	d.inflight.Done()
}

// DeadLetter sends rec to its dead-letter topic because of err, for
// records that fail before the producer (a serialization error: pass a
// *kafkaproducer.BadInputError). If the dead-letter topic cannot take it,
// it is spooled for that topic. The Result says where it ended. A record
// without a topic is refused with kafkaproducer.ErrNoTopic: it has no
// dead-letter topic. A nil ctx means context.Background().
func (d *Producer) DeadLetter(ctx context.Context, rec kafkaproducer.Record, cause error) (Result, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := d.begin(); err != nil {
		return d.refused(rec, err), err
	}
	defer d.inflight.Done()
	if rec.Topic == "" {
		res := d.refusedResult(kafkaproducer.FailedResult(rec, kafkaproducer.ErrNoTopic), [16]byte{})
		return res, res.Err
	}
	if cause == nil {
		cause = errors.New("kprod: dead-lettered by the application")
	}
	rec, id := d.withID(rec, [16]byte{})
	partition := int32(-1)
	if rec.PartitionSet {
		partition = rec.Partition
	}
	attempt := kafkaproducer.FailedResult(rec, cause)
	it := &item{
		rec: rec, id: id, cause: attempt.Err, class: kafkaproducer.Classify(attempt.Err), partition: partition,
		forceDLT: true, attempt: attempt,
	}
	res := d.routeItems(ctx, []*item{it})[0]
	return res, res.Err
}

func (d *Producer) enqueue(it *item) {
	d.qmu.Lock()
	d.queue = append(d.queue, it)
	d.qmu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// route is the router goroutine: it routes SendAsync's failures in
// batches (one dead-letter batch, one spool commit per round) and runs
// their callbacks.
func (d *Producer) route() {
	defer close(d.rtDone)
	var items []*item
	for {
		select {
		case <-d.wake:
		case <-d.stopRt:
			return
		}
		for {
			d.qmu.Lock()
			items, d.queue = d.queue, items[:0]
			d.qmu.Unlock()
			if len(items) == 0 {
				break
			}
			results := d.routeItems(context.Background(), items)
			for i, it := range items {
				it.cb(results[i])
				d.finish()
				items[i] = nil
			}
		}
	}
}

// routeItems sends failed records where the policy says and returns one
// Result per item. It never blocks on the caller's ctx: dead-letter sends
// have their own timeout and spool commits take milliseconds.
func (d *Producer) routeItems(ctx context.Context, items []*item) []Result {
	ctx = context.WithoutCancel(ctx)
	now := d.cfg.Now()
	out := make([]Result, len(items))
	type spoolIt struct {
		i     int
		entry spool.Entry
	}
	var toDLT []int
	var toSpool []spoolIt
	for i, it := range items {
		amb := it.attempts > 0 && isAmbiguous(it.class)
		out[i] = Result{Attempt: it.attempt, RecordID: hexID(it.id), Ambiguous: amb}
		route := d.cfg.Route(it.class)
		switch {
		case it.forceDLT:
			route = RouteDeadLetter
		case badCall(it.cause):
			route = RouteFail // the call's mistake: no topic to keep it for
		}
		switch route {
		case RouteFail:
			out[i].Disposition, out[i].Err = Failed, it.cause
		case RouteDeadLetter:
			toDLT = append(toDLT, i)
		default:
			toSpool = append(toSpool, spoolIt{i, d.entry(it, it.rec, now)})
		}
	}
	if len(toDLT) > 0 {
		recs := make([]kafkaproducer.Record, len(toDLT))
		for j, i := range toDLT {
			if items[i].id == ([16]byte{}) {
				items[i].rec, items[i].id = d.withID(items[i].rec, [16]byte{})
				out[i].RecordID = hexID(items[i].id)
			}
			recs[j] = d.deadLetterRecord(items[i], now)
		}
		var rs kafkaproducer.Results
		if d.dlt != d.p || d.cb == nil || d.cb.State() != gobreaker.StateOpen {
			dctx, cancel := context.WithTimeout(ctx, d.cfg.DeadLetterTimeout)
			rs = d.dlt.SendBatch(dctx, recs)
			cancel()
		}
		for j, i := range toDLT {
			if rs != nil && rs[j].Err == nil {
				r := rs[j]
				out[i].Disposition, out[i].DeadLetter = DeadLettered, &r
				continue
			}
			if rs != nil && neverSendable(rs[j].Err) && !waitsForOperator(rs[j].Err) {
				// The dead-letter topic can never take it either (too
				// large for it too): spooling it would block the
				// spool. The caller gets both errors. A missing or
				// denied dead-letter topic is an operator's to fix,
				// not the record's: that record is spooled for it
				// below.
				out[i].Disposition = Failed
				out[i].Err = fmt.Errorf("kprod: record %s not kept: dead-letter topic refused it: %w (it failed with: %w)", out[i].RecordID, rs[j].Err, items[i].cause)
				d.log.Error("record refused by its topic and its dead-letter topic", zap.String("topic", items[i].rec.Topic), zap.Error(out[i].Err))
				continue
			}
			if rs != nil {
				d.log.Warn("dead-letter send failed; spooling for the dead-letter topic", zap.String("topic", recs[j].Topic), zap.Error(rs[j].Err))
			}
			toSpool = append(toSpool, spoolIt{i, d.entry(items[i], recs[j], now)})
		}
	}
	if len(toSpool) > 0 {
		var err error
		if d.sp == nil {
			err = ErrNoSpool
		} else {
			entries := make([]spool.Entry, len(toSpool))
			for j := range toSpool {
				entries[j] = toSpool[j].entry
			}
			err = d.sp.Append(ctx, entries...)
		}
		for _, s := range toSpool {
			if err != nil {
				out[s.i].Disposition = Failed
				out[s.i].Err = fmt.Errorf("kprod: record %s not kept: %w (it failed with: %w)", out[s.i].RecordID, err, items[s.i].cause)
				d.log.Error("record could not be dead-lettered or spooled", zap.String("topic", items[s.i].rec.Topic), zap.Error(err))
				continue
			}
			out[s.i].Disposition = Spooled
			out[s.i].RecordID = hexID(s.entry.ID)
		}
	}
	// Counters, observer and OnRecord, outside any lock.
	for i, it := range items {
		r := &out[i]
		switch r.Disposition {
		case Failed:
			d.failed.Add(1)
			continue
		case DeadLettered:
			d.deadLettered.Add(1)
			d.cfg.Observer.OnDeadLettered(it.rec.Topic)
		case Spooled:
			d.spooled.Add(1)
			d.cfg.Observer.OnSpooled(it.rec.Topic)
		}
		if r.Ambiguous {
			d.ambiguous.Add(1)
			d.cfg.Observer.OnAmbiguous(it.rec.Topic)
		}
		if d.cfg.OnRecord != nil {
			dest := it.rec.Topic
			if r.DeadLetter != nil {
				dest = r.DeadLetter.Record.Topic
			}
			d.cfg.OnRecord(Event{Record: it.rec, RecordID: r.RecordID, Disposition: r.Disposition, Class: it.class, Err: it.cause, Destination: dest, Ambiguous: r.Ambiguous})
		}
	}
	if len(toSpool) > 0 && d.sp != nil {
		st := d.sp.Stats()
		d.cfg.Observer.OnSpoolSize(st.Records, st.Bytes)
	}
	return out
}

// isAmbiguous: a record that reached franz-go and failed without the
// broker refusing it may have been written (records refused at the call
// have attempts 0 and are never asked about). franz-go reports a record
// that ran out of DeliveryTimeout with its last error, so a connection
// error (ClassRetriable) can hide a request that was applied before the
// broker died: only an explicit refusal proves nothing was written.
func isAmbiguous(c kafkaproducer.Class) bool {
	switch c {
	case kafkaproducer.ClassNone, kafkaproducer.ClassBadInput, kafkaproducer.ClassAuthorization:
		return false
	}
	return true
}

// entry makes the spool entry for it, sending rec (the original record, or
// its dead-letter copy) on replay.
func (d *Producer) entry(it *item, rec kafkaproducer.Record, now time.Time) spool.Entry {
	rec, id := d.withID(rec, it.id)
	it.id = id
	ts := rec.Timestamp
	if ts.IsZero() {
		ts = it.attempt.Record.Timestamp
	}
	if ts.IsZero() {
		ts = now // keep the time the application sent it, not the replay's
	}
	e := spool.Entry{
		ID:            id,
		SpooledAt:     now,
		Topic:         rec.Topic,
		OriginalTopic: it.rec.Topic,
		Partition:     rec.Partition,
		PartitionSet:  rec.PartitionSet,
		Key:           rec.Key,
		Value:         rec.Value,
		Headers:       rec.Headers,
		Timestamp:     ts,
		Class:         it.class.String(),
		Err:           it.cause.Error(),
		Attempts:      it.attempts,
	}
	return e
}

// supervise is the supervisor goroutine: pings, breaker state events,
// automatic replay.
func (d *Producer) supervise() {
	defer close(d.supDone)
	var pingC <-chan time.Time
	if d.cb != nil && d.cfg.Breaker.PingInterval > 0 {
		t := time.NewTicker(d.cfg.Breaker.PingInterval)
		defer t.Stop()
		pingC = t.C
	}
	replay := time.NewTicker(d.cfg.Replay.Interval)
	defer replay.Stop()
	last := "closed"
	for {
		select {
		case <-d.supCtx.Done():
			return
		case <-d.stateCh:
			s := gobreaker.State(d.state.Load()).String()
			if s != last {
				last = s
				d.log.Info("circuit breaker state", zap.String("state", s))
				d.cfg.Observer.OnBreakerState(s)
			}
			if s == "closed" {
				d.autoReplay()
			}
		case <-pingC:
			d.ping()
		case <-replay.C:
			d.autoReplay()
		}
	}
}

var errUnreachable = errors.New("kprod: cluster unreachable (ping failed)")

func (d *Producer) ping() {
	state := d.cb.State() // also moves open to half-open when due
	if state == gobreaker.StateOpen {
		return
	}
	ctx, cancel := context.WithTimeout(d.supCtx, d.cfg.Breaker.PingTimeout)
	err := d.p.Ping(ctx)
	cancel()
	if d.supCtx.Err() != nil {
		return
	}
	if state == gobreaker.StateClosed {
		if err != nil { // a ping does not vouch for produce; only failures count
			w := d.window.Load()
			w.requests.Add(1)
			d.closedOutcome(w, fmt.Errorf("%w: %w", errUnreachable, err))
		}
		return
	}
	done, aerr := d.cb.Allow()
	if aerr != nil {
		return
	}
	if err != nil {
		done(fmt.Errorf("%w: %w", errUnreachable, err))
		return
	}
	done(nil)
}

func (d *Producer) autoReplay() {
	if d.cfg.Replay.Disable || d.sp == nil || d.sp.Len() == 0 {
		return
	}
	if d.cb != nil && d.cb.State() != gobreaker.StateClosed {
		return
	}
	st, err := d.Replay(d.supCtx)
	if err != nil && d.supCtx.Err() == nil {
		d.log.Warn("replay stopped; will retry", zap.Int64("replayed", st.Sent), zap.Int64("left", st.Kept), zap.Error(err))
	} else if st.Sent > 0 {
		d.log.Info("replayed spooled records", zap.Int64("replayed", st.Sent), zap.Int64("left", st.Kept))
	}
}

// Replay sends the spooled records now (in spool order, Config.Replay.Chunk
// at a time) and removes each once Kafka acknowledged it. It stops at the
// first chunk with a failure, keeping the failed records and all later
// ones in order, and returns that failure. The Producer also replays by
// itself while its breaker is closed, unless Config.Replay.Disable.
// After Close began it returns kafkaproducer.ErrClosed; Close waits for a
// Replay in progress (bounded by its ctx). A nil ctx means
// context.Background().
func (d *Producer) Replay(ctx context.Context) (spool.DrainStats, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if d.sp == nil {
		return spool.DrainStats{}, ErrNoSpool
	}
	d.replayMu.Lock()
	defer d.replayMu.Unlock()
	if d.replayClosed {
		return spool.DrainStats{}, kafkaproducer.ErrClosed
	}
	st, err := Replay(ctx, d.sp, d.p, ReplayOptions{
		Chunk:           d.cfg.Replay.Chunk,
		ToDeadLetter:    d.cfg.Replay.ToDeadLetter,
		DeadLetterTopic: d.cfg.DeadLetterTopic,
		Observer:        d.cfg.Observer,
		ClientID:        d.clientID,
		SpringHeaders:   d.cfg.SpringHeaders,
		Now:             d.cfg.Now,
	})
	d.replayed.Add(st.Sent)
	return st, err
}

// Close stops accepting records, then in this order: flushes the wrapped
// producer while ctx allows; waits until every accepted record has ended
// somewhere (delivered, dead-lettered, spooled or failed) and its
// callback ran; stops the router; and closes the wrapped producer, the
// dead-letter producer and the spool. If ctx ends first, the wrapped
// producer is closed early: records it had not delivered fail with
// kafkaproducer.ErrClosed and are routed (spooled) like any failure, so
// the dead-letter path stays open for every record still being routed.
// Close waits for a Replay in progress, and later Replays return
// kafkaproducer.ErrClosed. It is idempotent; later calls return the first
// result.
func (d *Producer) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx) })
	return d.closeErr
}

func (d *Producer) close(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// 1. Stop accepting records and stop the supervisor (pings, replay).
	d.closeMu.Lock()
	d.closed = true
	d.closeMu.Unlock()
	d.supCancel()
	<-d.supDone
	<-d.winDone
	// No Replay may run against the producers or spool closed below.
	d.replayMu.Lock()
	d.replayClosed = true
	d.replayMu.Unlock()

	var errs []error
	pClosed := false
	closeP := func() {
		pClosed = true
		if err := d.p.Close(ctx); err != nil {
			// Undelivered records reached their callbacks with
			// ErrClosed and were routed (spooled) like any failure.
			if ce, ok := errors.AsType[*kafkaproducer.CloseError](err); ok {
				d.log.Warn("closing: records not delivered were routed to the spool", zap.Int("records", len(ce.Undelivered)))
			} else {
				errs = append(errs, err)
			}
		}
	}
	// 2. Flush, then 3. wait for every accepted record to be routed.
	// Whatever is still outstanding when ctx ends is cut off by closing
	// the producer, which fails it into the routing path.
	idle := make(chan struct{})
	go func() { // owned here: close always waits for it below
		d.inflight.Wait()
		close(idle)
	}()
	if err := d.p.Flush(ctx); err != nil {
		closeP()
	}
	select {
	case <-idle:
	case <-ctx.Done():
		if !pClosed {
			closeP()
		}
		<-idle
	}
	// 4. Stop the router; every record has been reported.
	close(d.stopRt)
	<-d.rtDone
	// 5. Close the producers and the spool.
	if !pClosed {
		closeP()
	}
	if d.dlt != d.p {
		if err := d.dlt.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("kprod: close dead-letter producer: %w", err))
		}
	}
	if d.sp != nil {
		st := d.sp.Stats()
		d.cfg.Observer.OnSpoolSize(st.Records, st.Bytes)
		if err := d.sp.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
