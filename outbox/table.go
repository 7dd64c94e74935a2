package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
)

// Dialect is the SQL dialect of the database that holds the outbox.
type Dialect uint8

// The dialects. The zero value is not a dialect: Table.Dialect must be set.
const (
	// Postgres is PostgreSQL 14 or later, through any database/sql
	// driver (pgx's stdlib adapter, github.com/jackc/pgx/v5/stdlib, is
	// the one tested). Migrate adds a statement trigger that NOTIFYs the
	// table's name after inserts, for pgxoutbox.Listener (unless
	// Table.NoNotify).
	Postgres Dialect = iota + 1
	// SQLite is SQLite 3.42 or later (modernc.org/sqlite is the one
	// tested), with the database in WAL mode and a busy timeout.
	SQLite
)

// String returns "postgres" or "sqlite".
func (d Dialect) String() string {
	switch d {
	case Postgres:
		return "postgres"
	case SQLite:
		return "sqlite"
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// DefaultTable is the outbox table's default name.
const DefaultTable = "kprod_outbox"

// Execer is what Add writes through: *sql.Tx (the caller's transaction,
// which is the point), *sql.DB and *sql.Conn all have this method. For a
// pgx.Tx use pgxoutbox.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Table names an outbox table and the dialect of its database. It is a
// plain value, safe to copy and to use from any goroutine.
//
// The table Name holds the rows waiting to be published; Name+"_dead"
// holds the rows the relay dead-lettered (see Relay), Name+"_lease" the
// relay lease.
type Table struct {
	// Name is the table's name, optionally schema-qualified
	// ("app.outbox"): letters, digits and underscores. Zero means
	// DefaultTable.
	Name string
	// Dialect is the database's dialect. Required.
	Dialect Dialect
	// NoNotify (PostgreSQL) makes Migrate drop the NOTIFY trigger, or not
	// create it. NOTIFY serialises the commits of notifying transactions
	// on a cluster-wide lock: measured here, 8 writers committing 10-row
	// transactions reached 15,000-24,000 rows/s with it and about 38,000
	// without (docs/BENCHMARKS.md, "Outbox"). Without it, give the relay no Wakeup and a
	// short PollInterval (10ms: one indexed query per poll when idle).
	NoNotify bool
}

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

func (t Table) name() string {
	if t.Name == "" {
		return DefaultTable
	}
	return t.Name
}

// channel is the NOTIFY channel: the table's name without its schema.
func (t Table) channel() string {
	n := t.name()
	if i := strings.LastIndexByte(n, '.'); i >= 0 {
		return n[i+1:]
	}
	return n
}

// validate reports a table that cannot be used.
func (t Table) validate() error {
	if t.Dialect != Postgres && t.Dialect != SQLite {
		return &kafkaproducer.ConfigError{Field: "Table.Dialect", Reason: "set it to outbox.Postgres or outbox.SQLite"}
	}
	if !identRE.MatchString(t.name()) || len(t.name()) > 50 {
		return &kafkaproducer.ConfigError{Field: "Table.Name", Reason: fmt.Sprintf("%q is not a plain SQL name of at most 50 characters (letters, digits, _ and one optional schema dot)", t.Name)}
	}
	return nil
}

// nowUS is the database's clock in microseconds since the Unix epoch:
// leases are timed by it, so relays on hosts with skewed clocks agree.
func (t Table) nowUS() string {
	if t.Dialect == Postgres {
		return "(EXTRACT(EPOCH FROM clock_timestamp())*1000000)::BIGINT"
	}
	return "CAST(unixepoch('subsec')*1000000 AS INTEGER)"
}

// DDL returns the statements Migrate runs, for migration tools that
// keep their own files.
func (t Table) DDL() ([]string, error) {
	if err := t.validate(); err != nil {
		return nil, err
	}
	n := t.name()
	if t.Dialect == Postgres {
		fn := n + "_notify"
		trigger := `CREATE OR REPLACE TRIGGER ` + t.channel() + `_notify AFTER INSERT ON ` + n + ` FOR EACH STATEMENT EXECUTE FUNCTION ` + fn + `()`
		if t.NoNotify {
			trigger = `DROP TRIGGER IF EXISTS ` + t.channel() + `_notify ON ` + n
		}
		return []string{
			`CREATE TABLE IF NOT EXISTS ` + n + ` (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	record_id  BYTEA   NOT NULL,
	topic      TEXT    NOT NULL,
	msg_key    BYTEA,
	msg_value  BYTEA,
	headers    BYTEA,
	part       INTEGER,
	ts_us      BIGINT,
	created_us BIGINT  NOT NULL
)`,
			`CREATE TABLE IF NOT EXISTS ` + n + `_dead (
	id          BIGINT  PRIMARY KEY,
	record_id   BYTEA   NOT NULL,
	topic       TEXT    NOT NULL,
	msg_key     BYTEA,
	msg_value   BYTEA,
	headers     BYTEA,
	part        INTEGER,
	ts_us       BIGINT,
	created_us  BIGINT  NOT NULL,
	failed_us   BIGINT  NOT NULL,
	error_class TEXT    NOT NULL,
	error       TEXT    NOT NULL
)`,
			`CREATE INDEX IF NOT EXISTS ` + t.channel() + `_dead_topic ON ` + n + `_dead (topic, id)`,
			`CREATE TABLE IF NOT EXISTS ` + n + `_lease (
	name       TEXT   PRIMARY KEY,
	owner      TEXT   NOT NULL,
	epoch      BIGINT NOT NULL,
	expires_us BIGINT NOT NULL
)`,
			`INSERT INTO ` + n + `_lease (name, owner, epoch, expires_us) VALUES ('relay', '', 0, 0) ON CONFLICT DO NOTHING`,
			`CREATE OR REPLACE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('` + t.channel() + `', '');
	RETURN NULL;
END $$`,
			trigger,
		}, nil
	}
	return []string{
		`CREATE TABLE IF NOT EXISTS ` + n + ` (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	record_id  BLOB    NOT NULL,
	topic      TEXT    NOT NULL,
	msg_key    BLOB,
	msg_value  BLOB,
	headers    BLOB,
	part       INTEGER,
	ts_us      INTEGER,
	created_us INTEGER NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS ` + n + `_dead (
	id          INTEGER PRIMARY KEY,
	record_id   BLOB    NOT NULL,
	topic       TEXT    NOT NULL,
	msg_key     BLOB,
	msg_value   BLOB,
	headers     BLOB,
	part        INTEGER,
	ts_us       INTEGER,
	created_us  INTEGER NOT NULL,
	failed_us   INTEGER NOT NULL,
	error_class TEXT    NOT NULL,
	error       TEXT    NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS ` + t.channel() + `_dead_topic ON ` + t.channel() + `_dead (topic, id)`,
		`CREATE TABLE IF NOT EXISTS ` + n + `_lease (
	name       TEXT    PRIMARY KEY,
	owner      TEXT    NOT NULL,
	epoch      INTEGER NOT NULL,
	expires_us INTEGER NOT NULL
)`,
		`INSERT INTO ` + n + `_lease (name, owner, epoch, expires_us) VALUES ('relay', '', 0, 0) ON CONFLICT DO NOTHING`,
	}, nil
}

// Migrate creates the outbox table, its dead-letter and lease tables and
// (PostgreSQL) the notify trigger, if they do not exist. It is idempotent;
// run it at start-up or copy DDL into your migrations.
func (t Table) Migrate(ctx context.Context, db Execer) error {
	stmts, err := t.DDL()
	if err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("outbox: migrate %s: %w", t.name(), err)
		}
	}
	return nil
}

// maxRowsPerInsert keeps one INSERT's parameters under both databases'
// limits (PostgreSQL 65,535, SQLite 32,766).
const maxRowsPerInsert = 500

// Add inserts recs into the outbox through tx, normally the caller's
// transaction: the records are published if and only if it commits. It
// refuses, before writing anything, a record without a topic
// (kafkaproducer.ErrNoTopic) or with a negative explicit partition
// (kafkaproducer.ErrBadPartition).
//
// Each row gets a record ID, which the relay sends as the
// dlq.DefaultRecordIDHeader ("kprod-record-id") header so consumers can
// drop the duplicates a relay crash can cause; a record that already
// carries a well-formed header of that name keeps its ID. A non-zero
// Record.Timestamp is kept in the kprod-original-timestamp header (Kafka
// stamps the record when the relay sends it); otherwise that header holds
// the time of the Add.
//
// Rows of one transaction get increasing IDs in the order given, so they
// are published in that order (per key; see the package documentation).
func (t Table) Add(ctx context.Context, tx Execer, recs ...kafkaproducer.Record) error {
	if err := t.validate(); err != nil {
		return err
	}
	for i := range recs {
		if recs[i].Topic == "" {
			return fmt.Errorf("outbox: record %d: %w", i, kafkaproducer.ErrNoTopic)
		}
		if recs[i].PartitionSet && recs[i].Partition < 0 {
			return fmt.Errorf("outbox: record %d for %q: partition %d: %w", i, recs[i].Topic, recs[i].Partition, kafkaproducer.ErrBadPartition)
		}
	}
	ids := make([]byte, 16*len(recs))
	_, _ = rand.Read(ids) // never fails (crypto/rand)
	now := time.Now().UnixMicro()
	for start := 0; start < len(recs); start += maxRowsPerInsert {
		end := min(start+maxRowsPerInsert, len(recs))
		args := make([]any, 0, 8*(end-start))
		for i := start; i < end; i++ {
			r := &recs[i]
			id := ids[16*i : 16*i+16]
			if v := dlq.RecordID(*r, dlq.DefaultRecordIDHeader); v != "" {
				if have, err := dlq.ParseRecordID([]byte(v)); err == nil {
					id = have[:]
				}
			}
			var part, ts any
			if r.PartitionSet {
				part = int64(r.Partition)
			}
			if !r.Timestamp.IsZero() {
				ts = r.Timestamp.UnixMicro()
			}
			args = append(args, id, r.Topic, nullable(r.Key), nullable(r.Value), encodeHeaders(r.Headers), part, ts, now)
		}
		if _, err := tx.ExecContext(ctx, t.insertSQL(end-start), args...); err != nil {
			return fmt.Errorf("outbox: insert into %s: %w", t.name(), err)
		}
	}
	return nil
}

// nullable keeps a nil slice NULL and an empty one empty: drivers differ
// on how they send an empty []byte, never on a non-nil one.
func nullable(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

func (t Table) insertSQL(rows int) string {
	var sb strings.Builder
	sb.WriteString("INSERT INTO ")
	sb.WriteString(t.name())
	sb.WriteString(" (record_id, topic, msg_key, msg_value, headers, part, ts_us, created_us) VALUES ")
	for r := 0; r < rows; r++ {
		if r > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('(')
		for c := 0; c < 8; c++ {
			if c > 0 {
				sb.WriteByte(',')
			}
			if t.Dialect == Postgres {
				sb.WriteByte('$')
				sb.WriteString(strconv.Itoa(r*8 + c + 1))
			} else {
				sb.WriteByte('?')
			}
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// Encoder turns a typed record into bytes: *kafkaproducer.Typed[K, V] is
// one (its Encode method), so records added here use the same serializers
// as the typed sends.
type Encoder[K, V any] interface {
	Encode(rec kafkaproducer.TypedRecord[K, V]) (kafkaproducer.Record, error)
}

// AddTyped serializes recs with enc (a *kafkaproducer.Typed) and adds them
// to t through tx, as Table.Add. A record that cannot be serialized fails
// the call with its *kafkaproducer.SendError (wrapping a
// *kafkaproducer.BadInputError) before anything is written.
func AddTyped[K, V any](ctx context.Context, t Table, tx Execer, enc Encoder[K, V], recs ...kafkaproducer.TypedRecord[K, V]) error {
	out := make([]kafkaproducer.Record, len(recs))
	for i := range recs {
		r, err := enc.Encode(recs[i])
		if err != nil {
			return fmt.Errorf("outbox: record %d: %w", i, err)
		}
		out[i] = r
	}
	return t.Add(ctx, tx, out...)
}

// recordIDHex formats a record ID as the header's 32 hex digits.
func recordIDHex(id []byte) []byte {
	out := make([]byte, hex.EncodedLen(len(id)))
	hex.Encode(out, id)
	return out
}
