package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"go.uber.org/zap"
)

var (
	// ErrRunning is returned by Run when the relay is already running.
	ErrRunning = errors.New("outbox: relay already running")
	// ErrNotRunning is returned by Ready when Run is not running.
	ErrNotRunning = errors.New("outbox: relay not running")
	// ErrLeaseLost is logged (and returned by Ready until the relay leads
	// or stands by again) when another relay took the lease over, which
	// happens only when this one could not renew it for LeaseTTL.
	ErrLeaseLost = errors.New("outbox: relay lease lost")
)

// Relay publishes the outbox's committed rows through a Producer and
// deletes each only after Kafka acknowledged it. Any number of relays may
// run on one table: one leads (holds the lease) and publishes, the others
// stand by and take over when it stops or dies. See the package
// documentation for what is guaranteed.
//
// A Relay is safe for concurrent use; Run runs one at a time.
type Relay struct {
	cfg RelayConfig
	tbl Table
	sql relaySQL

	running atomic.Bool
	leader  atomic.Bool
	wake    chan struct{}

	published    atomic.Uint64
	failed       atomic.Uint64
	deadLettered atomic.Uint64

	mu      sync.Mutex
	lastErr error // the last batch's or lease's failure; nil after a success

	// acked holds rows Kafka acknowledged that are not deleted yet; only
	// Run's goroutine touches it.
	acked []int64
}

// Stats are a relay's counts since it was made.
type Stats struct {
	Published    uint64 // rows acknowledged by Kafka (and deleted, or about to be)
	Failed       uint64 // failed sends (a row retried three times counts three)
	DeadLettered uint64 // rows moved to the dead-letter table
	Leader       bool   // whether this relay holds the lease now
}

// NewRelay validates cfg and returns a relay; Run starts it.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg, tbl: cfg.Table, sql: newRelaySQL(cfg.Table), wake: make(chan struct{}, 1)}, nil
}

// Stats returns the relay's counts.
func (r *Relay) Stats() Stats {
	return Stats{Published: r.published.Load(), Failed: r.failed.Load(), DeadLettered: r.deadLettered.Load(), Leader: r.leader.Load()}
}

// Leader reports whether this relay holds the lease (and so publishes).
func (r *Relay) Leader() bool { return r.leader.Load() }

// Ready is a readiness check: Run is running, the database and a Kafka
// broker answer (within ctx), and the relay's last batch did not fail.
// A standby relay (not the leader) is ready.
func (r *Relay) Ready(ctx context.Context) error {
	if !r.running.Load() {
		return ErrNotRunning
	}
	if err := r.cfg.DB.PingContext(ctx); err != nil {
		return fmt.Errorf("outbox: database: %w", err)
	}
	if err := r.cfg.Producer.Ping(ctx); err != nil {
		return fmt.Errorf("outbox: kafka: %w", err)
	}
	r.mu.Lock()
	err := r.lastErr
	r.mu.Unlock()
	if err != nil {
		return fmt.Errorf("outbox: relay: %w", err)
	}
	return nil
}

func (r *Relay) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// Run relays until ctx ends, then finishes the batch in flight (bounded by
// the producer's DeliveryTimeout), deletes what Kafka acknowledged,
// releases the lease so a standby relay takes over at once, and returns
// nil. It returns ErrRunning if the relay is already running. Run never
// gives up on errors (database or Kafka unreachable): it logs them,
// reports them through Ready, backs off and tries again.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.Wakeup != nil {
		wg.Go(func() { r.listen(ctx) })
	}
	log := r.cfg.Logger.With(zap.String("outbox", r.tbl.name()), zap.String("owner", r.cfg.Owner))
	fails := 0
	for ctx.Err() == nil {
		epoch, ok, err := r.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			r.setErr(err)
			fails++
			log.Warn("outbox: lease", zap.Error(err))
			sleep(ctx, r.backoff(fails))
			continue
		}
		if !ok {
			fails = 0
			r.setErr(nil)
			r.waitStandby(ctx)
			continue
		}
		log.Info("outbox: leading", zap.Int64("epoch", epoch))
		r.leader.Store(true)
		r.cfg.Observer.OnLeader(true)
		err = r.lead(ctx, epoch, log)
		r.leader.Store(false)
		r.cfg.Observer.OnLeader(false)
		if err != nil && ctx.Err() == nil {
			r.setErr(err)
			log.Warn("outbox: stopped leading", zap.Error(err))
			fails++
			sleep(ctx, r.backoff(fails))
		} else {
			fails = 0
		}
	}
	return nil
}

// listen calls Wakeup until ctx ends, turning each return into a wake-up.
func (r *Relay) listen(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.cfg.Wakeup(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			r.cfg.Logger.Warn("outbox: wakeup", zap.Error(err))
			sleep(ctx, time.Second)
			continue
		}
		r.signal()
	}
}

func (r *Relay) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// waitStandby waits before trying the lease again: a third of its TTL,
// at most a second, so a released lease is taken over within a second.
func (r *Relay) waitStandby(ctx context.Context) {
	sleep(ctx, min(r.cfg.LeaseTTL/3, time.Second))
}

func (r *Relay) backoff(fails int) time.Duration {
	d := r.cfg.Backoff.Initial
	for i := 1; i < fails && d < r.cfg.Backoff.Max; i++ {
		d *= 2
	}
	d = min(d, r.cfg.Backoff.Max)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// lead publishes while this relay holds lease epoch. It returns nil when
// ctx ended (after deleting what was acknowledged and releasing the
// lease), or the error that stopped it.
func (r *Relay) lead(ctx context.Context, epoch int64, log *zap.Logger) error {
	leadCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	var lost atomic.Bool
	wg.Go(func() { r.keepLease(leadCtx, epoch, stop, &lost, log) })
	if r.cfg.StatsInterval > 0 {
		// Apart from the lease: counting a long outbox must not hold up
		// its renewal.
		wg.Go(func() { r.reportBacklog(leadCtx) })
	}
	// Database calls outlive ctx: acknowledged rows must still be deleted
	// and the lease released. Each is bounded instead.
	dbCtx := context.WithoutCancel(ctx)
	fails := 0
	for {
		limit := r.cfg.BatchSize
		if leadCtx.Err() != nil {
			limit = 0 // stopping: only delete what was acknowledged
		}
		rows, err := r.round(dbCtx, epoch, limit)
		if err != nil {
			stop()
			if lost.Load() || errors.Is(err, ErrLeaseLost) {
				return ErrLeaseLost
			}
			return err
		}
		if leadCtx.Err() != nil {
			stop()
			if lost.Load() {
				return ErrLeaseLost
			}
			if ctx.Err() != nil {
				r.release(dbCtx, epoch, log)
				return nil
			}
			return errors.New("outbox: lease could not be renewed")
		}
		if len(rows) == 0 {
			r.setErr(nil) // caught up: whatever failed before is behind us
			select {
			case <-leadCtx.Done():
			case <-r.wake:
			case <-time.After(r.cfg.PollInterval):
			}
			continue
		}
		if err := r.publish(dbCtx, epoch, rows, log); err != nil {
			if errors.Is(err, ErrLeaseLost) {
				stop()
				return ErrLeaseLost
			}
			fails++
			r.setErr(err)
			d := r.backoff(fails)
			log.Warn("outbox: batch failed; rows stay in the outbox", zap.Error(err), zap.Duration("retry_in", d))
			sleep(leadCtx, d)
			continue
		}
		fails = 0
		r.setErr(nil)
	}
}

// keepLease renews the lease every LeaseTTL/3. It stops the leader (stop)
// when another relay holds the lease, or when renewing has failed for two
// thirds of the TTL (the lease may be about to expire).
func (r *Relay) keepLease(ctx context.Context, epoch int64, stop func(), lost *atomic.Bool, log *zap.Logger) {
	every := r.cfg.LeaseTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	lastOK := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		ok, err := r.renew(rctx, r.cfg.DB, epoch)
		cancel()
		switch {
		case err == nil && !ok:
			lost.Store(true)
			log.Warn("outbox: lease taken over by another relay")
			stop()
			return
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			log.Warn("outbox: renew lease", zap.Error(err))
			if time.Since(lastOK) > 2*r.cfg.LeaseTTL/3 {
				stop()
				return
			}
		default:
			lastOK = time.Now()
		}
	}
}

// reportBacklog reports the backlog while this relay leads: at once, then
// every StatsInterval.
func (r *Relay) reportBacklog(ctx context.Context) {
	t := time.NewTicker(r.cfg.StatsInterval)
	defer t.Stop()
	for {
		r.backlog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Relay) backlog(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	defer cancel()
	var n int64
	var oldest sql.NullInt64
	if err := r.cfg.DB.QueryRowContext(ctx, r.sql.count).Scan(&n); err != nil {
		return
	}
	if err := r.cfg.DB.QueryRowContext(ctx, r.sql.oldest).Scan(&oldest); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return
	}
	var age time.Duration
	if oldest.Valid {
		age = max(0, r.cfg.Now().Sub(time.UnixMicro(oldest.Int64)))
	}
	r.cfg.Observer.OnBacklog(n, age)
}

// row is one outbox row as read by the relay.
type row struct {
	id       int64
	recordID []byte
	topic    string
	key      []byte
	value    []byte
	headers  []byte
	part     sql.NullInt64
	ts       sql.NullInt64
	created  int64
}

// round, in one transaction that first renews the lease (so a relay that
// lost it deletes nothing): deletes the acknowledged rows, then reads the
// first limit rows by ID. Rows committed after an earlier round, whatever
// their IDs, are among them: nothing is remembered but what to delete.
func (r *Relay) round(ctx context.Context, epoch int64, limit int) ([]row, error) {
	if limit == 0 && len(r.acked) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	defer cancel()
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	ok, err := r.renew(ctx, tx, epoch)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrLeaseLost
	}
	if len(r.acked) > 0 {
		if _, err := tx.ExecContext(ctx, r.sql.delete, r.sql.idList(r.acked)); err != nil {
			return nil, fmt.Errorf("outbox: delete published rows: %w", err)
		}
	}
	var rows []row
	if limit > 0 {
		q, err := tx.QueryContext(ctx, r.sql.selectBatch, limit)
		if err != nil {
			return nil, fmt.Errorf("outbox: read rows: %w", err)
		}
		rows = make([]row, 0, min(limit, 256))
		for q.Next() {
			var w row
			var noKey, noValue bool
			if err := q.Scan(&w.id, &w.recordID, &w.topic, &w.key, &noKey, &w.value, &noValue, &w.headers, &w.part, &w.ts, &w.created); err != nil {
				q.Close()
				return nil, fmt.Errorf("outbox: read rows: %w", err)
			}
			if w.key == nil && !noKey {
				w.key = []byte{}
			}
			if w.value == nil && !noValue {
				w.value = []byte{}
			}
			rows = append(rows, w)
		}
		if err := q.Err(); err != nil {
			return nil, fmt.Errorf("outbox: read rows: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("outbox: commit: %w", err)
	}
	r.acked = r.acked[:0]
	return rows, nil
}

// record rebuilds the Kafka record of w, with its record-ID and
// original-timestamp headers.
func (r *Relay) record(w *row) (kafkaproducer.Record, error) {
	hs, err := decodeHeaders(make([]kafkaproducer.Header, 0, 2), w.headers)
	if err != nil {
		return kafkaproducer.Record{}, kafkaproducer.WithClass(kafkaproducer.ClassBadInput, err)
	}
	rec := kafkaproducer.Record{Topic: w.topic, Key: w.key, Value: w.value, Headers: hs}
	if dlq.RecordID(rec, dlq.DefaultRecordIDHeader) == "" {
		rec.Headers = append(rec.Headers, kafkaproducer.Header{Key: dlq.DefaultRecordIDHeader, Value: recordIDHex(w.recordID)})
	}
	if !hasHeader(rec.Headers, dlq.HeaderOriginalTimestamp) {
		us := w.created
		if w.ts.Valid {
			us = w.ts.Int64
		}
		rec.Headers = append(rec.Headers, kafkaproducer.Header{Key: dlq.HeaderOriginalTimestamp, Value: strconv.AppendInt(nil, us/1000, 10)})
	}
	if w.part.Valid {
		rec = rec.AtPartition(int32(w.part.Int64))
	}
	return rec, nil
}

func hasHeader(hs []kafkaproducer.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}

// publish sends rows, in ID order, as one SendBatch (records for one
// partition keep their order, and franz-go fails a partition's later
// records with an earlier one), and collects the acknowledged IDs in
// r.acked. If a send failed as bad input, the failed rows are sent again
// one at a time, in ID order: a row that fails alone as bad input is
// dead-lettered, and the first that fails for another reason stops the
// batch, so a key's later rows never overtake an earlier one. It returns
// the first failure that leaves rows in the outbox.
func (r *Relay) publish(ctx context.Context, epoch int64, rows []row, log *zap.Logger) error {
	recs := make([]kafkaproducer.Record, 0, len(rows))
	idx := make([]int, 0, len(rows)) // recs[i] is rows[idx[i]]
	for i := range rows {
		rec, err := r.record(&rows[i])
		if err != nil {
			// Unreadable: it can never be sent, and is no earlier row's
			// successor to wait for.
			if err := r.deadLetter(ctx, epoch, &rows[i], err, log); err != nil {
				return err
			}
			continue
		}
		recs = append(recs, rec)
		idx = append(idx, i)
	}
	res := r.cfg.Producer.SendBatch(ctx, recs)
	var failed []int
	badInput := false
	var firstErr error
	for i := range res {
		w := &rows[idx[i]]
		if res[i].Err == nil {
			r.ackRow(w)
			continue
		}
		c := kafkaproducer.Classify(res[i].Err)
		r.failed.Add(1)
		r.cfg.Observer.OnFailed(w.topic, c.String())
		failed = append(failed, i)
		badInput = badInput || c == kafkaproducer.ClassBadInput
		if firstErr == nil {
			firstErr = res[i].Err
		}
	}
	if !badInput {
		return firstErr
	}
	// Isolate: which of the failed rows is at fault?
	for _, i := range failed {
		w := &rows[idx[i]]
		_, err := r.cfg.Producer.Send(ctx, recs[i])
		if err == nil {
			r.ackRow(w)
			continue
		}
		c := kafkaproducer.Classify(err)
		r.failed.Add(1)
		r.cfg.Observer.OnFailed(w.topic, c.String())
		if c != kafkaproducer.ClassBadInput {
			return err
		}
		if err := r.deadLetter(ctx, epoch, w, err, log); err != nil {
			return err
		}
	}
	return nil
}

func (r *Relay) ackRow(w *row) {
	r.acked = append(r.acked, w.id)
	r.published.Add(1)
	r.cfg.Observer.OnPublished(w.topic, r.cfg.Now().Sub(time.UnixMicro(w.created)))
}

// deadLetter moves w to the dead-letter table, with its error, in a
// transaction that first renews the lease.
func (r *Relay) deadLetter(ctx context.Context, epoch int64, w *row, cause error, log *zap.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	defer cancel()
	tx, err := r.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("outbox: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	ok, err := r.renew(ctx, tx, epoch)
	if err != nil {
		return err
	}
	if !ok {
		return ErrLeaseLost
	}
	class := kafkaproducer.Classify(cause).String()
	msg := cause.Error()
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	if _, err := tx.ExecContext(ctx, r.sql.deadInsert, w.id, time.Now().UnixMicro(), class, msg); err != nil {
		return fmt.Errorf("outbox: dead-letter row %d: %w", w.id, err)
	}
	if _, err := tx.ExecContext(ctx, r.sql.deleteOne, w.id); err != nil {
		return fmt.Errorf("outbox: dead-letter row %d: %w", w.id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("outbox: dead-letter row %d: %w", w.id, err)
	}
	r.deadLettered.Add(1)
	r.cfg.Observer.OnDeadLettered(w.topic, class)
	log.Warn("outbox: row dead-lettered", zap.Int64("id", w.id), zap.String("topic", w.topic), zap.String("class", class), zap.Error(cause))
	return nil
}

// queryer is *sql.DB or *sql.Tx.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// acquire takes the lease if it is free, expired or already this owner's,
// with a new epoch.
func (r *Relay) acquire(ctx context.Context) (int64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	defer cancel()
	var epoch int64
	err := r.cfg.DB.QueryRowContext(ctx, r.sql.acquire, r.cfg.Owner, r.cfg.LeaseTTL.Microseconds()).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("outbox: acquire lease: %w", err)
	}
	return epoch, true, nil
}

func (r *Relay) renew(ctx context.Context, q queryer, epoch int64) (bool, error) {
	res, err := q.ExecContext(ctx, r.sql.renew, r.cfg.LeaseTTL.Microseconds(), r.cfg.Owner, epoch)
	if err != nil {
		return false, fmt.Errorf("outbox: renew lease: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("outbox: renew lease: %w", err)
	}
	return n == 1, nil
}

func (r *Relay) release(ctx context.Context, epoch int64, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.LeaseTTL)
	defer cancel()
	if _, err := r.cfg.DB.ExecContext(ctx, r.sql.release, r.cfg.Owner, epoch); err != nil {
		log.Warn("outbox: release lease", zap.Error(err))
		return
	}
	log.Info("outbox: lease released")
}

// relaySQL holds the relay's statements for one table and dialect.
type relaySQL struct {
	dialect                        Dialect
	acquire, renew, release        string
	delete, deleteOne, selectBatch string
	deadInsert, count, oldest      string
}

func newRelaySQL(t Table) relaySQL {
	n, now := t.name(), t.nowUS()
	p := func(i int) string { // the i-th placeholder
		if t.Dialect == Postgres {
			return "$" + strconv.Itoa(i)
		}
		return "?" + strconv.Itoa(i)
	}
	s := relaySQL{dialect: t.Dialect}
	s.acquire = `UPDATE ` + n + `_lease SET owner = ` + p(1) + `, epoch = epoch + 1, expires_us = ` + now + ` + ` + p(2) +
		` WHERE name = 'relay' AND (owner = '' OR owner = ` + p(1) + ` OR expires_us < ` + now + `) RETURNING epoch`
	s.renew = `UPDATE ` + n + `_lease SET expires_us = ` + now + ` + ` + p(1) +
		` WHERE name = 'relay' AND owner = ` + p(2) + ` AND epoch = ` + p(3)
	s.release = `UPDATE ` + n + `_lease SET owner = '', expires_us = 0 WHERE name = 'relay' AND owner = ` + p(1) + ` AND epoch = ` + p(2)
	if t.Dialect == Postgres {
		s.delete = `DELETE FROM ` + n + ` WHERE id = ANY($1::BIGINT[])`
	} else {
		s.delete = `DELETE FROM ` + n + ` WHERE id IN (SELECT value FROM json_each(?1))`
	}
	s.deleteOne = `DELETE FROM ` + n + ` WHERE id = ` + p(1)
	// "IS NULL" tells an empty key or value from a missing one: some
	// drivers (modernc's SQLite) read an empty BLOB as nil.
	s.selectBatch = `SELECT id, record_id, topic, msg_key, msg_key IS NULL, msg_value, msg_value IS NULL, headers, part, ts_us, created_us FROM ` + n +
		` ORDER BY id LIMIT ` + p(1)
	s.deadInsert = `INSERT INTO ` + n + `_dead (id, record_id, topic, msg_key, msg_value, headers, part, ts_us, created_us, failed_us, error_class, error)
SELECT id, record_id, topic, msg_key, msg_value, headers, part, ts_us, created_us, ` + p(2) + `, ` + p(3) + `, ` + p(4) + ` FROM ` + n + ` WHERE id = ` + p(1)
	s.count = `SELECT count(*) FROM ` + n
	s.oldest = `SELECT created_us FROM ` + n + ` ORDER BY id LIMIT 1`
	return s
}

// idList is the delete statement's argument: an int8[] for PostgreSQL
// (pgx encodes a []int64), a JSON array for SQLite's json_each.
func (s relaySQL) idList(ids []int64) any {
	if s.dialect == Postgres {
		return ids
	}
	var sb strings.Builder
	sb.Grow(len(ids) * 8)
	sb.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatInt(id, 10))
	}
	sb.WriteByte(']')
	return sb.String()
}
