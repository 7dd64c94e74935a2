package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
)

// An order row and its event, in one transaction: both or neither.
func ExampleTable_Add() {
	dir, _ := os.MkdirTemp("", "outbox-example")
	defer os.RemoveAll(dir)
	db, err := sql.Open("sqlite", sqliteDSN(filepath.Join(dir, "shop.db")))
	if err != nil {
		panic(err)
	}
	defer db.Close()
	ctx := context.Background()
	tbl := outbox.Table{Dialect: outbox.SQLite}
	if err := tbl.Migrate(ctx, db); err != nil {
		panic(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER)"); err != nil {
		panic(err)
	}

	place := func(id string, commit bool) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id, total) VALUES (?, ?)", id, 4200); err != nil {
			return err
		}
		if err := tbl.Add(ctx, tx, kafkaproducer.Record{Topic: "orders", Key: []byte(id), Value: []byte(`{"total":4200}`)}); err != nil {
			return err
		}
		if !commit {
			return tx.Rollback()
		}
		return tx.Commit()
	}
	if err := place("o-1", true); err != nil {
		panic(err)
	}
	if err := place("o-2", false); err != nil { // rolled back: no order, no event
		panic(err)
	}

	var orders, events int
	_ = db.QueryRow("SELECT count(*) FROM orders").Scan(&orders)
	_ = db.QueryRow("SELECT count(*) FROM " + outbox.DefaultTable).Scan(&events)
	fmt.Printf("%d order, %d event waiting for the relay\n", orders, events)
	// Output: 1 order, 1 event waiting for the relay
}
