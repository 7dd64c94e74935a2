package metrics

import (
	"slices"
	"time"

	"go.uber.org/zap"
)

// This file holds the observer methods package txn and package dlq call.
// They take plain values, so this package imports neither: *Metrics
// satisfies txn.Observer and dlq.Observer as it is. Pass m as
// txn.Config.Observer and as dlq.Config.Observer. Every method is safe
// for concurrent use and never blocks.

// Transaction outcomes, as txn reports them (txn.OutcomeCommitted, ...).
const (
	txnCommitted = "committed"
	txnAborted   = "aborted"
	txnUnknown   = "unknown"
)

// Reasons a record is set aside (dlq's OnSetAside), the values of the
// reason label of kprod_records_set_aside_total. Any other reason is
// counted as SetAsideOther.
const (
	// SetAsideRejected: replay found a spooled record that can never be
	// written (to its topic nor as a dead letter).
	SetAsideRejected = "rejected"
	// SetAsideQuarantined: damaged spool bytes were moved aside; their
	// topic is not known.
	SetAsideQuarantined = "quarantined"
	// SetAsideOther labels a reason kprod does not know.
	SetAsideOther = "other"
)

// OnTxnAttempt implements txn.Observer: it counts one finished
// transaction attempt under kprod_transactions_total{outcome} (committed,
// aborted or unknown; any other value counts as unknown), observes
// endLatency in kprod_transaction_end_duration_seconds{outcome} (every
// commit; aborts and unknowns only when EndTxn was sent, endLatency > 0),
// and counts kprod_transaction_retries_total when retrying. The
// transactional ID and the class are not labels: IDs are unbounded across
// pools and restarts.
func (m *Metrics) OnTxnAttempt(_, outcome, _ string, retrying bool, endLatency time.Duration) {
	switch outcome {
	case txnCommitted, txnAborted, txnUnknown:
	default:
		if !m.txnOddOnce.Swap(true) {
			m.log.Warn("unknown transaction outcome counted as unknown", zap.String("outcome", outcome))
		}
		outcome = txnUnknown
	}
	m.txns.WithLabelValues(outcome).Inc()
	if outcome == txnCommitted || endLatency > 0 {
		m.txnLatency.WithLabelValues(outcome).Observe(endLatency.Seconds())
	}
	if retrying {
		m.txnRetries.Inc()
	}
}

// OnDeadLettered implements dlq.Observer: a record from topic was
// written to its dead-letter topic (kprod_records_dead_lettered_total).
func (m *Metrics) OnDeadLettered(topic string) {
	m.deadLetter.WithLabelValues(m.topic(topic).name).Inc()
}

// OnSpooled implements dlq.Observer: a record for topic was written to
// the local spool (kprod_records_spooled_total).
func (m *Metrics) OnSpooled(topic string) {
	m.spooled.WithLabelValues(m.topic(topic).name).Inc()
}

// OnReplayed implements dlq.Observer: a spooled record was replayed to
// topic and acknowledged (kprod_records_replayed_total).
func (m *Metrics) OnReplayed(topic string) {
	m.replayed.WithLabelValues(m.topic(topic).name).Inc()
}

// OnAmbiguous implements dlq.Observer: a record for topic failed in a way
// that may have written it, so a resend or replay may duplicate it
// (kprod_records_ambiguous_total).
func (m *Metrics) OnAmbiguous(topic string) {
	m.ambiguous.WithLabelValues(m.topic(topic).name).Inc()
}

// OnDLTReplayed implements dlt.Observer (package dlq/dlt): a dead letter
// was replayed and acknowledged on topic, its destination
// (kprod_dlt_replayed_total).
func (m *Metrics) OnDLTReplayed(topic string) {
	m.dltReplayed.WithLabelValues(m.topic(topic).name).Inc()
}

// OnDLTFailedAgain implements dlt.Observer: a dead letter replayed to
// topic was refused again and went back to the dead-letter topic
// (kprod_dlt_replay_failed_total).
func (m *Metrics) OnDLTFailedAgain(topic string) {
	m.dltFailed.WithLabelValues(m.topic(topic).name).Inc()
}

// OnSetAside implements dlq.Observer: a record was set aside, neither
// delivered nor dead-lettered, for reason SetAsideRejected or
// SetAsideQuarantined (kprod_records_set_aside_total{topic,reason}). An
// empty topic (not known, as for a spool entry that cannot be read)
// counts under NoTopic.
func (m *Metrics) OnSetAside(topic, reason string) {
	switch reason {
	case SetAsideRejected, SetAsideQuarantined:
	default:
		reason = SetAsideOther
	}
	m.setAside.WithLabelValues(m.topic(topic).name, reason).Inc()
}

// OnBreakerState implements dlq.Observer: the circuit breaker is now in
// state BreakerClosed, BreakerHalfOpen or BreakerOpen (gobreaker's
// State.String(); "half_open" is accepted too). kprod_breaker_state shows
// the current state; a change is counted in kprod_breaker_transitions_total
// and logged at info (open: warn). An unknown state is counted as open,
// the state that means records are not reaching Kafka, and logged once.
func (m *Metrics) OnBreakerState(state string) {
	if state == "half_open" {
		state = BreakerHalfOpen
	}
	idx := slices.Index(breakerStates[:], state)
	if idx < 0 {
		if !m.breakerOddOnce.Swap(true) {
			m.log.Warn("unknown circuit-breaker state counted as open", zap.String("state", state))
		}
		state = BreakerOpen
		idx = slices.Index(breakerStates[:], state)
	}
	prev := m.breakerState.Swap(int32(idx))
	for i, s := range breakerStates {
		v := 0.0
		if i == idx {
			v = 1
		}
		m.breaker.WithLabelValues(s).Set(v)
	}
	if prev == int32(idx) {
		return
	}
	m.breakerTrans.WithLabelValues(state).Inc()
	from := "unknown"
	if prev >= 0 {
		from = breakerStates[prev]
	}
	lvl := zap.InfoLevel
	if state == BreakerOpen {
		lvl = zap.WarnLevel
	}
	m.log.Log(lvl, "circuit breaker state changed", zap.String("from", from), zap.String("to", state))
}

// OnSpoolSize implements dlq.Observer: the spool now holds records and
// bytes (kprod_spool_records, kprod_spool_bytes).
func (m *Metrics) OnSpoolSize(records, bytes int64) {
	m.spoolRecords.Set(float64(records))
	m.spoolBytes.Set(float64(bytes))
}
