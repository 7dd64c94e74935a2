package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"
)

// Func is the body of a transaction. Send through tx; return nil to commit,
// an error to abort. ctx is Run's context, canceled early if the producer
// is closed while the function runs.
type Func func(ctx context.Context, tx *Tx) error

// Producer is a transactional producer: one transactional ID, one
// transaction at a time. It is safe for concurrent use (concurrent Runs
// queue up); use a Pool to run many transactions at once.
type Producer struct {
	kp  *kafkaproducer.Producer
	cl  *kgo.Client
	id  string
	o   Config // defaults filled in
	log *zap.Logger

	slot int // member number in a Pool

	// sem holds one token while a Run is active: one transaction at a
	// time. done is closed when Close starts.
	sem  chan struct{}
	done chan struct{}

	mu        sync.Mutex // guards the fields below
	broken    error
	closing   bool
	cancelRun context.CancelFunc

	closeOnce  sync.Once
	closeErr   error
	closeStuck bool  // set by Close when a Run outlived its ctx
	kpCloseErr error // the underlying producer's Close error
}

// New builds a transactional producer: cfg with TransactionalID set to
// tc.ID, built by kafkaproducer.New, so sends keep its per-record results,
// hooks and buffer bounds. New initialises the producer ID with the
// transaction coordinator before it returns (bounded by tc.InitTimeout),
// so a bad ID, a missing ACL or an unreachable cluster fails here rather
// than in the first Run. Initialising also fences any older instance with
// the same ID and aborts its open transaction.
//
// cfg.TransactionTimeout is how long the broker lets one transaction stay
// open before aborting it (zero means franz-go's 40s). Invalid settings
// fail with a *kafkaproducer.ConfigError naming the field.
func New(cfg kafkaproducer.Config, tc Config) (*Producer, error) {
	tc, err := tc.withDefaults("Config")
	if err != nil {
		return nil, err
	}
	id := tc.ID
	if cfg.TransactionalID != "" && cfg.TransactionalID != id {
		return nil, &kafkaproducer.ConfigError{Field: "TransactionalID", Reason: fmt.Sprintf("cfg.TransactionalID %q differs from Config.ID %q: leave cfg.TransactionalID empty", cfg.TransactionalID, id)}
	}
	cfg.TransactionalID = id
	kp, err := kafkaproducer.New(cfg)
	if err != nil {
		return nil, err
	}
	log := kp.Config().Logger
	if log == nil {
		log = zap.NewNop()
	}
	p := &Producer{
		kp:   kp,
		cl:   kp.Client(),
		id:   id,
		o:    tc,
		log:  log.Named("txn").With(zap.String("transactional_id", id)),
		sem:  make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), tc.InitTimeout)
	defer cancel()
	if _, _, err := p.cl.ProducerID(ctx); err != nil {
		closeCtx, closeCancel := context.WithTimeout(context.Background(), time.Second)
		defer closeCancel()
		_ = kp.Close(closeCtx)
		if isFenced(err) {
			return nil, fmt.Errorf("kprod: init transactional id %q: %w", id, fencedErr(err))
		}
		return nil, fmt.Errorf("kprod: init transactional id %q: %w", id, err)
	}
	p.log.Debug("transactional producer ready")
	return p, nil
}

// TransactionalID returns the producer's transactional ID.
func (p *Producer) TransactionalID() string { return p.id }

// Err returns why the producer refuses work: an error matching
// kafkaproducer.ErrFenced or ErrBroken, or kafkaproducer.ErrClosed once
// Close has begun; nil while it is usable.
func (p *Producer) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken != nil {
		return p.broken
	}
	if p.closing {
		return fmt.Errorf("kprod: transactional id %q: %w", p.id, kafkaproducer.ErrClosed)
	}
	return nil
}

// setBroken makes err final: every later Run returns it.
func (p *Producer) setBroken(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.broken == nil {
		p.broken = err
		p.log.Warn("transactional producer is no longer usable", zap.Error(err))
	}
	return p.broken
}

// Run runs fn inside a transaction and commits it if fn returns nil and
// every record sent through tx was written; otherwise it aborts, and none
// of the records become visible to read_committed consumers.
//
// An error from fn, a failed record (even one fn ignored), a panic in fn or
// ctx ending before the commit all abort. A panic is re-raised after the
// abort. When the cause is one Kafka marks abortable, retriable or timed
// out (kafkaproducer.Classify gives ClassAbortable, ClassRetriable or
// ClassTimeout), Run aborts, waits a backoff and runs fn again in a new
// transaction, up to Config.MaxAttempts times: fn must be safe to run more
// than once (it should only produce through tx). Fencing is final: Run
// returns an error matching kafkaproducer.ErrFenced and so does every
// later call. Errors are *TxnError.
//
// Once the commit has been sent, canceling ctx no longer interrupts it
// (it is bounded by Config.EndTimeout instead), because an interrupted
// commit has an unknown outcome (ErrCommitUnknown).
func (p *Producer) Run(ctx context.Context, fn Func) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return &TxnError{TransactionalID: p.id, Err: ctx.Err()}
	case <-p.done:
		return &TxnError{TransactionalID: p.id, Err: p.Err()}
	}
	defer func() { <-p.sem }()
	for attempt := 1; ; attempt++ {
		if err := p.Err(); err != nil {
			return &TxnError{TransactionalID: p.id, Attempts: attempt - 1, Err: err}
		}
		r := p.attempt(ctx, fn)
		if r.panicked {
			p.o.observe(p.id, r.outcome, r.err, false, r.endLatency)
			panic(r.panicVal)
		}
		if r.err == nil {
			p.o.observe(p.id, r.outcome, nil, false, r.endLatency)
			return nil
		}
		retrying := attempt < p.o.MaxAttempts && retriable(r.err) && ctx.Err() == nil && p.Err() == nil
		p.o.observe(p.id, r.outcome, r.err, retrying, r.endLatency)
		if !retrying {
			return &TxnError{TransactionalID: p.id, Attempts: attempt, Err: r.err}
		}
		wait := p.o.backoff(attempt)
		p.log.Info("transaction aborted; retrying", zap.Int("attempt", attempt), zap.Duration("backoff", wait), zap.Error(r.err))
		select {
		case <-p.o.Clock.After(wait):
		case <-ctx.Done():
			return &TxnError{TransactionalID: p.id, Attempts: attempt, Err: r.err}
		case <-p.done:
			return &TxnError{TransactionalID: p.id, Attempts: attempt, Err: r.err}
		}
	}
}

// retriable reports whether a whole transaction may be run again after err.
func retriable(err error) bool {
	if errors.Is(err, ErrCommitUnknown) || errors.Is(err, ErrBroken) || isFenced(err) {
		return false
	}
	var pe *PanicError
	if errors.As(err, &pe) {
		return false
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassAbortable, kafkaproducer.ClassRetriable, kafkaproducer.ClassTimeout:
		return true
	}
	return false
}

type attemptResult struct {
	outcome    string
	err        error
	endLatency time.Duration
	panicked   bool
	panicVal   any
}

// call runs fn, turning a panic into a result.
func call(ctx context.Context, tx *Tx, fn Func) (panicked bool, val any, err error) {
	defer func() {
		if v := recover(); v != nil {
			panicked, val = true, v
		}
	}()
	return false, nil, fn(ctx, tx)
}

func (p *Producer) attempt(ctx context.Context, fn Func) attemptResult {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.mu.Lock()
	if p.closing || p.broken != nil {
		p.mu.Unlock()
		return attemptResult{outcome: OutcomeAborted, err: p.Err()}
	}
	p.cancelRun = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.cancelRun = nil
		p.mu.Unlock()
	}()

	if err := p.cl.BeginTransaction(); err != nil {
		err = fmt.Errorf("kprod: begin transaction: %w", err)
		if isFenced(err) {
			return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fencedErr(err))}
		}
		return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fmt.Errorf("%w: %w", ErrBroken, err))}
	}
	// Remember who we are in this transaction, to tell fencing apart
	// from other fatal answers later. The ID is loaded by now, so this
	// is a read.
	var me pid
	me.id, me.epoch, _ = p.cl.ProducerID(runCtx)
	tx := newTx(p.id, p.kp.SendAsync, p.kp.SendBatch)
	panicked, pv, fnErr := call(runCtx, tx, fn)
	tx.seal()

	cause := fnErr
	if panicked {
		cause = &PanicError{Value: pv}
	}
	if cause == nil {
		cause = tx.Err()
	}
	if cause == nil {
		cause = runCtx.Err()
	}
	if cause == nil {
		if err := p.cl.Flush(runCtx); err != nil {
			cause = err
		}
	}
	if cause == nil {
		tx.wait()
		cause = tx.Err()
	}
	var unlisted error
	if cause == nil {
		unlisted = awaitLoaded(ctx, p.cl, tx.writtenTo(), p.o.EndTimeout)
		cause = unlisted
	}
	var r attemptResult
	if cause == nil {
		r = p.commit(ctx, me)
	} else {
		r = p.abort(ctx, tx, cause, me)
	}
	if unlisted != nil {
		// Aborted all the same, but this client is never trusted
		// with another transaction.
		r.err = p.setBroken(unlisted)
	}
	r.panicked, r.panicVal = panicked, pv
	return r
}

// endCtx is the detached, bounded context for ending a transaction.
func (p *Producer) endCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), p.o.EndTimeout)
}

// pid is a producer ID and epoch.
type pid struct {
	id    int64
	epoch int16
}

// fenced asks the transaction coordinator who owns the transactional ID
// now (DescribeTransactions, which changes nothing): a different producer
// ID or a newer epoch than ours means a newer instance fenced us. Brokers
// do not always say PRODUCER_FENCED: under KIP-890 a stale EndTxn can be
// answered INVALID_TXN_STATE.
func (p *Producer) fenced(ctx context.Context, me pid) bool {
	return fencedBy(ctx, p.cl, p.id, me)
}

func fencedBy(ctx context.Context, cl *kgo.Client, txid string, me pid) bool {
	if me.id < 0 {
		return false
	}
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{txid}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil || len(resp.TransactionStates) != 1 {
		return false
	}
	st := resp.TransactionStates[0]
	if kerr.ErrorForCode(st.ErrorCode) != nil {
		return false
	}
	return st.ProducerID != me.id || st.ProducerEpoch > me.epoch
}

// classifyFatal turns a fatal Kafka answer into a final error: fenced if
// the coordinator says a newer instance owns the ID, broken otherwise.
func (p *Producer) classifyFatal(ctx context.Context, me pid, err error) error {
	if isFenced(err) || p.fenced(ctx, me) {
		return p.setBroken(fencedErr(err))
	}
	return p.setBroken(fmt.Errorf("%w: %w", ErrBroken, err))
}

func (p *Producer) commit(ctx context.Context, me pid) attemptResult {
	ectx, cancel := p.endCtx(ctx)
	defer cancel()
	t0 := p.o.Clock.Now()
	err := p.cl.EndTransaction(ectx, kgo.TryCommit)
	lat := p.o.Clock.Now().Sub(t0)
	if err == nil {
		return attemptResult{outcome: OutcomeCommitted, endLatency: lat}
	}
	err = fmt.Errorf("kprod: commit transaction: %w", err)
	if isFenced(err) {
		// The broker aborted the transaction when the newer instance
		// initialised; talking to the coordinator again could only
		// disturb that instance.
		return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fencedErr(err)), endLatency: lat}
	}
	notAttempted := errors.Is(err, kerr.OperationNotAttempted)
	if notAttempted {
		// The producer ID failed earlier (after a failed produce):
		// find out whether that was fencing before aborting.
		if _, _, idErr := p.cl.ProducerID(ectx); isFenced(idErr) || p.fenced(ectx, me) {
			return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fencedErr(errors.Join(err, idErr))), endLatency: lat}
		}
	} else if !ambiguousEnd(err) && kafkaproducer.Classify(err) == kafkaproducer.ClassFatal {
		// A definite, fatal refusal: the transaction did not commit,
		// and this producer cannot go on.
		return attemptResult{outcome: OutcomeAborted, err: p.classifyFatal(ectx, me, err), endLatency: lat}
	}
	// franz-go's documented recovery for every commit failure is an
	// abort: it ends the transaction, or, when the commit's outcome is
	// unconfirmed, reloads the producer ID, which bumps the epoch and
	// aborts whatever is still open.
	if abErr := p.endAbort(ectx, me); abErr != nil {
		err = errors.Join(err, abErr)
		if isFenced(abErr) {
			return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fencedErr(err)), endLatency: lat}
		}
	}
	if !notAttempted && ambiguousEnd(err) {
		return attemptResult{outcome: OutcomeUnknown, err: fmt.Errorf("%w: %w", ErrCommitUnknown, err), endLatency: lat}
	}
	return attemptResult{outcome: OutcomeAborted, err: err, endLatency: lat}
}

// endAbort sends EndTxn(abort), marking the producer broken on a fatal
// answer. A retriable failure is left to franz-go, which reloads the
// producer ID (aborting the transaction) at the next begin.
func (p *Producer) endAbort(ctx context.Context, me pid) error {
	err := p.cl.EndTransaction(ctx, kgo.TryAbort)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("kprod: abort transaction: %w", err)
	if isFenced(err) || (kafkaproducer.Classify(err) == kafkaproducer.ClassFatal && !ambiguousEnd(err)) {
		return p.classifyFatal(ctx, me, err)
	}
	p.log.Warn("abort did not confirm; the producer ID will be reloaded at the next transaction", zap.Error(err))
	return err
}

func (p *Producer) abort(ctx context.Context, tx *Tx, cause error, me pid) attemptResult {
	ectx, cancel := p.endCtx(ctx)
	defer cancel()
	if err := p.cl.AbortBufferedRecords(ectx); err != nil {
		// Records are still in flight after the end timeout: the
		// client's transactional state is unknown.
		return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fmt.Errorf("%w: abort buffered records: %w (cause: %w)", ErrBroken, err, cause))}
	}
	tx.wait()
	if isFenced(cause) {
		// The newer instance's initialisation already aborted this
		// transaction; do not talk to the coordinator again.
		return attemptResult{outcome: OutcomeAborted, err: p.setBroken(fencedErr(cause))}
	}
	t0 := p.o.Clock.Now()
	abErr := p.endAbort(ectx, me)
	lat := p.o.Clock.Now().Sub(t0)
	if abErr != nil {
		if perr := p.Err(); perr != nil {
			return attemptResult{outcome: OutcomeAborted, err: fmt.Errorf("%w (cause: %w)", perr, cause), endLatency: lat}
		}
		p.log.Debug("abort error after failed transaction", zap.Error(abErr), zap.NamedError("cause", cause))
	}
	return attemptResult{outcome: OutcomeAborted, err: cause, endLatency: lat}
}

// Close aborts a transaction in progress (by canceling its function's
// context), waits for it to end while ctx allows, then closes the
// underlying producer. Later Runs fail with an error matching
// kafkaproducer.ErrClosed. Close is idempotent: later calls return the
// first call's result.
//
// If the function ignores its context and is still running when ctx
// ends, Close closes the producer under it and returns an error wrapping
// ctx's error that says so: the function's later sends fail with
// kafkaproducer.ErrClosed and Run returns when the function does. The
// transaction it had open is aborted by the broker when
// cfg.TransactionTimeout expires, or at once when a new producer with the
// same transactional ID starts; its records never become visible, but
// until then read_committed consumers of its partitions are held back.
func (p *Producer) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		cancel := p.cancelRun
		p.mu.Unlock()
		close(p.done)
		if cancel != nil {
			cancel()
		}
		var stuck error
		select {
		case p.sem <- struct{}{}: // idle: no need to look at ctx
		default:
			select {
			case p.sem <- struct{}{}:
			case <-ctx.Done():
				p.log.Warn("close: transaction still running; closing the client under it")
				p.closeStuck = true
				stuck = fmt.Errorf("kprod: close transactional id %q: the transaction function ignored its context and is still running; its transaction stays open until the broker aborts it: %w", p.id, ctx.Err())
			}
		}
		p.kpCloseErr = p.kp.Close(ctx)
		p.closeErr = errors.Join(stuck, p.kpCloseErr)
	})
	return p.closeErr
}

// closeAll closes the producer like Close and reports whether a
// transaction was still running when it gave up waiting, and the
// underlying producer's Close error.
func (p *Producer) closeAll(ctx context.Context) (stuck bool, err error) {
	_ = p.Close(ctx)
	return p.closeStuck, p.kpCloseErr
}
