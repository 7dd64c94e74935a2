package dlq

import (
	"context"

	"github.com/kprod/kprod/kafkaproducer"
)

// Sender returns d as a kafkaproducer.RecordSender, for code written
// against the core's interface: kafkaproducer.NewTyped(d.Sender(), ...),
// say. Through it a record's Result.Err is nil once the record is kept
// somewhere, as a Typed user reads "nil means it is safe, stop handling
// it":
//
//   - Delivered: the Result of the send to its topic (partition, offset).
//   - DeadLettered, Spooled: Err nil, Partition and Offset -1 (the record
//     is not on its topic, or not yet). Use Producer.Send to learn which.
//   - Failed: Err is the error, a *kafkaproducer.SendError; the record is
//     the caller's, as from Producer.Send.
//   - Pending (ctx ended after the record was handed over): Err wraps
//     kafkaproducer.ErrOutcomeUnknown, as from the core's Send.
//
// Serialization failures never reach the sender: Typed returns them
// (pass them to DeadLetter to keep the record). The sender also has
// SendBatch, which Typed.SendBatch uses.
func (d *Producer) Sender() kafkaproducer.RecordSender { return sender{d} }

type sender struct{ d *Producer }

var _ kafkaproducer.RecordSender = sender{}

func (s sender) Send(ctx context.Context, rec kafkaproducer.Record) (kafkaproducer.Result, error) {
	r, _ := s.d.Send(ctx, rec)
	res := r.core()
	return res, res.Err
}

func (s sender) SendAsync(ctx context.Context, rec kafkaproducer.Record, cb func(kafkaproducer.Result)) error {
	if cb == nil {
		return s.d.SendAsync(ctx, rec, nil)
	}
	return s.d.SendAsync(ctx, rec, func(r Result) { cb(r.core()) })
}

func (s sender) SendBatch(ctx context.Context, recs []kafkaproducer.Record) kafkaproducer.Results {
	rs := s.d.SendBatch(ctx, recs)
	out := make(kafkaproducer.Results, len(rs))
	for i := range rs {
		out[i] = rs[i].core()
	}
	return out
}

// core is r as the core reports a record: see Sender.
func (r Result) core() kafkaproducer.Result {
	a := r.Attempt
	switch r.Disposition {
	case Delivered:
		return a
	case DeadLettered, Spooled:
		a.Partition, a.Offset, a.Err = -1, -1, nil
		return a
	}
	return failedResult(a.Record, r.Err)
}
