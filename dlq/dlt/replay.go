package dlt

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultChunk is ReplayConfig.Chunk's default.
const DefaultChunk = 100

// DefaultGrace is ReplayConfig.Grace's default.
const DefaultGrace = 10 * time.Second

// ErrFailedAgain is wrapped by Replay's error when selected records
// failed again and went back to the dead-letter topic with both causes
// (ReplayStats.FailedAgain counts them). Everything else was replayed.
var ErrFailedAgain = errors.New("kprod: dead letters failed again and went back to the dead-letter topic")

// ErrUnacknowledged is wrapped, with ctx's error, by Replay's error when
// ctx ended and records handed to the producer were still unacknowledged
// after ReplayConfig.Grace. The position is committed before the first of
// them; a rerun looks for them on their destination (by
// kprod-dlt-replay-source) and does not send again those that arrived.
var ErrUnacknowledged = errors.New("kprod: dlt: replayed records still unacknowledged when the replay stopped")

// Observer receives Replay's counts, for metrics. Its methods take plain
// types so that *metrics.Metrics implements it without importing dlt.
// They are called on Replay's goroutine and must not block.
type Observer interface {
	// OnDLTReplayed: a dead letter was acknowledged on topic, its
	// destination.
	OnDLTReplayed(topic string)
	// OnDLTFailedAgain: a dead letter replayed to topic was refused by
	// it and went back to the dead-letter topic.
	OnDLTFailedAgain(topic string)
}

// ReplayConfig says what Replay sends where.
type ReplayConfig struct {
	// DLT is the dead-letter topic to read. Required.
	DLT string
	// Group is the consumer group holding the replay's position on DLT.
	// Empty means DefaultGroup(DLT, Filter, ToTopic): one group per
	// selection. A given group resumes where it stopped whatever the
	// filter: records before its position are never looked at again.
	Group string
	// Filter selects the dead letters to replay; the others are skipped
	// (and the group's position moves past them).
	Filter Filter
	// ToTopic sends every selected record there instead of its original
	// topic.
	ToTopic string
	// Rate caps replayed records per second. Zero means no cap.
	Rate float64
	// DryRun reads and selects but sends and commits nothing;
	// ReplayStats.ByTopic counts what would be sent.
	DryRun bool
	// Chunk is how many dead letters are read, replayed and acknowledged
	// before the position is committed. Zero means DefaultChunk.
	Chunk int
	// KeepTimestamps sends records with their original timestamp
	// (kprod-original-timestamp). Only with a producer whose
	// DeliveryTimeout is zero: franz-go measures the delivery timeout
	// from the record's timestamp. By default Kafka stamps replayed
	// records with the replay time and the original time stays in the
	// kprod-original-timestamp header.
	KeepTimestamps bool
	// Observer counts replayed and failed-again records; nil means none.
	Observer Observer
	// Progress, if set, is called on Replay's goroutine after each chunk
	// with the counts so far. It must not block for long.
	Progress func(ReplayStats)
	// Idle is how long reading waits for records known to exist before
	// it stops. Zero means DefaultIdle.
	Idle time.Duration
	// Grace is how long Replay, once ctx has ended, still waits for the
	// outcomes of records already handed to the producer (and for
	// refused ones to go back to DLT) before it commits and returns.
	// Zero means DefaultGrace (10s). Without it an interrupted replay
	// against an unreachable cluster would wait as long as the
	// producer's DeliveryTimeout, forever when that is zero (as
	// KeepTimestamps requires).
	Grace time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ReplayStats counts what Replay did.
type ReplayStats struct {
	Group       string
	Resumed     bool  // the group had a committed position
	Total       int64 // dead letters between the position and the end when Replay began
	Scanned     int64 // dead letters read
	Selected    int64 // dead letters the filter selected
	Replayed    int64 // acknowledged on their destination
	FailedAgain int64 // refused by their destination, back on the DLT with both causes
	// AlreadyThere counts selected records a resumed replay found on
	// their destination (sent by a run that was killed before it
	// committed), not sent again.
	AlreadyThere int64
	// NoTopic counts selected records with no original topic in their
	// headers and no ToTopic: not sent, skipped.
	NoTopic int64
	// ByTopic counts replayed records per destination (with DryRun, the
	// records that would be sent).
	ByTopic map[string]int64
	Elapsed time.Duration
}

func (c *ReplayConfig) validate(pc kafkaproducer.Config) error {
	switch {
	case c.DLT == "":
		return errors.New("kprod: dlt: ReplayConfig.DLT is required")
	case c.ToTopic != "" && c.ToTopic == c.DLT:
		return fmt.Errorf("kprod: dlt: ReplayConfig.ToTopic %q is the dead-letter topic itself: name the topic to replay to", c.ToTopic)
	case c.Rate < 0:
		return errors.New("kprod: dlt: ReplayConfig.Rate is negative: use 0 for no cap")
	case c.Chunk < 0:
		return errors.New("kprod: dlt: ReplayConfig.Chunk is negative: use 0 for the default")
	case c.Grace < 0:
		return errors.New("kprod: dlt: ReplayConfig.Grace is negative: use 0 for the default")
	case c.KeepTimestamps && pc.DeliveryTimeout != 0 && !c.DryRun:
		return fmt.Errorf("kprod: dlt: ReplayConfig.KeepTimestamps with the producer's DeliveryTimeout %v: franz-go would fail records older than it at once; set DeliveryTimeout to 0 or drop KeepTimestamps", pc.DeliveryTimeout)
	}
	return nil
}

// Replay sends the dead letters of cfg.DLT that cfg.Filter selects back to
// their original topic (or cfg.ToTopic) through p, from the position
// committed for cfg.Group up to the end of the DLT as of the call. It
// reads with read_committed isolation through a client of its own built
// from p.Config() (same brokers, TLS, SASL).
//
// Per chunk of cfg.Chunk dead letters it waits until every replayed
// record is acknowledged, sends those their destination refused for a
// fault of their own (ClassBadInput: too large, an invalid record, a
// policy refusing it) back to cfg.DLT with both causes, then commits the
// position. A record refused for a cause that is not its own stops
// Replay: a denied write (ACL, credentials), a producer-level error
// (ClassFatal, ClassAbortable: fenced, out of sequence, an unsupported
// version, an unknown producer ID, an unknown error), a missing topic, a
// timeout or an unreachable cluster, or the DLT refusing the dead
// letter. The position is then committed up to that record, the error
// names the cause and the fix, and a later run resumes there, skipping
// (by kprod-dlt-replay-source on the destination) what this run sent
// beyond it.
//
// ctx ending stops Replay between records: what was handed to p is
// waited for, for at most cfg.Grace more, and the position is committed
// up to the first record still unacknowledged. Replay returns ctx's
// error, wrapped with ErrUnacknowledged when records were left in
// flight. (They stay in p: a rerun while p may still deliver them could
// send them twice, with the same kprod-record-id.) It returns an error
// wrapping ErrFailedAgain when records went back to the DLT, and the
// counts in every case.
func Replay(ctx context.Context, p *kafkaproducer.Producer, cfg ReplayConfig) (st ReplayStats, err error) {
	st = ReplayStats{ByTopic: map[string]int64{}}
	if p == nil {
		return st, errors.New("kprod: dlt: Replay needs a producer")
	}
	if err := cfg.validate(p.Config()); err != nil {
		return st, err
	}
	if cfg.Chunk == 0 {
		cfg.Chunk = DefaultChunk
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Group == "" {
		cfg.Group = DefaultGroup(cfg.DLT, cfg.Filter, cfg.ToTopic)
	}
	st.Group = cfg.Group
	began := cfg.Now()
	defer func() { st.Elapsed = cfg.Now().Sub(began) }()

	opts, err := clientOpts(p.Config())
	if err != nil {
		return st, err
	}
	admCl, err := kgo.NewClient(opts...)
	if err != nil {
		return st, err
	}
	defer admCl.Close()
	r := &replayer{began: began, cfg: cfg, p: p, adm: kadm.NewClient(admCl), opts: opts, st: &st, clientID: p.Config().ClientID}
	return st, r.run(ctx)
}

type replayer struct {
	began    time.Time
	cfg      ReplayConfig
	p        *kafkaproducer.Producer
	adm      *kadm.Client
	opts     []kgo.Opt
	st       *ReplayStats
	clientID string

	pos   map[int32]int64 // committed position per partition read
	carry resumeCarry
	seen  map[string]bool // "partition/offset" already on their destination
	pace  pacer

	stopBy time.Time // once ctx has ended: when the grace period ends
}

// resumeCarry keeps an unclean earlier run's "sent since" time in the
// commits until the position is past every record it may have sent.
type resumeCarry struct {
	since time.Time
	until map[int32]int64
}

func (r *replayer) run(ctx context.Context) error {
	starts, ends, err := bounds(ctx, r.adm, r.cfg.DLT)
	if err != nil {
		return err
	}
	committed, err := r.adm.FetchOffsets(ctx, r.cfg.Group)
	if err == nil {
		err = committed.Error()
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("position of group %q: %w", r.cfg.Group, err)
	}
	from, to := map[int32]int64{}, map[int32]int64{}
	var prev []priorPos
	for p, s := range starts {
		if len(r.cfg.Filter.Partitions) > 0 && !containsPartition(r.cfg.Filter.Partitions, p) {
			continue
		}
		if o, ok := committed.Lookup(r.cfg.DLT, p); ok && o.Err == nil && o.At >= 0 {
			r.st.Resumed = true
			s = max(s, o.At)
			prev = append(prev, priorPos{partition: p, at: o.At, meta: o.Metadata})
		}
		from[p], to[p] = s, ends[p]
		// The filter's offset range narrows what is read; the position
		// still moves over the whole partition when done.
		if f := r.cfg.Filter.FromOffset; f > s && f < ends[p] {
			from[p] = f
		}
		if t := r.cfg.Filter.ToOffset; t > 0 && t < ends[p] {
			to[p] = max(t, from[p])
		}
		r.st.Total += max(0, to[p]-from[p])
	}
	r.pos = map[int32]int64{}
	for p, s := range starts {
		if _, ok := from[p]; ok {
			r.pos[p] = max(s, committedAt(committed, r.cfg.DLT, p))
		}
	}
	r.pace = pacer{now: r.cfg.Now}
	if r.cfg.Rate > 0 {
		r.pace.every = time.Duration(float64(time.Second) / r.cfg.Rate)
	}
	if !r.cfg.DryRun {
		if r.seen, r.carry, err = r.resumeCheck(ctx, prev, ends); err != nil {
			return err
		}
		// Mark the group as replaying before the first send, so that a
		// run killed before its first commit is recognised.
		if err := r.commit(ctx, r.pos, true, r.cfg.Now()); err != nil {
			return err
		}
	}

	rd, err := newReader(r.opts, r.cfg.DLT, from, to, r.cfg.Idle)
	if err != nil {
		return err
	}
	defer rd.close()
	var stopErr error
	for stopErr == nil {
		recs, err := rd.poll(ctx)
		if err != nil {
			stopErr = err
			break
		}
		if len(recs) == 0 {
			break
		}
		for len(recs) > 0 && stopErr == nil {
			n := min(len(recs), r.cfg.Chunk)
			stopErr = r.chunk(ctx, recs[:n])
			recs = recs[n:]
			if r.cfg.Progress != nil {
				r.cfg.Progress(r.snapshot())
			}
		}
	}
	if stopErr == nil && !r.cfg.DryRun {
		// Done: the position moves to the end of what was read, past
		// skipped records and transaction markers alike (after an idle
		// stop, only past the records read).
		final := map[int32]int64{}
		for p, o := range r.pos {
			end := to[p]
			if n, ok := rd.next[p]; ok && rd.idled {
				end = n
			}
			final[p] = max(o, end)
		}
		if err := r.commit(ctx, final, false, r.cfg.Now()); err != nil {
			return err
		}
	}
	if stopErr != nil {
		return stopErr
	}
	if r.st.FailedAgain > 0 {
		return fmt.Errorf("%w: %d record(s)", ErrFailedAgain, r.st.FailedAgain)
	}
	return nil
}

func committedAt(os kadm.OffsetResponses, topic string, p int32) int64 {
	if o, ok := os.Lookup(topic, p); ok && o.Err == nil {
		return o.At
	}
	return -1
}

func (r *replayer) snapshot() ReplayStats {
	s := *r.st
	s.ByTopic = make(map[string]int64, len(r.st.ByTopic))
	for k, v := range r.st.ByTopic {
		s.ByTopic[k] = v
	}
	s.Elapsed = r.cfg.Now().Sub(r.began)
	return s
}

// slot is one dead letter of a chunk.
type slot struct {
	rec      *kgo.Record
	d        DeadLetter
	target   string
	resolved bool // its outcome arrived (res holds it)
	res      kafkaproducer.Result
	done     bool // dealt with: skipped, replayed or back on the DLT
}

// outcome is a send's result for slot i, passed from the producer's
// callback to Replay's goroutine, which alone touches the slots.
type outcome struct {
	i   int
	res kafkaproducer.Result
}

// await receives up to n outcomes from ch, handing each to got. It waits
// while ctx allows and then until the grace period ends; it returns how
// many outcomes it did not get. ch must have room for every outcome, so
// that a late callback never blocks.
func (r *replayer) await(ctx context.Context, ch <-chan outcome, n int, got func(outcome)) int {
	ended := ctx.Done()
	var grace <-chan time.Time
	for n > 0 {
		select {
		case o := <-ch:
			got(o)
			n--
		case <-ended:
			ended = nil
			t := time.NewTimer(time.Until(r.graceEnd()))
			defer t.Stop()
			grace = t.C
		case <-grace:
			return n
		}
	}
	return 0
}

// graceEnd is when waiting stops once ctx has ended: cfg.Grace after
// Replay first saw it end.
func (r *replayer) graceEnd() time.Time {
	if r.stopBy.IsZero() {
		r.stopBy = time.Now().Add(r.cfg.Grace)
	}
	return r.stopBy
}

// chunk replays recs (consecutive reads) and commits the position. It
// returns ctx's error when ctx ended, or the first cause that stops the
// replay.
func (r *replayer) chunk(ctx context.Context, recs []*kgo.Record) error {
	began := r.cfg.Now()
	slots := make([]slot, len(recs))
	handed := len(recs) // slots[:handed] were dealt with or handed over
	var interrupted error
	results := make(chan outcome, len(recs))
	inFlight := 0
	for i, rec := range recs {
		if err := ctx.Err(); err != nil {
			interrupted, handed = err, i
			break
		}
		s := &slots[i]
		s.rec, s.d = rec, Decode(rec)
		r.st.Scanned++
		if !r.cfg.Filter.Match(s.d) {
			s.done = true
			continue
		}
		r.st.Selected++
		s.target = r.cfg.ToTopic
		if s.target == "" {
			s.target = s.d.Failure.Topic
		}
		switch {
		case s.target == "":
			r.st.NoTopic++
			s.done = true
			continue
		case r.seen[sourceKey(rec.Partition, rec.Offset)]:
			r.st.AlreadyThere++
			s.done = true
			continue
		case r.cfg.DryRun:
			r.st.ByTopic[s.target]++
			s.done = true
			continue
		}
		if err := r.pace.wait(ctx); err != nil {
			interrupted, handed = err, i
			break
		}
		// ctx bounds only the wait for room in the buffer: once
		// buffered, the record goes out whatever ctx does.
		out := replayRecord(s.d, s.target, r.cfg.KeepTimestamps)
		if err := r.p.SendAsync(ctx, out, func(res kafkaproducer.Result) { results <- outcome{i, res} }); err != nil {
			if ctx.Err() != nil { // not buffered: never sent
				interrupted, handed = ctx.Err(), i
				break
			}
			s.res, s.resolved = kafkaproducer.Result{Record: out, Partition: -1, Offset: -1, Err: err}, true
			continue
		}
		inFlight++
	}
	missing := r.await(ctx, results, inFlight, func(o outcome) { slots[o.i].res, slots[o.i].resolved = o.res, true })

	// Refused for the record's own fault: back to the DLT with both
	// causes.
	var stop error
	var back []*slot
	for i := range slots[:handed] {
		s := &slots[i]
		if !s.resolved {
			continue
		}
		switch err := s.res.Err; {
		case err == nil:
			s.done = true
			r.st.Replayed++
			r.st.ByTopic[s.target]++
			if r.cfg.Observer != nil {
				r.cfg.Observer.OnDLTReplayed(s.target)
			}
		case backToDLT(err):
			back = append(back, s)
		default:
			if stop == nil {
				stop = fmt.Errorf("replay %s[%d]@%d to %q stopped: %s; the position is committed before it: run again once fixed: %w",
					s.rec.Topic, s.rec.Partition, s.rec.Offset, s.target, stopCause(err, s.target), err)
			}
		}
	}
	if len(back) > 0 {
		// Once ctx has ended, the dead letters still go back within
		// what is left of the grace period.
		bctx := ctx
		if ctx.Err() != nil {
			var cancel context.CancelFunc
			bctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), r.graceEnd())
			defer cancel()
		}
		backRes := make(chan outcome, len(back))
		dlErrs := make([]error, len(back))
		got := make([]bool, len(back))
		pending := 0
		now := r.cfg.Now()
		for i, s := range back {
			dl := failedAgainRecord(s.d, r.cfg.DLT, s.target, s.res.Err, r.clientID, now)
			if err := r.p.SendAsyncErr(bctx, dl, func(err error) { backRes <- outcome{i, kafkaproducer.Result{Err: err}} }); err != nil {
				if bctx.Err() == nil { // else not buffered before ctx ended: left for a rerun
					dlErrs[i], got[i] = err, true
				}
				continue
			}
			pending++
		}
		missing += r.await(ctx, backRes, pending, func(o outcome) { dlErrs[o.i], got[o.i] = o.res.Err, true })
		for i, s := range back {
			switch {
			case !got[i]: // not dealt with: the position stops before it
			case dlErrs[i] != nil:
				if stop == nil {
					stop = fmt.Errorf("replay %s[%d]@%d: %q refused it (%v) and so did the dead-letter topic (stopped; run again once fixed): %w", s.rec.Topic, s.rec.Partition, s.rec.Offset, s.target, s.res.Err, dlErrs[i])
				}
			default:
				s.done = true
				r.st.FailedAgain++
				if r.cfg.Observer != nil {
					r.cfg.Observer.OnDLTFailedAgain(s.target)
				}
			}
		}
	}
	if missing > 0 { // only once ctx has ended and the grace period with it
		interrupted = fmt.Errorf("%w: %d record(s) handed to the producer had no outcome %v after ctx ended; the position is committed before the first, and a rerun skips those that reach their topic: %w",
			ErrUnacknowledged, missing, r.cfg.Grace, ctx.Err())
	}
	if r.cfg.DryRun {
		if interrupted != nil {
			return interrupted
		}
		return stop
	}

	// The position per partition: past every record dealt with, up to
	// the first one that was not.
	next := map[int32]int64{}
	blocked := map[int32]bool{} // partitions whose position stops at a record not dealt with
	for i := range slots {
		rec := recs[i]
		if blocked[rec.Partition] {
			continue
		}
		if i >= handed || !slots[i].done {
			blocked[rec.Partition] = true
			next[rec.Partition] = rec.Offset
			continue
		}
		next[rec.Partition] = rec.Offset + 1
	}
	for p, o := range next {
		r.pos[p] = o
	}
	// The commit says whether records may have been sent beyond the
	// position, and since when: after an unresolved record, those of
	// this chunk (sent after began); otherwise those of the next chunk
	// (sent after now). Interrupted with every sent record dealt with,
	// nothing was: the position is exact.
	unresolved := false
	for i := range slots[:handed] {
		unresolved = unresolved || !slots[i].done
	}
	since, running := r.cfg.Now(), true
	switch {
	case unresolved:
		since = began
	case interrupted != nil:
		running = false
	}
	if err := r.commit(ctx, r.pos, running, since); err != nil {
		return err
	}
	switch {
	case stop != nil && missing > 0:
		return errors.Join(stop, interrupted)
	case stop != nil:
		return stop
	}
	return interrupted
}

// backToDLT reports a refusal that is the record's own fault, for good:
// too large, an invalid record, a policy refusing it (ClassBadInput). It
// goes back to the DLT with both causes. Nothing else does: a denied
// write, a producer-level error, a missing or invalid topic, a refusal
// of the call or the producer's configuration, and anything transient
// would hold for every record, so each stops the replay for an operator
// (as package dlq waits for a denied or missing topic rather than
// dead-lettering into it).
func backToDLT(err error) bool {
	return kafkaproducer.Classify(err) == kafkaproducer.ClassBadInput && !destinationFault(err)
}

// destinationFault reports a ClassBadInput refusal that is not about the
// record: the topic is missing or its name invalid, the producer's
// configuration is refused, or the call itself.
func destinationFault(err error) bool {
	for _, e := range []error{
		kerr.UnknownTopicOrPartition, kerr.UnknownTopicID, kerr.InvalidTopicException,
		kerr.InvalidRequiredAcks, kerr.UnsupportedForMessageFormat,
		kafkaproducer.ErrNoTopic, kafkaproducer.ErrStaleTimestamp,
		kafkaproducer.ErrPartitionRequired, kafkaproducer.ErrBadPartition,
		kafkaproducer.ErrOutcomeUnknown, kafkaproducer.ErrClosed,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// stopCause says why a refusal that is not the record's stops the
// replay, and what fixes it.
func stopCause(err error, target string) string {
	switch {
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID):
		return fmt.Sprintf("topic %q does not exist: create it, or replay to another topic with ToTopic (--to-topic)", target)
	case errors.Is(err, kerr.InvalidTopicException):
		return fmt.Sprintf("%q is not a valid topic name: replay to another topic with ToTopic (--to-topic)", target)
	case errors.Is(err, kafkaproducer.ErrStaleTimestamp):
		return "the original timestamp is older than the producer's DeliveryTimeout: set DeliveryTimeout to 0 or drop KeepTimestamps"
	case errors.Is(err, kafkaproducer.ErrClosed):
		return "the producer was closed: replay with an open producer"
	}
	switch c := kafkaproducer.Classify(err); c {
	case kafkaproducer.ClassAuthorization:
		return fmt.Sprintf("not allowed to write to %q (authorization): grant this client WRITE on the topic, or fix its credentials or TLS settings", target)
	case kafkaproducer.ClassFatal, kafkaproducer.ClassAbortable:
		return fmt.Sprintf("a producer-level error (%s), not the record's: fix the producer's configuration or the cluster (a broker too old, a fenced or out-of-sequence producer: a new producer)", c)
	case kafkaproducer.ClassBadInput:
		return fmt.Sprintf("%q refuses every record like it: fix the topic or the producer's configuration", target)
	default:
		return fmt.Sprintf("the cluster did not take it (%s): unreachable, slow or a leader missing; wait until it is healthy", c)
	}
}

// pacer spaces sends every `every`, without bursts after a pause.
type pacer struct {
	every time.Duration
	next  time.Time
	began time.Time
	now   func() time.Time
}

func (pc *pacer) wait(ctx context.Context) error {
	n := pc.now()
	if pc.began.IsZero() {
		pc.began = n
	}
	if pc.every <= 0 {
		return ctx.Err()
	}
	if pc.next.Before(n) {
		pc.next = n
	}
	if d := pc.next.Sub(n); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	pc.next = pc.next.Add(pc.every)
	return ctx.Err()
}
