package metrics

import (
	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/txn"
)

// TxnObserver returns a txn.Observer that records every transaction
// attempt into m: kprod_transactions_total by outcome (committed,
// aborted, unknown), kprod_transaction_end_duration_seconds from the
// attempt's EndLatency (the commit latency for committed attempts;
// attempts that never sent EndTxn are counted but not timed), and
// kprod_transaction_retries_total for each aborted attempt that Run will
// run again. Pass it to txn.New, txn.NewPool or txn.NewPipeline with
// txn.WithObserver. It never blocks and is safe for concurrent use.
func (m *Metrics) TxnObserver() txn.Observer { return txnObserver{m} }

type txnObserver struct{ m *Metrics }

func (o txnObserver) OnAttempt(a txn.Attempt) {
	lat := o.m.countTxn(a.Outcome)
	if a.Outcome == txn.OutcomeCommitted || a.EndLatency > 0 {
		lat.Observe(a.EndLatency.Seconds())
	}
	if a.Retrying {
		o.m.RecordTxnRetry()
	}
}

// DLQObserver returns a dlq.Observer that records the dead-letter path
// into m: dead-lettered, spooled, replayed and ambiguous records by their
// original topic (kprod_records_{dead_lettered,spooled,replayed,ambiguous}_total),
// the circuit breaker's state (kprod_breaker_state and
// kprod_breaker_transitions_total) and the spool's size
// (kprod_spool_records, kprod_spool_bytes). Set it as dlq.Config.Observer.
// It never blocks and is safe for concurrent use.
func (m *Metrics) DLQObserver() dlq.Observer { return dlqObserver{m} }

type dlqObserver struct{ m *Metrics }

func (o dlqObserver) OnDeadLettered(topic string)      { o.m.RecordDeadLettered(topic) }
func (o dlqObserver) OnSpooled(topic string)           { o.m.RecordSpooled(topic) }
func (o dlqObserver) OnReplayed(topic string)          { o.m.RecordReplayed(topic) }
func (o dlqObserver) OnAmbiguous(topic string)         { o.m.RecordAmbiguous(topic) }
func (o dlqObserver) OnBreakerState(state string)      { o.m.SetBreakerState(state) }
func (o dlqObserver) OnSpoolSize(records, bytes int64) { o.m.SetSpool(records, bytes) }

var (
	_ txn.Observer = txnObserver{}
	_ dlq.Observer = dlqObserver{}
)
