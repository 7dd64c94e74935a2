package txn

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/kprod/kprod/kafkaproducer"
	"go.uber.org/zap"
)

// Pool runs many transactions at once, one per transactional producer.
// Its members have the IDs "<prefix>-0" to "<prefix>-<size-1>" and are
// built on first use. A member that is fenced or broken is closed and
// replaced by a new instance with the same ID (whose initialisation
// fences any zombie), so the set of IDs stays bounded and stable across
// restarts. Use a prefix unique to this process instance (for example
// the pod name): two live pools with the same prefix keep fencing each
// other.
//
// A Pool is safe for concurrent use.
type Pool struct {
	cfg    kafkaproducer.Config
	tc     Config // defaults filled in; ID is the prefix
	prefix string
	log    *zap.Logger

	idle  chan *Producer // members ready for a transaction
	slots chan int       // member numbers with no live producer
	done  chan struct{}  // closed when Close starts

	mu      sync.Mutex // guards closing, busy and the Add side of running
	closing bool
	busy    map[*Producer]struct{} // members lent to a Run
	running sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// PoolConfig configures NewPool: the transaction settings every member
// gets, with ID as the members' ID prefix, and the pool's size.
type PoolConfig struct {
	// Config is applied to every member; its ID is the prefix: members
	// are "<ID>-0" to "<ID>-<Size-1>". Use a prefix unique to this
	// process instance (the pod name): two live pools with the same
	// prefix keep fencing each other.
	Config
	// Size is the most members (and concurrent transactions) the pool
	// has. Required, at least 1.
	Size int
}

// NewPool builds a pool of at most pc.Size transactional producers from
// cfg (whose TransactionalID must be empty). No producer is built until
// the first Run; call Warm to build them all now and fail fast on a bad
// configuration or ACL. Invalid settings fail with a
// *kafkaproducer.ConfigError naming the field.
func NewPool(cfg kafkaproducer.Config, pc PoolConfig) (*Pool, error) {
	tc, err := pc.Config.withDefaults("PoolConfig")
	if err != nil {
		return nil, err
	}
	prefix, size := tc.ID, pc.Size
	if size <= 0 {
		return nil, &kafkaproducer.ConfigError{Field: "PoolConfig.Size", Reason: fmt.Sprintf("pool size %d: need at least 1", size)}
	}
	if cfg.TransactionalID != "" {
		return nil, &kafkaproducer.ConfigError{Field: "TransactionalID", Reason: "set by the pool as <PoolConfig.ID>-<n>: leave it empty"}
	}
	vc := cfg
	vc.TransactionalID = prefix + "-0"
	if err := vc.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	p := &Pool{
		cfg:    cfg,
		tc:     tc,
		prefix: prefix,
		log:    log.Named("kprod.txn.pool").With(zap.String("prefix", prefix)),
		idle:   make(chan *Producer, size),
		slots:  make(chan int, size),
		done:   make(chan struct{}),
		busy:   make(map[*Producer]struct{}),
	}
	for i := range size {
		p.slots <- i
	}
	return p, nil
}

// ID returns member n's transactional ID.
func (p *Pool) ID(n int) string { return fmt.Sprintf("%s-%d", p.prefix, n) }

// Size returns the pool's maximum number of members.
func (p *Pool) Size() int { return cap(p.slots) }

// Warm builds every member that does not exist yet, returning the first
// error (members built so far stay in the pool).
func (p *Pool) Warm(ctx context.Context) error {
	if !p.enter() {
		return ErrPoolClosed
	}
	defer p.running.Done()
	var got []*Producer
	defer func() {
		for _, m := range got {
			p.put(m)
		}
	}()
	for {
		select {
		case n := <-p.slots:
			m, err := p.build(n)
			if err != nil {
				return err
			}
			got = append(got, m)
		default:
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (p *Pool) build(n int) (*Producer, error) {
	tc := p.tc
	tc.ID = p.ID(n)
	m, err := New(p.cfg, tc)
	if err != nil {
		p.slots <- n
		return nil, err
	}
	m.slot = n
	return m, nil
}

// get takes an idle member, or builds one in a free slot, waiting while
// all members are busy.
func (p *Pool) get(ctx context.Context) (*Producer, error) {
	select {
	case m := <-p.idle:
		return m, nil
	default:
	}
	select {
	case m := <-p.idle:
		return m, nil
	case n := <-p.slots:
		return p.build(n)
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, ErrPoolClosed
	}
}

// put returns a member: a usable one goes back to idle; a fenced, broken
// or closed one is closed and its slot freed for a replacement. Once the
// pool is closing, every returned member is closed (Close may already
// have emptied idle).
func (p *Pool) put(m *Producer) {
	p.mu.Lock()
	if err := m.Err(); err == nil && !p.closing {
		p.idle <- m // never blocks: at most Size members exist
		p.mu.Unlock()
		return
	}
	closing := p.closing
	p.mu.Unlock()
	if err := m.Err(); err != nil && !closing {
		p.log.Warn("replacing transactional producer", zap.String("transactional_id", m.id), zap.Error(err))
	}
	closeMember(m)
	p.slots <- m.slot
}

func closeMember(m *Producer) {
	ctx, cancel := context.WithTimeout(context.Background(), m.o.EndTimeout)
	defer cancel()
	_ = m.Close(ctx)
}

// Run runs fn in a transaction on a free member, waiting while ctx allows
// if all members are busy; see Producer.Run for the transaction's
// semantics. A member fenced or broken during fn is replaced before the
// next Run; the error still reports it (it matches kafkaproducer.ErrFenced
// or ErrBroken) so the caller knows this transaction did not commit.
func (p *Pool) Run(ctx context.Context, fn Func) error {
	if !p.enter() {
		return ErrPoolClosed
	}
	defer p.running.Done()

	m, err := p.get(ctx)
	if err != nil {
		return fmt.Errorf("kprod: transaction pool %q: %w", p.prefix, err)
	}
	p.mu.Lock()
	if p.closing {
		// Close began while this member was being built: Close
		// does not know it, so do not start a transaction on it.
		p.mu.Unlock()
		p.put(m)
		return fmt.Errorf("kprod: transaction pool %q: %w", p.prefix, ErrPoolClosed)
	}
	p.busy[m] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.busy, m)
		p.mu.Unlock()
		p.put(m)
	}()
	return m.Run(ctx, fn)
}

// enter registers a caller that may hold members, unless closing began.
func (p *Pool) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return false
	}
	p.running.Add(1)
	return true
}

// PoolCloseError is returned by Pool.Close when transaction functions
// were still running after its context ended and after their members
// were closed: functions that ignore their context. Busy names their
// transactional IDs.
type PoolCloseError struct {
	Busy []string
	Err  error // ctx's error, joined with errors closing members
}

func (e *PoolCloseError) Error() string {
	return fmt.Sprintf("kprod: close transaction pool: transactions still running on %s: %v", strings.Join(e.Busy, ", "), e.Err)
}

func (e *PoolCloseError) Unwrap() error { return e.Err }

// Close stops new Runs (they fail with ErrPoolClosed), lets running ones
// finish while ctx allows, and closes every member. It is idempotent:
// later calls return the first call's result.
//
// When ctx ends first, Close cancels the running transactions' contexts
// and closes their members, giving each up to Config.EndTimeout to abort
// its transaction. A function that ignores its context is not waited
// for: Close closes its member's client under it (its later sends fail
// with kafkaproducer.ErrClosed) and returns a *PoolCloseError naming the
// transactional IDs still busy. Their Runs return when the functions
// do, with an error; the transactions they left open never commit: the
// broker aborts them when cfg.TransactionTimeout expires, or at once
// when a producer with the same ID starts (the next pool with this
// prefix).
func (p *Pool) Close(ctx context.Context) error {
	p.closeOnce.Do(func() { p.closeErr = p.close(ctx) })
	return p.closeErr
}

func (p *Pool) close(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	close(p.done)
	finished := make(chan struct{})
	go func() {
		// Ends when the last Run returns; if a function ignores its
		// context that is after Close has returned.
		p.running.Wait()
		close(finished)
	}()
	var errs []error
	select {
	case <-finished:
	case <-ctx.Done():
		// Abort what is still running: closing a busy member
		// cancels its transaction and waits (up to the end timeout)
		// for the abort.
		p.log.Warn("close: transactions still running; aborting them")
		stuck, err := p.closeBusy()
		if err != nil {
			errs = append(errs, err)
		}
		if len(stuck) > 0 {
			p.log.Error("close: transaction functions ignore their context; returning without them",
				zap.Strings("transactional_ids", stuck))
			p.closeIdle(ctx)
			return &PoolCloseError{Busy: stuck, Err: errors.Join(append([]error{ctx.Err()}, errs...)...)}
		}
		// Every busy member's Run has ended; its Pool.Run only has
		// to hand the member back.
		<-finished
	}
	errs = append(errs, p.closeIdle(ctx)...)
	return errors.Join(errs...)
}

// closeIdle closes the idle members.
func (p *Pool) closeIdle(ctx context.Context) []error {
	var errs []error
	for {
		select {
		case m := <-p.idle:
			if err := m.Close(ctx); err != nil {
				errs = append(errs, err)
			}
		default:
			return errs
		}
	}
}

// closeBusy closes the members lent to Runs, which aborts their
// transactions, and returns the IDs of those whose function was still
// running when its member's end timeout passed.
func (p *Pool) closeBusy() (stuck []string, err error) {
	p.mu.Lock()
	busy := make([]*Producer, 0, len(p.busy))
	for m := range p.busy {
		busy = append(busy, m)
	}
	p.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, m := range busy {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(context.Background(), m.o.EndTimeout)
			defer cancel()
			s, err := m.closeAll(cctx)
			mu.Lock()
			defer mu.Unlock()
			if s {
				stuck = append(stuck, m.id)
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	sort.Strings(stuck)
	return stuck, errors.Join(errs...)
}
