package dlq

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/dlq/spool"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"
)

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
	// From the wrapped producer's Config, for precheck.
	manual          bool
	deliveryTimeout time.Duration

	state   atomic.Int32 // gobreaker.State, set under gobreaker's lock
	stateCh chan struct{}

	closeMu  sync.RWMutex
	closed   bool
	inflight sync.WaitGroup
	sem      chan struct{}

	qmu    sync.Mutex
	queue  []*item
	wake   chan struct{}
	stopRt chan struct{}
	rtDone chan struct{}

	// toSpool counts records handed to the router that may still go to
	// the spool: from enqueue until the router routes them elsewhere or
	// its spool Append returned. Under StrictOrder it holds new records
	// back like a non-empty spool does (see admit).
	toSpool atomic.Int64

	supCtx    context.Context
	supCancel context.CancelFunc
	supDone   chan struct{}

	replayMu     sync.Mutex // one Replay at a time; Close takes it for good
	replayClosed bool       // guarded by replayMu

	closeOnce sync.Once
	closeErr  error

	delivered, deadLettered, spooled, failed, replayed, ambiguous, pending atomic.Int64
}

// New wraps p. It takes ownership of p (and of Config.DeadLetterProducer):
// Close closes them. It opens the spool, if configured, and starts two
// goroutines (a router for failed records and a supervisor for pings,
// breaker events and replay) that Close stops. Damage the spool's
// recovery set aside while opening is counted in Stats.Quarantined and
// reported to Observer.OnSetAside before New returns; what earlier runs
// set aside is in Spool().SetAside().
func New(p *kafkaproducer.Producer, cfg Config) (*Producer, error) {
	if p == nil {
		return nil, &kafkaproducer.ConfigError{Field: "Producer", Reason: "nil producer"}
	}
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	pcfg := p.Config()
	log := cfg.Logger
	if log == nil {
		log = pcfg.Logger
	}
	if log == nil {
		log = zap.NewNop()
	}
	d := &Producer{
		p:               p,
		dlt:             p,
		cfg:             cfg,
		log:             log.Named("dlq"),
		ids:             newIDGen(),
		clientID:        pcfg.ClientID,
		manual:          pcfg.Partitioner == kafkaproducer.PartitionerManual,
		deliveryTimeout: pcfg.DeliveryTimeout,
		stateCh:         make(chan struct{}, 1),
		sem:             make(chan struct{}, cfg.MaxPending),
		wake:            make(chan struct{}, 1),
		stopRt:          make(chan struct{}),
		rtDone:          make(chan struct{}),
		supDone:         make(chan struct{}),
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
			for range r.Quarantined {
				d.setAside("", SetAsideQuarantined)
			}
		}
		if a, err := sp.SetAside(); err == nil && !a.Empty() {
			// Left by earlier runs: still waiting for an operator.
			d.log.Warn("spool holds records set aside", zap.String("dir", cfg.SpoolDir),
				zap.Int64("rejected_records", a.RejectedRecords), zap.Int("quarantine_files", a.QuarantineFiles))
		}
	}
	if !cfg.Breaker.Disable {
		d.cb = newBreaker(cfg.Breaker, func(to gobreaker.State) {
			d.state.Store(int32(to))
			select {
			case d.stateCh <- struct{}{}:
			default:
			}
		})
	}
	d.supCtx, d.supCancel = context.WithCancel(context.Background())
	go d.route()
	go d.supervise()
	return d, nil
}

// The reasons Observer.OnSetAside receives.
const (
	// SetAsideRejected: replay found a record neither its destination
	// nor its dead-letter topic will take (too large for both, say) and
	// moved it to the spool's rejected/ directory.
	SetAsideRejected = "rejected"
	// SetAsideQuarantined: the spool found damaged bytes (a frame that
	// fails its checksum) and moved them to its quarantine/ directory.
	SetAsideQuarantined = "quarantined"
)

// setAside reports a record the spool set aside (the spool counts it).
func (d *Producer) setAside(topic, reason string) {
	d.cfg.Observer.OnSetAside(topic, reason)
}

// Producer returns the wrapped producer (for Flush, Ping, Client). Do not
// Close it; Close the dead-letter Producer.
func (d *Producer) Producer() *kafkaproducer.Producer { return d.p }

// Spool returns the spool, or nil if none is configured.
func (d *Producer) Spool() *spool.Spool { return d.sp }

// Healthy reports whether sends currently go to Kafka: not closed and the
// breaker not open. For readiness checks; a spool that is still draining
// does not make the producer unhealthy, and neither do records set aside
// (see Stats.Rejected and Stats.Quarantined, Observer.OnSetAside and
// Replay's ErrSetAside: they need an operator, not a restart).
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
		st.Rejected, st.Quarantined = s.Rejected, s.QuarantinedRanges
	}
	return st
}
