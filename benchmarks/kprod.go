package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/twmb/franz-go/pkg/kgo"
)

// presetConfig is the named kprod preset with w's brokers and the tuning
// overrides applied (names as kafkaproducer.FromLookup reads them, plus
// LINGER=none for NoLinger).
func presetConfig(w *workload, preset string) (kafkaproducer.Config, error) {
	cfg, err := presets.ByName(preset)
	if err != nil {
		return cfg, err
	}
	tune := map[string]string{}
	for k, v := range w.Tune {
		if strings.EqualFold(k, "LINGER") && v == "none" {
			cfg.Linger = kafkaproducer.NoLinger
			continue
		}
		tune[strings.ToUpper(k)] = v
	}
	cfg, err = kafkaproducer.FromLookup("", cfg, func(k string) (string, bool) { v, ok := tune[k]; return v, ok })
	if err != nil {
		return cfg, err
	}
	cfg.Brokers = w.Brokers
	cfg.ClientID = "kbench"
	return cfg, cfg.Validate()
}

// Event is the typed JSON value: it encodes to about 100 bytes, the size
// of the bytes workload's value.
type Event struct {
	ID      int64  `json:"id"`
	User    string `json:"user"`
	Kind    string `json:"kind"`
	Amount  int64  `json:"amount_cents"`
	Payload string `json:"payload"`
}

func (w *workload) event(i int) Event {
	return Event{ID: int64(i), User: "user-0042", Kind: "order.created", Amount: 12345, Payload: "abcdefghijklmnopqrstuvwxyzabcdefghijkl"}
}

// The send styles of the kprod cases.
const (
	styleBytes = "bytes" // kprod-bytes: SendAsync of Record, a Result per record
	styleJSON  = "json"  // kprod-json: typed SendAsync of Event as JSON
	styleErr   = "err"   // kprod-err: SendAsyncErr of Record, an error per record
)

// runKprod runs a "kprod-bytes/<preset>", "kprod-json/<preset>" or
// "kprod-err/<preset>" case.
func runKprod(ctx context.Context, w *workload, style, preset string, r *Result) error {
	typed := style == styleJSON
	if style == styleErr && w.Mode != modeThroughput {
		return fmt.Errorf("kprod-err runs in throughput mode only")
	}
	cfg, err := presetConfig(w, preset)
	if err != nil {
		return err
	}
	pool := max(w.Pool, 1)
	ps := make([]*kafkaproducer.Producer, pool)
	for i := range ps {
		p, err := kafkaproducer.New(cfg)
		if err != nil {
			return err
		}
		defer p.Close(context.Background())
		ps[i] = p
		// Warm up: metadata, connection, producer ID.
		if _, err := p.Send(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(0), Value: w.value}); err != nil {
			return fmt.Errorf("warm-up send: %w", err)
		}
	}
	p := ps[0]
	tp, err := kafkaproducer.NewTyped(p, kafkaproducer.BytesSerializer{}, kafkaproducer.JSON[Event]())
	if err != nil {
		return err
	}
	switch w.Mode {
	case modeThroughput:
		var wg sync.WaitGroup
		var ec errCount
		wg.Add(w.Records)
		stopProfile, err := startProfile(w.CPUProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		m := startMeter()
		switch {
		case style == styleErr:
			cb := func(err error) { ec.add(err); wg.Done() }
			for i := range w.Records {
				if err := p.SendAsyncErr(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value}, cb); err != nil {
					return err
				}
			}
		case typed:
			cb := func(res kafkaproducer.TypedResult[[]byte, Event]) { ec.add(res.Err); wg.Done() }
			for i := range w.Records {
				if err := tp.SendAsync(ctx, kafkaproducer.TypedRecord[[]byte, Event]{Topic: w.Topic, Key: w.key(i), Value: w.event(i)}, cb); err != nil {
					return err
				}
			}
		default:
			cb := func(res kafkaproducer.Result) { ec.add(res.Err); wg.Done() }
			for i := range w.Records {
				if err := p.SendAsync(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value}, cb); err != nil {
					return err
				}
			}
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		stopProfile()
		ec.fill(r)
	case modeLatency:
		if typed {
			sequential(ctx, w, r, func(ctx context.Context, i int) error {
				_, err := tp.Send(ctx, kafkaproducer.TypedRecord[[]byte, Event]{Topic: w.Topic, Key: w.key(i), Value: w.event(i)})
				return err
			})
		} else {
			sequential(ctx, w, r, func(ctx context.Context, i int) error {
				_, err := p.Send(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value})
				return err
			})
		}
	case modeConcurrency:
		// Round-robin over the pool (a pool of one is the single
		// producer).
		var rr atomic.Uint64
		concurrent(ctx, w, r, func(ctx context.Context, _, i int) error {
			q := ps[(rr.Add(1)-1)%uint64(len(ps))]
			_, err := q.Send(ctx, kafkaproducer.Record{Topic: w.Topic, Key: w.key(i), Value: w.value})
			return err
		})
		r.Pool = pool
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}

// runFranz runs a "franz-go/<preset>" case: a raw kgo client built from
// the preset's own ClientOpts, producing &kgo.Record values with one
// shared promise, as a franz-go user would.
//
// With withResult ("franz-go+result/<preset>") it does per record what
// kprod does to report a SendAsync record, and nothing else: the record is
// wrapped with its callback and send time (one allocation, like kprod's
// pending record), the promise builds a kafkaproducer.Result from the
// record (its Latency left zero), calls the callback and counts the
// completion with an atomic add. It prices a per-record Result by itself;
// it checks nothing and cannot be closed safely, so it is a measurement,
// not a producer.
//
// The records carry Partition: -1. ClientOpts installs kprod's
// partitioner, which reads Partition >= 0 as an explicit partition (kprod
// itself stores -1 for "choose"): a raw record's zero value would send
// every record to partition 0 and make franz-go look faster than it is
// (fewer, larger requests). See the report's "core changes" note.
func runFranz(ctx context.Context, w *workload, preset string, withResult bool, r *Result) error {
	cfg, err := presetConfig(w, preset)
	if err != nil {
		return err
	}
	opts, err := cfg.ClientOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(0), Value: w.value, Partition: -1}).FirstErr(); err != nil {
		return fmt.Errorf("warm-up send: %w", err)
	}
	switch w.Mode {
	case modeThroughput:
		var wg sync.WaitGroup
		var ec errCount
		wg.Add(w.Records)
		promise := func(_ *kgo.Record, err error) { ec.add(err); wg.Done() }
		stopProfile, err := startProfile(w.CPUProfile)
		if err != nil {
			return err
		}
		defer stopProfile()
		m := startMeter()
		diag := w.Tune["diag"]
		if withResult {
			diag = "result"
		}
		switch diag {
		case "result":
			var completed atomic.Int64
			cb := func(res kafkaproducer.Result) { ec.add(res.Err); wg.Done() }
			report := func(kr *kgo.Record, err error) {
				wr := (*wrapped)(unsafe.Add(unsafe.Pointer(kr), -int(unsafe.Offsetof(wrapped{}.kr))))
				wr.cb(kafkaproducer.Result{
					Record:    kafkaproducer.Record{Topic: kr.Topic, Key: kr.Key, Value: kr.Value, Headers: kr.Headers, Timestamp: kr.Timestamp},
					Partition: kr.Partition, Offset: kr.Offset, Timestamp: kr.Timestamp,
					Err: err,
				})
				completed.Add(1)
			}
			for i := range w.Records {
				now := time.Now() // the send time and the timestamp, one clock read as in kprod
				wr := &wrapped{cb: cb, start: now.Sub(epoch), kr: kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Timestamp: now, Partition: -1}}
				cl.Produce(ctx, &wr.kr, report)
			}
		case "small":
			// Diagnostic: franz-go+result with a four-word result (the
			// record's pointer, its send time, the error) in place of
			// kafkaproducer.Result, to price a Result that points at
			// the record instead of copying its fields.
			type smallResult struct {
				r     *kgo.Record
				start time.Duration
				err   error
			}
			type smallWrapped struct {
				cb    func(smallResult)
				start time.Duration
				kr    kgo.Record
			}
			var completed atomic.Int64
			cb := func(res smallResult) { ec.add(res.err); wg.Done() }
			report := func(kr *kgo.Record, err error) {
				wr := (*smallWrapped)(unsafe.Add(unsafe.Pointer(kr), -int(unsafe.Offsetof(smallWrapped{}.kr))))
				wr.cb(smallResult{r: kr, start: wr.start, err: err})
				completed.Add(1)
			}
			for i := range w.Records {
				now := time.Now()
				wr := &smallWrapped{cb: cb, start: now.Sub(epoch), kr: kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Timestamp: now, Partition: -1}}
				cl.Produce(ctx, &wr.kr, report)
			}
		case "pad96":
			// Diagnostic: the record inside a 256-byte object, as
			// kprod's slimmed pending would be.
			type padded struct {
				kr  kgo.Record
				pad [12]*byte
			}
			for i := range w.Records {
				pr := &padded{kr: kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1}}
				cl.Produce(ctx, &pr.kr, promise)
			}
		case "ctx":
			// Diagnostic: the record's Context set to a wrapper, as
			// kprod's pending is.
			for i := range w.Records {
				r := &ctxRecord{}
				r.kr = kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1, Context: r}
				r.Context = ctx
				cl.Produce(ctx, &r.kr, promise)
			}
		default:
			for i := range w.Records {
				cl.Produce(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1}, promise)
			}
		}
		wg.Wait()
		m.stop(r, w.Records, w.ValueSize)
		stopProfile()
		ec.fill(r)
	case modeLatency:
		sequential(ctx, w, r, func(ctx context.Context, i int) error {
			return cl.ProduceSync(ctx, &kgo.Record{Topic: w.Topic, Key: w.key(i), Value: w.value, Partition: -1}).FirstErr()
		})
	default:
		return fmt.Errorf("mode %q", w.Mode)
	}
	return nil
}

// wrapped is a record with what a per-record report needs, as kprod's
// pending record (franz-go+result cases).
type wrapped struct {
	cb    func(kafkaproducer.Result)
	start time.Duration
	kr    kgo.Record
}

// epoch is the origin of wrapped.start.
var epoch = time.Now()

// ctxRecord is a diagnostic: a record that is its own context.
type ctxRecord struct {
	kr kgo.Record
	context.Context
}
