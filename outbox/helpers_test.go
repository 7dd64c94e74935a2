package outbox_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
	"github.com/kprod/kprod/outbox/pgxoutbox"
	"github.com/kprod/kprod/presets"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// pgDSN is the PostgreSQL the tests use; scripts/outbox-test.sh starts a
// throwaway cluster and sets it.
const pgDSNEnv = "OUTBOX_PG_DSN"

// testDB is one database with a fresh outbox table.
type testDB struct {
	name    string // "postgres" or "sqlite"
	db      *sql.DB
	dsn     string // for child relays and listeners
	table   outbox.Table
	dialect outbox.Dialect
}

// dialects runs fn once per database: SQLite always, PostgreSQL when
// OUTBOX_PG_DSN is set (skipped with a message otherwise; a failure with
// CI=true).
func dialects(t *testing.T, fn func(t *testing.T, d *testDB)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, openSQLite(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, openPG(t)) })
}

func randName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func openPG(t testing.TB) *testDB {
	t.Helper()
	dsn := os.Getenv(pgDSNEnv)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: run the outbox tests through scripts/outbox-test.sh (make outbox)", pgDSNEnv)
		}
		t.Skipf("no PostgreSQL: %s is not set (scripts/outbox-test.sh starts a throwaway cluster and sets it)", pgDSNEnv)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("PostgreSQL at %s: %v", pgDSNEnv, err)
	}
	d := &testDB{name: "postgres", db: db, dsn: dsn, dialect: outbox.Postgres}
	d.table = outbox.Table{Name: randName("ob_"), Dialect: outbox.Postgres}
	if err := d.table.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n := d.table.Name
		for _, s := range []string{n, n + "_dead", n + "_lease", n + "_keys"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + s)
		}
		_, _ = db.Exec("DROP FUNCTION IF EXISTS " + n + "_notify()")
		db.Close()
	})
	return d
}

// sqliteDSN opens path in WAL mode with a busy timeout, and begins every
// transaction IMMEDIATE (writers take the write lock first, so two never
// deadlock upgrading a read lock).
func sqliteDSN(path string) string {
	return "file:" + path + "?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
}

func openSQLite(t testing.TB) *testDB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "outbox.db")
	dsn := sqliteDSN(path)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	d := &testDB{name: "sqlite", db: db, dsn: dsn, dialect: outbox.SQLite}
	d.table = outbox.Table{Name: randName("ob_"), Dialect: outbox.SQLite}
	if err := d.table.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return d
}

// producer is a Reliable producer for brokers, closed at the end of t.
func producer(t testing.TB, brokers []string, edit func(*kafkaproducer.Config)) *kafkaproducer.Producer {
	t.Helper()
	cfg := presets.Reliable()
	cfg.Brokers = brokers
	cfg.DeliveryTimeout = 30 * time.Second
	cfg.RequestTimeout = 10 * time.Second
	if edit != nil {
		edit(&cfg)
	}
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

// runRelay starts a relay for d in a goroutine; the returned stop ends it
// and waits (it is also called when the test ends).
func runRelay(t testing.TB, d *testDB, p *kafkaproducer.Producer, edit func(*outbox.RelayConfig)) (*outbox.Relay, func()) {
	t.Helper()
	cfg := outbox.RelayConfig{Table: d.table, DB: d.db, Producer: p, LeaseTTL: time.Second, Backoff: kafkaproducer.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}}
	var l *pgxoutbox.Listener
	if d.dialect == outbox.Postgres {
		l = pgxoutbox.NewListener(d.dsn, d.table)
		cfg.Wakeup = l.Wait
	}
	if edit != nil {
		edit(&cfg)
	}
	r, err := outbox.NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		if l != nil {
			l.Close()
		}
	}
	t.Cleanup(stop)
	return r, stop
}

// The child relay: the test binary re-run with childEnv set runs one
// relay until SIGTERM (exit 0) or SIGKILL.
const childEnv = "OUTBOX_TEST_CHILD_RELAY"

func childRelay() int {
	env := func(k string) string { return os.Getenv("OUTBOX_TEST_CHILD_" + k) }
	var dialect outbox.Dialect
	driver := "sqlite"
	if env("DIALECT") == "postgres" {
		dialect, driver = outbox.Postgres, "pgx"
	} else {
		dialect = outbox.SQLite
	}
	db, err := sql.Open(driver, env("DSN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	cfg := presets.Reliable()
	cfg.Brokers = strings.Split(env("BROKERS"), ",")
	cfg.DeliveryTimeout = 30 * time.Second
	cfg.RequestTimeout = 10 * time.Second
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tbl := outbox.Table{Name: env("TABLE"), Dialect: dialect}
	rc := outbox.RelayConfig{Table: tbl, DB: db, Producer: p, Owner: env("OWNER"), LeaseTTL: time.Second, BatchSize: 500,
		Backoff: kafkaproducer.Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}}
	var l *pgxoutbox.Listener
	if dialect == outbox.Postgres {
		l = pgxoutbox.NewListener(env("DSN"), tbl)
		rc.Wakeup = l.Wait
	}
	r, err := outbox.NewRelay(rc)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = r.Run(ctx)
	if l != nil {
		l.Close()
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = p.Close(cctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
