package pgxoutbox_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
	"github.com/kprod/kprod/outbox/pgxoutbox"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t *testing.T) (string, *sql.DB, outbox.Table) {
	t.Helper()
	dsn := os.Getenv("OUTBOX_PG_DSN")
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("OUTBOX_PG_DSN is not set: run scripts/outbox-test.sh (make outbox)")
		}
		t.Skip("no PostgreSQL: OUTBOX_PG_DSN is not set (scripts/outbox-test.sh starts one)")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	tbl := outbox.Table{Name: "pgxoutbox_" + time.Now().Format("150405") + "_" + t.Name()[4:], Dialect: outbox.Postgres}
	if err := tbl.Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, s := range []string{"", "_dead", "_lease"} {
			_, _ = db.Exec("DROP TABLE IF EXISTS " + tbl.Name + s)
		}
		_, _ = db.Exec("DROP FUNCTION IF EXISTS " + tbl.Name + "_notify()")
		db.Close()
	})
	return dsn, db, tbl
}

// TestTxAndListener: rows added through a pgx.Tx are in the table after
// commit, and the commit wakes a Listener.
func TestTxAndListener(t *testing.T) {
	dsn, db, tbl := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := pgxoutbox.NewListener(dsn, tbl)
	defer l.Close()
	if err := l.Wait(ctx); err != nil { // connects and LISTENs
		t.Fatal(err)
	}
	woke := make(chan error, 1)
	go func() { woke <- l.Wait(ctx) }()

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tbl.Add(ctx, pgxoutbox.Tx(tx), kafkaproducer.Record{Topic: "t", Value: []byte("v")}, kafkaproducer.Record{Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		t.Fatalf("woken before commit: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the commit did not wake the listener")
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + tbl.Name).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want 2", n, err)
	}
}

// TestListenerClose: Close ends a Wait in progress; later Waits fail.
func TestListenerClose(t *testing.T) {
	dsn, _, tbl := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := pgxoutbox.NewListener(dsn, tbl)
	if err := l.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Wait(ctx) }()
	time.Sleep(100 * time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end Wait")
	}
	if err := l.Wait(ctx); err == nil {
		t.Fatal("Wait after Close: nil")
	}
}
