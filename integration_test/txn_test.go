package integration_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
)

var errRollback = errors.New("business rule says no")

// writeTransactions commits committed records and aborts aborted ones
// through package txn, and returns the committed records.
func writeTransactions(t *testing.T, c *kafkatest.Cluster, topic string, committed, aborted int) []kafkaproducer.Record {
	t.Helper()
	cfg := presets.Reliable()
	cfg.Brokers = c.Brokers()
	tp, err := txn.New(cfg, txn.Config{ID: fmt.Sprintf("%s-tx", topic)})
	if err != nil {
		t.Fatalf("txn.New: %v", err)
	}
	ctx := ctxFor(t, time.Minute)
	defer func() {
		if err := tp.Close(ctx); err != nil {
			t.Errorf("close transactional producer: %v", err)
		}
	}()
	var want []kafkaproducer.Record
	for i := range committed {
		want = append(want, testRecord(topic, i))
	}
	if err := tp.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		return tx.SendBatch(ctx, want).FirstErr()
	}); err != nil {
		t.Fatalf("committed transaction: %v", err)
	}
	err = tp.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
		for i := range aborted {
			if _, err := tx.Send(ctx, testRecord(topic, 1000+i)); err != nil {
				return err
			}
		}
		return errRollback
	})
	var te *txn.TxnError
	if !errors.As(err, &te) || !errors.Is(err, errRollback) {
		t.Fatalf("aborted transaction: %v, want a *TxnError wrapping the function's error", err)
	}
	return want
}

// TestTransactionsReadCommitted commits one transaction and aborts
// another: read_committed sees exactly the committed records,
// read_uncommitted sees both.
func TestTransactionsReadCommitted(t *testing.T) {
	onEachBackend(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := c.NewTopic(t, 3)
		want := writeTransactions(t, c, topic, 12, 5)
		checkRecords(t, c.ReadAll(t, topic, kafkatest.ReadCommitted, 30*time.Second), want)
		if got := c.ReadAll(t, topic, kafkatest.ReadUncommitted, 30*time.Second); len(got) != 12+5 {
			t.Fatalf("read_uncommitted read %d records, want %d (committed and aborted)", len(got), 12+5)
		}
	})
}
