package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/kprod/kprod/txn"
)

// The side producers' topics.
const (
	payloadsTopic = "payloads" // too large on kfake: dead-lettered to payloads.DLT
	billingTopic  = "billing"  // refused for half the run on kfake: spooled, then replayed
	ledgerTopic   = "ledger"   // the transactional producer's
)

// ensureTopics creates the topics that are missing and waits until they
// take records, through a plain franz-go client.
func ensureTopics(addrs []string, want []topics.Topic) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		return err
	}
	defer cl.Close()
	rep, err := topics.Ensure(ctx, cl, want)
	if err != nil {
		return err
	}
	fmt.Println("topics:", rep)
	return topics.Ready(ctx, cl, topics.Names(want...)...)
}

// side is the dead-letter producer and the transactional producer.
type side struct {
	spoolDir string
	d        *dlq.Producer
	tp       *txn.Producer

	dispositions       [5]atomic.Int64 // by dlq.Disposition
	sideErrs           atomic.Int64
	committed, aborted atomic.Int64
}

func startSide(reg prometheus.Registerer, addrs []string, log *zap.Logger) (*side, error) {
	s := &side{}
	dm, err := metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "dlq"}), metrics.WithLogger(log))
	if err != nil {
		return nil, err
	}
	dcfg := dm.Instrument(presets.Reliable())
	dcfg.Brokers, dcfg.ClientID, dcfg.Logger = addrs, "metrics-example-dlq", log
	dp, err := kafkaproducer.New(dcfg)
	if err != nil {
		return nil, err
	}
	if s.spoolDir, err = os.MkdirTemp("", "kprod-metrics-example-spool-"); err != nil {
		return nil, err
	}
	s.d, err = dlq.New(dp, dlq.Config{
		SpoolDir: s.spoolDir,
		Observer: dm, // *metrics.Metrics is a dlq.Observer
		Replay:   dlq.ReplayConfig{Interval: 200 * time.Millisecond},
		Logger:   log,
	})
	if err != nil {
		return nil, err
	}

	tm, err := metrics.New(reg, metrics.WithConstLabels(prometheus.Labels{"producer": "txn"}), metrics.WithLogger(log))
	if err != nil {
		return nil, err
	}
	tcfg := tm.Instrument(presets.Reliable())
	tcfg.Brokers, tcfg.ClientID, tcfg.Logger = addrs, "metrics-example-txn", log
	s.tp, err = txn.New(tcfg, txn.Config{
		ID:          "metrics-example-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		InitTimeout: 10 * time.Second,
		Observer:    tm, // *metrics.Metrics is a txn.Observer
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

var errDeclined = errors.New("declined by the example")

// run sends through both side producers every 50ms until ctx ends,
// lifting billingFault (if any) halfway through.
func (s *side) run(ctx context.Context, billingFault *kfake.FaultHandle, duration time.Duration) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	half := time.After(duration / 2)
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			if billingFault != nil {
				billingFault.Remove()
			}
			return
		case <-half:
			if billingFault != nil {
				billingFault.Remove()
				billingFault = nil
			}
		case <-tick.C:
			v := []byte("record " + strconv.Itoa(i))
			for _, topic := range []string{payloadsTopic, billingTopic} {
				// The send's own bound; dlq finishes routing it either way.
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := s.d.Send(sctx, kafkaproducer.Record{Topic: topic, Value: v})
				cancel()
				if err != nil {
					s.sideErrs.Add(1)
					continue
				}
				if int(res.Disposition) < len(s.dispositions) {
					s.dispositions[res.Disposition].Add(1)
				}
			}
			err := s.tp.Run(context.Background(), func(ctx context.Context, tx *txn.Tx) error {
				for j := range 5 {
					if err := tx.SendAsync(ctx, kafkaproducer.Record{Topic: ledgerTopic, Value: fmt.Appendf(nil, "entry %d.%d", i, j)}, nil); err != nil {
						return err
					}
				}
				if i%5 == 4 {
					return errDeclined // aborts: nothing of it is visible to read_committed readers
				}
				return nil
			})
			switch {
			case err == nil:
				s.committed.Add(1)
			case errors.Is(err, errDeclined):
				s.aborted.Add(1)
			default:
				s.sideErrs.Add(1)
			}
		}
	}
}

// finish waits (while ctx allows) for the spool to be replayed.
func (s *side) finish(ctx context.Context) error {
	for s.d.Stats().SpoolRecords > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("spool still holds %d records: %w", s.d.Stats().SpoolRecords, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

func (s *side) dlqSummary() string {
	var b []byte
	for i := range s.dispositions {
		if n := s.dispositions[i].Load(); n > 0 {
			b = fmt.Appendf(b, "%v %d, ", dlq.Disposition(i), n)
		}
	}
	return fmt.Sprintf("%serrors %d", b, s.sideErrs.Load())
}

func (s *side) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.tp.Close(ctx)
	_ = s.d.Close(ctx)
	_ = os.RemoveAll(s.spoolDir)
}
