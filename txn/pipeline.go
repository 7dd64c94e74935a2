package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	// TransactionalID is the pipeline's transactional ID. Required,
	// and unique per running pipeline instance.
	TransactionalID string
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
	s   *kgo.GroupTransactSession
	pc  PipelineConfig
	fn  Transform
	o   options
	log *zap.Logger
	cfg kafkaproducer.Config

	runMu     sync.Mutex // held while Run runs
	closeOnce sync.Once
	stop      chan struct{}
}

// NewPipeline builds a pipeline from a producer config (whose
// TransactionalID must be empty; set PipelineConfig.TransactionalID) and
// initialises its producer ID (bounded by WithInitTimeout). It does not
// consume until Run.
func NewPipeline(cfg kafkaproducer.Config, pc PipelineConfig, fn Transform, opts ...Option) (*Pipeline, error) {
	switch {
	case pc.TransactionalID == "":
		return nil, &kafkaproducer.ConfigError{Field: "PipelineConfig.TransactionalID", Reason: "required"}
	case pc.Group == "":
		return nil, &kafkaproducer.ConfigError{Field: "PipelineConfig.Group", Reason: "required: offsets commit through a consumer group"}
	case len(pc.Topics) == 0:
		return nil, &kafkaproducer.ConfigError{Field: "PipelineConfig.Topics", Reason: "no input topics"}
	case fn == nil:
		return nil, &kafkaproducer.ConfigError{Field: "Transform", Reason: "nil transform"}
	case cfg.TransactionalID != "":
		return nil, &kafkaproducer.ConfigError{Field: "TransactionalID", Reason: "set PipelineConfig.TransactionalID instead"}
	}
	if pc.MaxRecordsPerTxn <= 0 {
		pc.MaxRecordsPerTxn = 10_000
	}
	cfg.TransactionalID = pc.TransactionalID
	kopts, err := cfg.ClientOpts()
	if err != nil {
		return nil, err
	}
	kopts = append(kopts,
		kgo.ConsumerGroup(pc.Group),
		kgo.ConsumeTopics(pc.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	kopts = append(kopts, pc.ConsumerOpts...)
	s, err := kgo.NewGroupTransactSession(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kprod: build transact session: %w", err)
	}
	o := buildOptions(opts)
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	p := &Pipeline{
		s:    s,
		pc:   pc,
		fn:   fn,
		o:    o,
		log:  log.Named("kprod.txn.pipeline").With(zap.String("transactional_id", pc.TransactionalID), zap.String("group", pc.Group)),
		cfg:  cfg,
		stop: make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.initTimeout)
	defer cancel()
	if _, _, err := s.Client().ProducerID(ctx); err != nil {
		s.Close()
		if isFenced(err) {
			return nil, fmt.Errorf("kprod: init transactional id %q: %w", pc.TransactionalID, fencedErr(err))
		}
		return nil, fmt.Errorf("kprod: init transactional id %q: %w", pc.TransactionalID, err)
	}
	return p, nil
}

// Client returns the session's franz-go client, for inspection (lag,
// offsets). Do not produce, consume or end transactions through it.
func (p *Pipeline) Client() *kgo.Client { return p.s.Client() }

// Run consumes, transforms and commits until ctx ends or Close is called
// (returning nil), or until a transaction fails in a way retrying cannot
// fix: a Transform error that is not a retriable Kafka error, fencing
// (matching kafkaproducer.ErrFenced), or an error ending a transaction.
// Retriable failures abort, rewind and retry with backoff, up to
// WithMaxAttempts times in a row. Run must not be called concurrently
// with itself.
func (p *Pipeline) Run(ctx context.Context) error {
	if !p.runMu.TryLock() {
		return errors.New("kprod: pipeline Run called concurrently")
	}
	defer p.runMu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	failures := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		fetches := p.s.PollRecords(ctx, p.pc.MaxRecordsPerTxn)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			p.log.Warn("fetch error", zap.String("topic", topic), zap.Int32("partition", partition), zap.Error(err))
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		committed, err := p.transact(ctx, recs, failures+1)
		switch {
		case err == nil && committed:
			failures = 0
			continue
		case err == nil:
			// A rebalance aborted the transaction; the records go
			// to whoever owns their partitions now.
			continue
		case ctx.Err() != nil && !isFenced(err) && !errors.Is(err, ErrBroken):
			return nil
		}
		failures++
		if !retriable(err) || failures >= p.o.maxAttempts {
			return &TxnError{TransactionalID: p.pc.TransactionalID, Attempts: failures, Err: err}
		}
		wait := p.o.backoff(failures)
		p.log.Info("transaction aborted; retrying from the committed offsets", zap.Error(err), zap.Duration("backoff", wait))
		select {
		case <-p.o.after(wait):
		case <-ctx.Done():
			return nil
		}
	}
}

// transact runs one transaction over recs. It returns committed=false
// with a nil error when the session aborted because of a rebalance.
func (p *Pipeline) transact(ctx context.Context, recs []*kgo.Record, attempt int) (committed bool, err error) {
	start := p.o.now()
	if err := p.s.Begin(); err != nil {
		return false, fmt.Errorf("%w: begin transaction: %w", ErrBroken, err)
	}
	var me pid
	me.id, me.epoch, _ = p.s.Client().ProducerID(ctx)
	tx := newTx(p.pc.TransactionalID, p.send, nil)
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
			cause = awaitLoaded(ctx, cl, tx.writtenTo(), p.o.endTimeout)
		}
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.o.endTimeout)
	defer cancel()
	if !flushed {
		if err := cl.AbortBufferedRecords(ectx); err == nil {
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
	a := Attempt{
		TransactionalID: p.pc.TransactionalID,
		Outcome:         OutcomeAborted,
		Number:          attempt,
		Duration:        p.o.now().Sub(start),
		EndLatency:      p.o.now().Sub(t0),
	}
	if committed {
		a.Outcome = OutcomeCommitted
	}
	err = cause
	if endErr != nil {
		err = errors.Join(cause, fmt.Errorf("kprod: end transaction: %w", endErr))
		if isFenced(endErr) || fencedBy(ectx, cl, p.pc.TransactionalID, me) {
			err = fencedErr(err)
		} else {
			err = fmt.Errorf("%w: %w", ErrBroken, err)
		}
	}
	if err != nil {
		a.Err, a.Class = err, kafkaproducer.Classify(err).String()
		a.Retrying = retriable(err) && attempt < p.o.maxAttempts && ctx.Err() == nil
	}
	p.o.observe(a)
	if panicked {
		panic(pv)
	}
	return committed, err
}

// send produces one record through the session's client, reporting it
// as a kafkaproducer.Producer does: the same refusals, a *SendError with
// kprod's sentinels on failure (Config.ResultFor), explicit partitions
// pinned (NewKgoRecord), hooks called.
func (p *Pipeline) send(ctx context.Context, rec kafkaproducer.Record, cb func(kafkaproducer.Result)) error {
	start := p.o.now()
	if err := p.cfg.CheckRecord(&rec, start); err != nil {
		res := kafkaproducer.FailedResult(rec, err)
		p.hooks(res)
		return res.Err
	}
	p.s.Produce(ctx, kafkaproducer.NewKgoRecord(ctx, rec), func(r *kgo.Record, err error) {
		res := p.cfg.ResultFor(r, err, p.o.now().Sub(start))
		p.hooks(res)
		cb(res)
	})
	return nil
}

func (p *Pipeline) hooks(res kafkaproducer.Result) {
	for _, h := range p.cfg.Hooks {
		h.OnRecordDone(res)
	}
}

// Close stops Run (an open transaction aborts), waits for it to return,
// and leaves the group. It is idempotent.
func (p *Pipeline) Close() {
	p.closeOnce.Do(func() {
		close(p.stop)
		p.runMu.Lock() // wait for Run
		defer p.runMu.Unlock()
		p.s.Close()
	})
}
