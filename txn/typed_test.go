package txn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/txn"
)

var _ kafkaproducer.RecordSender = (*txn.Tx)(nil)

type payment struct {
	Order  string `json:"order"`
	Amount int    `json:"amount"`
}

// TestTypedInsideTransaction: kafkaproducer.NewTyped works over a Tx, so
// typed sends commit and abort with the transaction.
func TestTypedInsideTransaction(t *testing.T) {
	c := cluster(t)
	p := newTxnProducer(t, c, txn.Config{ID: "typed"})
	ctx := testkit.Ctx(t, 20*time.Second)
	send := func(order string, abort bool) error {
		return p.Run(ctx, func(ctx context.Context, tx *txn.Tx) error {
			payments, err := kafkaproducer.NewTyped(tx, kafkaproducer.JSON[string](), kafkaproducer.JSON[payment]())
			if err != nil {
				return err
			}
			if _, err := payments.Send(ctx, kafkaproducer.TypedRecord[string, payment]{Topic: "payments", Key: order, Value: payment{order, 42}}); err != nil {
				return err
			}
			if abort {
				return errors.New("abort")
			}
			return nil
		})
	}
	if err := send("o-1", false); err != nil {
		t.Fatal(err)
	}
	if err := send("o-2", true); err == nil {
		t.Fatal("aborting Run succeeded")
	}
	expectValues(t, c, "payments", true, []string{`{"order":"o-1","amount":42}`})
}
