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

// ErrFailedAgain is wrapped by Replay's error when selected records
// failed again and went back to the dead-letter topic with both causes
// (ReplayStats.FailedAgain counts them). Everything else was replayed.
var ErrFailedAgain = errors.New("kprod: dead letters failed again and went back to the dead-letter topic")

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
// record is acknowledged, sends those their destination refused for good
// (too large, invalid, denied, fatal) back to cfg.DLT with both causes,
// then commits the position. A record refused for a cause that is not
// its own (timeout, unreachable cluster, missing topic), or that the DLT
// refuses, stops Replay: the position is committed up to it, and a later
// run resumes there, skipping (by kprod-dlt-replay-source on the
// destination) what this run sent beyond it.
//
// ctx ending stops Replay between records: what was handed to p is
// waited for (p's DeliveryTimeout bounds the wait) and committed, and
// Replay returns ctx's error. It returns an error wrapping ErrFailedAgain
// when records went back to the DLT, and the counts in every case.
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
	rec    *kgo.Record
	d      DeadLetter
	target string
	sent   bool // handed to the producer
	res    kafkaproducer.Result
	done   bool // dealt with: skipped, replayed or back on the DLT
}

// chunk replays recs (consecutive reads) and commits the position. It
// returns ctx's error when ctx ended, or the first cause that stops the
// replay.
func (r *replayer) chunk(ctx context.Context, recs []*kgo.Record) error {
	began := r.cfg.Now()
	slots := make([]slot, len(recs))
	handed := len(recs) // slots[:handed] were dealt with or handed over
	var interrupted error
	results := make(chan struct{}, len(recs))
	inFlight := 0
	sendCtx := context.WithoutCancel(ctx)
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
		s.sent = true
		inFlight++
		out := replayRecord(s.d, s.target, r.cfg.KeepTimestamps)
		if err := r.p.SendAsync(sendCtx, out, func(res kafkaproducer.Result) { s.res = res; results <- struct{}{} }); err != nil {
			s.res = kafkaproducer.Result{Record: out, Partition: -1, Offset: -1, Err: err}
			results <- struct{}{}
		}
	}
	for range inFlight {
		<-results
	}

	// Refused for good: back to the DLT with both causes.
	var stop error
	var back []*slot
	for i := range slots[:handed] {
		s := &slots[i]
		if !s.sent {
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
				stop = fmt.Errorf("replay %s[%d]@%d to %q (stopped; the position is committed before it, run again once fixed): %w", s.rec.Topic, s.rec.Partition, s.rec.Offset, s.target, err)
			}
		}
	}
	if len(back) > 0 {
		dlErrs := make([]error, len(back))
		now := r.cfg.Now()
		for i, s := range back {
			dl := failedAgainRecord(s.d, r.cfg.DLT, s.target, s.res.Err, r.clientID, now)
			if err := r.p.SendAsyncErr(sendCtx, dl, func(err error) { dlErrs[i] = err; results <- struct{}{} }); err != nil {
				dlErrs[i] = err
				results <- struct{}{}
			}
		}
		for range back {
			<-results
		}
		for i, s := range back {
			if dlErrs[i] != nil {
				if stop == nil {
					stop = fmt.Errorf("replay %s[%d]@%d: %q refused it (%v) and so did the dead-letter topic (stopped; run again once fixed): %w", s.rec.Topic, s.rec.Partition, s.rec.Offset, s.target, s.res.Err, dlErrs[i])
				}
				continue
			}
			s.done = true
			r.st.FailedAgain++
			if r.cfg.Observer != nil {
				r.cfg.Observer.OnDLTFailedAgain(s.target)
			}
		}
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
	if stop != nil {
		return stop
	}
	return interrupted
}

// backToDLT reports a replay failure that is the record's (or its
// destination's, for good): too large, invalid, denied by an ACL, fatal.
// Anything transient, a missing topic and a refusal of the call stop the
// replay instead.
func backToDLT(err error) bool {
	if errors.Is(err, kerr.UnknownTopicOrPartition) || errors.Is(err, kerr.UnknownTopicID) ||
		errors.Is(err, kafkaproducer.ErrOutcomeUnknown) || errors.Is(err, kafkaproducer.ErrNoTopic) ||
		errors.Is(err, kafkaproducer.ErrStaleTimestamp) || errors.Is(err, kafkaproducer.ErrClosed) {
		return false
	}
	switch kafkaproducer.Classify(err) {
	case kafkaproducer.ClassBadInput, kafkaproducer.ClassAuthorization, kafkaproducer.ClassFatal, kafkaproducer.ClassAbortable:
		return true
	}
	return false
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
