package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// Transform handles one consumed record inside the pipeline's current
// transaction: produce its outputs through tx (any topics) and return nil,
// or return an error to abort the transaction. It runs on the pipeline's
// goroutine, one record at a time, in partition order. It may run more than
// once for the same record (after an abort), so it must only produce
// through tx; whatever it produced in an aborted transaction is never
// visible to read_committed consumers.
type Transform func(ctx context.Context, rec *kgo.Record, tx *Tx) error

// PipelineConfig says what a Pipeline consumes and how it commits.
type PipelineConfig struct {
	// Config holds the transaction settings; its ID is the pipeline's
	// transactional ID. Required, and unique per running pipeline
	// instance. MaxAttempts bounds the failed transactions in a row
	// that Run retries.
	Config
	// Group is the consumer group whose offsets commit inside the
	// transactions. Required.
	Group string
	// Topics are the input topics. Required.
	Topics []string
	// MaxRecordsPerTxn bounds how many consumed records one
	// transaction covers. Zero means 10,000.
	MaxRecordsPerTxn int
	// ConsumerOpts are extra franz-go options for the consumer side
	// (session timeouts, balancers, start offset), applied after
	// kprod's. Do not change the isolation level or disable stable
	// offsets: exactly-once depends on them.
	ConsumerOpts []kgo.Opt
}

// Pipeline is an exactly-once consume-transform-produce loop on franz-go's
// GroupTransactSession: it polls records from the input topics with
// read_committed isolation, runs Transform on each inside a transaction,
// and commits the consumed offsets in that same transaction. Every input
// record's outputs become visible exactly once, across crashes, restarts
// and rebalances: a transaction that aborts (a Transform error, a failed
// output, a rebalance, a shutdown) rewinds the consumer to the last
// committed offsets, and its outputs are never visible.
//
// Run it on one goroutine; Close from any.
type Pipeline struct {
	s    *kgo.GroupTransactSession
	prod *kafkaproducer.Producer // on the session's client
	pc   PipelineConfig
	fn   Transform
	o    Config // pc.Config with defaults filled in
	log  *zap.Logger

	running   chan struct{} // holds a token while Run runs
	stop      chan struct{} // closed when Close starts
	closeOnce sync.Once
	closeErr  error
}

// NewPipeline builds a pipeline from a producer config (whose
// TransactionalID must be empty; set PipelineConfig.ID) and initialises
// its producer ID (bounded by PipelineConfig.InitTimeout). It does not
// consume until Run. Invalid settings fail with a
// *kafkaproducer.ConfigError naming the field.
func NewPipeline(cfg kafkaproducer.Config, pc PipelineConfig, fn Transform) (*Pipeline, error) {
	o, err := pc.Config.withDefaults("PipelineConfig")
	if err != nil {
		return nil, err
	}
	switch {
	case pc.Group == "":
		return nil, &kafkaproducer.ConfigError{Field: "PipelineConfig.Group", Reason: "required: offsets commit through a consumer group"}
	case len(pc.Topics) == 0:
		return nil, &kafkaproducer.ConfigError{Field: "PipelineConfig.Topics", Reason: "no input topics"}
	case fn == nil:
		return nil, &kafkaproducer.ConfigError{Field: "Transform", Reason: "nil transform"}
	case cfg.TransactionalID != "":
		return nil, &kafkaproducer.ConfigError{Field: "TransactionalID", Reason: "set PipelineConfig.ID instead"}
	case pc.MaxRecordsPerTxn < 0:
		return nil, &kafkaproducer.ConfigError{Field: "PipelineConfig.MaxRecordsPerTxn", Reason: fmt.Sprintf("negative (%d): 0 means 10,000", pc.MaxRecordsPerTxn)}
	}
	if pc.MaxRecordsPerTxn == 0 {
		pc.MaxRecordsPerTxn = 10_000
	}
	pc.Config = o
	cfg.TransactionalID = o.ID
	// The records go out through a Producer, so they are checked,
	// placed and reported as any other kprod record; its client is
	// the session's.
	var s *kgo.GroupTransactSession
	cfg.NewClient = func(opts ...kgo.Opt) (*kgo.Client, error) {
		opts = append(opts,
			kgo.ConsumerGroup(pc.Group),
			kgo.ConsumeTopics(pc.Topics...),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		)
		var err error
		if s, err = kgo.NewGroupTransactSession(append(opts, pc.ConsumerOpts...)...); err != nil {
			return nil, fmt.Errorf("kprod: build transact session: %w", err)
		}
		return s.Client(), nil
	}
	prod, err := kafkaproducer.New(cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	p := &Pipeline{
		s:       s,
		prod:    prod,
		pc:      pc,
		fn:      fn,
		o:       o,
		log:     log.Named("kprod.txn.pipeline").With(zap.String("transactional_id", o.ID), zap.String("group", pc.Group)),
		running: make(chan struct{}, 1),
		stop:    make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.InitTimeout)
	defer cancel()
	if _, _, err := s.Client().ProducerID(ctx); err != nil {
		_ = prod.Close(ctx)
		if isFenced(err) {
			return nil, fmt.Errorf("kprod: init transactional id %q: %w", o.ID, fencedErr(err))
		}
		return nil, fmt.Errorf("kprod: init transactional id %q: %w", o.ID, err)
	}
	return p, nil
}

// Client returns the session's franz-go client, for inspection (lag,
// offsets). Do not produce, consume or end transactions through it.
func (p *Pipeline) Client() *kgo.Client { return p.s.Client() }

// FetchError is returned by Pipeline.Run when consuming an input
// partition failed in a way that puts the pipeline's input at risk:
//
//   - records lost to retention or truncation before they were consumed
//     (Err is franz-go's *kgo.ErrDataLoss). franz-go has already moved
//     on to the next offset that exists; Run keeps going until it has
//     committed a transaction past the gap (so that a restart does not
//     report the same loss again), or until ctx ends or Close, and then
//     returns the FetchError instead of nil;
//   - an authorization failure (on a topic or the group), or another
//     fetch error Kafka does not mark retriable: Run returns at once,
//     without processing that poll; the next Run resumes from the last
//     committed offsets.
//
// Retriable fetch errors (and franz-go rejoining the group after a
// session error) are logged and polled through.
type FetchError struct {
	Topic     string
	Partition int32
	Err       error
}

func (e *FetchError) Error() string {
	return fmt.Sprintf("kprod: pipeline fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// fetchFatal reports whether a fetch error stops Run at once.
func fetchFatal(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if gs, ok := errors.AsType[*kgo.ErrGroupSession](err); ok {
		// franz-go rejoins by itself; only a refusal stops it for good.
		return kafkaproducer.Classify(gs.Err) == kafkaproducer.ClassAuthorization
	}
	return !kerr.IsRetriable(err)
}

// Run consumes, transforms and commits until ctx ends or Close is called
// (returning nil), or until a transaction fails in a way retrying cannot
// fix: a Transform error that is not a retriable Kafka error, fencing
// (matching kafkaproducer.ErrFenced), or an error ending a transaction
// (a *TxnError); or until consuming puts the input at risk (a
// *FetchError: lost records, a refused authorization). Retriable failures
// abort, rewind and retry with backoff, up to PipelineConfig.MaxAttempts
// times in a row. Run must not be called concurrently with itself
// (ErrPipelineRunning), nor after Close (an error matching
// kafkaproducer.ErrClosed).
func (p *Pipeline) Run(ctx context.Context) error {
	select {
	case <-p.stop:
		return fmt.Errorf("kprod: pipeline %q: %w", p.o.ID, kafkaproducer.ErrClosed)
	default:
	}
	select {
	case p.running <- struct{}{}:
	default:
		return ErrPipelineRunning
	}
	defer func() { <-p.running }()
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	defer func() {
		cancel()
		<-stopped
	}()
	go func() {
		defer close(stopped)
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var lost error // a *FetchError for lost records, returned once a commit is past it
	failures := 0
	for {
		if ctx.Err() != nil {
			return lost
		}
		fetches := p.s.PollRecords(ctx, p.pc.MaxRecordsPerTxn)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return lost
		}
		var fatal error
		fetches.EachError(func(topic string, partition int32, err error) {
			fe := &FetchError{Topic: topic, Partition: partition, Err: err}
			if _, ok := errors.AsType[*kgo.ErrDataLoss](err); ok {
				p.log.Error("input records lost before they were consumed", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
				if lost == nil {
					lost = fe
				}
				return
			}
			p.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
			if fatal == nil && fetchFatal(err) {
				fatal = fe
			}
		})
		if fatal != nil {
			return withLost(fatal, lost)
		}
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		committed, err := p.transact(ctx, recs, failures+1)
		switch {
		case err == nil && committed:
			failures = 0
			if lost != nil {
				return lost
			}
			continue
		case err == nil:
			// A rebalance aborted the transaction; the records go
			// to whoever owns their partitions now.
			continue
		case ctx.Err() != nil && !isFenced(err) && !errors.Is(err, ErrBroken):
			return lost
		}
		failures++
		if !retriable(err) || failures >= p.o.MaxAttempts {
			return withLost(&TxnError{TransactionalID: p.o.ID, Attempts: failures, Err: err}, lost)
		}
		wait := p.o.backoff(failures)
		p.log.Info("transaction aborted; retrying from the committed offsets", zap.Error(err), zap.Duration("backoff", wait))
		select {
		case <-p.o.Clock.After(wait):
		case <-ctx.Done():
			return lost
		}
	}
}

// withLost adds a pending data-loss FetchError, if any, to err.
func withLost(err, lost error) error {
	if lost == nil {
		return err
	}
	return errors.Join(err, lost)
}

// transact runs one transaction over recs. It returns committed=false
// with a nil error when the session aborted because of a rebalance.
func (p *Pipeline) transact(ctx context.Context, recs []*kgo.Record, attempt int) (committed bool, err error) {
	if err := p.s.Begin(); err != nil {
		return false, fmt.Errorf("%w: begin transaction: %w", ErrBroken, err)
	}
	var me pid
	me.id, me.epoch, _ = p.s.Client().ProducerID(ctx)
	tx := newTx(p.o.ID, p.prod.SendAsync, nil)
	var cause error
	var panicked bool
	var pv any
	for _, r := range recs {
		var fnErr error
		panicked, pv, fnErr = call(ctx, tx, func(ctx context.Context, tx *Tx) error { return p.fn(ctx, r, tx) })
		if panicked {
			cause = &PanicError{Value: pv}
		} else if fnErr != nil {
			cause = fmt.Errorf("kprod: transform %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, fnErr)
		}
		if cause == nil {
			cause = tx.Err()
		}
		if cause != nil {
			break
		}
	}
	tx.seal()
	if cause == nil {
		cause = ctx.Err()
	}
	cl := p.s.Client()
	if cause == nil {
		if err := cl.Flush(ctx); err != nil {
			cause = err
		}
	}
	flushed := cause == nil
	if flushed {
		tx.wait()
		cause = tx.Err()
		if cause == nil {
			// Before ectx: the wait has its own bound, and a timed-out
			// wait (ErrBroken) must leave End its full time to abort.
			cause = awaitLoaded(ctx, cl, tx.writtenTo(), p.o.EndTimeout)
		}
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.EndTimeout)
	defer cancel()
	if !flushed {
		if err := cl.AbortBufferedRecords(ectx); err != nil {
			// Records are still in flight after the end timeout:
			// the client's transactional state is unknown.
			cause = fmt.Errorf("%w: abort buffered records: %w (cause: %w)", ErrBroken, err, cause)
		} else {
			tx.wait()
		}
	}
	t0 := p.o.now()
	var endErr error
	if isFenced(cause) {
		// The newer instance already aborted this transaction.
		endErr = cause
	} else {
		committed, endErr = p.s.End(ectx, cause == nil)
	}
	endLatency := p.o.now().Sub(t0)
	if isFenced(cause) {
		endLatency = 0 // no EndTxn sent
	}
	outcome := OutcomeAborted
	if committed {
		outcome = OutcomeCommitted
	}
	err = cause
	if endErr != nil {
		err = errors.Join(cause, fmt.Errorf("kprod: end transaction: %w", endErr))
		if isFenced(endErr) || fencedBy(ectx, cl, p.o.ID, me) {
			err = fencedErr(err)
		} else if !errors.Is(err, ErrBroken) {
			err = fmt.Errorf("%w: %w", ErrBroken, err)
		}
	}
	retrying := err != nil && retriable(err) && attempt < p.o.MaxAttempts && ctx.Err() == nil
	p.o.observe(p.o.ID, outcome, err, retrying, endLatency)
	if panicked {
		panic(pv)
	}
	return committed, err
}

// Close stops Run (an open transaction aborts), waits for it to return
// while ctx allows, and leaves the group. Later Runs fail with an error
// matching kafkaproducer.ErrClosed. Close is idempotent: later calls
// return the first call's result.
//
// If Run has not returned when ctx ends (its Transform ignores its
// context, or ending the transaction takes longer than ctx allows), Close
// closes the session under it and returns an error wrapping ctx's error:
// the open transaction never commits (the broker aborts it when
// TransactionTimeout expires, or at once when a pipeline with the same
// ID starts), and Run returns when its Transform does.
func (p *Pipeline) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		close(p.stop)
		select {
		case p.running <- struct{}{}: // Run has returned, or never ran
			defer func() { <-p.running }()
		case <-ctx.Done():
			p.log.Warn("close: Run still running; closing the session under it")
			p.closeErr = fmt.Errorf("kprod: close pipeline %q: Run still running; its transaction stays open until the broker aborts it: %w", p.o.ID, ctx.Err())
		}
		// Closing the producer closes the session's client, which
		// leaves the group; there is nothing left to flush.
		if err := p.prod.Close(ctx); err != nil && p.closeErr == nil {
			p.closeErr = fmt.Errorf("kprod: close pipeline %q: %w", p.o.ID, err)
		}
	})
	return p.closeErr
}
