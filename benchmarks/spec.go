package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The modes a case runs in.
const (
	modeThroughput  = "throughput"  // N records async, as fast as the client goes
	modeLatency     = "latency"     // one record at a time, wait for each ack
	modeConcurrency = "concurrency" // G goroutines each sending one at a time
)

// Spec is what the parent asks a child process to run.
type Spec struct {
	Case       string            `json:"case"`
	Mode       string            `json:"mode"`
	Brokers    []string          `json:"brokers"`
	Topic      string            `json:"topic"`
	Records    int               `json:"records"`
	ValueSize  int               `json:"value_size"`
	Keys       int               `json:"keys"`
	Goroutines int               `json:"goroutines,omitempty"`
	Pool       int               `json:"pool,omitempty"`
	MaxTime    time.Duration     `json:"max_time,omitempty"` // latency/concurrency: stop early after this
	Tune       map[string]string `json:"tune,omitempty"`     // kprod config overrides (FromLookup names)
	CPUProfile string            `json:"cpu_profile,omitempty"`
}

// workload is the data every client sends: one value, a fixed set of keys.
type workload struct {
	Spec
	value []byte
	keys  [][]byte
}

func newWorkload(s Spec) *workload {
	w := &workload{Spec: s, value: make([]byte, s.ValueSize)}
	for i := range w.value {
		w.value[i] = byte('a' + i%26)
	}
	nk := max(s.Keys, 1)
	w.keys = make([][]byte, nk)
	for i := range w.keys {
		w.keys[i] = fmt.Appendf(nil, "key-%05d", i)
	}
	return w
}

func (w *workload) key(i int) []byte { return w.keys[i%len(w.keys)] }

// errCount counts failed records and keeps the first error.
type errCount struct {
	n     atomic.Int64
	once  sync.Once
	first string
}

func (e *errCount) add(err error) {
	if err == nil {
		return
	}
	e.n.Add(1)
	e.once.Do(func() { e.first = err.Error() })
}

func (e *errCount) fill(r *Result) {
	r.Errors = int(e.n.Load())
	if r.Errors > 0 {
		r.FirstErr = e.first
	}
}

// sequential runs send one call at a time up to w.Records times or until
// w.MaxTime, timing each call.
func sequential(ctx context.Context, w *workload, r *Result, send func(ctx context.Context, i int) error) {
	lat := make([]time.Duration, 0, w.Records)
	var ec errCount
	deadline := time.Now().Add(w.maxTime())
	m := startMeter()
	n := 0
	for ; n < w.Records; n++ {
		if n&63 == 0 && time.Now().After(deadline) {
			break
		}
		t := time.Now()
		ec.add(send(ctx, n))
		lat = append(lat, time.Since(t))
	}
	m.stop(r, n, w.ValueSize)
	percentiles(r, lat)
	ec.fill(r)
}

// concurrent runs w.Goroutines goroutines that share w.Records sends,
// each one call at a time, until done or w.MaxTime.
func concurrent(ctx context.Context, w *workload, r *Result, send func(ctx context.Context, g, i int) error) {
	g := max(w.Goroutines, 1)
	lats := make([][]time.Duration, g)
	var next atomic.Int64
	var ec errCount
	deadline := time.Now().Add(w.maxTime())
	var wg sync.WaitGroup
	m := startMeter()
	for gi := range g {
		wg.Go(func() {
			lat := make([]time.Duration, 0, w.Records/g+1)
			for {
				i := int(next.Add(1)) - 1
				if i >= w.Records || (i&63 == 0 && time.Now().After(deadline)) {
					if i < w.Records {
						next.Store(int64(w.Records)) // stop the others too
					}
					break
				}
				t := time.Now()
				ec.add(send(ctx, gi, i))
				lat = append(lat, time.Since(t))
			}
			lats[gi] = lat
		})
	}
	wg.Wait()
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	m.stop(r, len(all), w.ValueSize)
	percentiles(r, all)
	ec.fill(r)
	r.Goroutines = g
}

func (w *workload) maxTime() time.Duration {
	if w.MaxTime <= 0 {
		return time.Hour
	}
	return w.MaxTime
}

// client and config halves of a case name such as "sarama/best".
func splitCase(name string) (client, config string) {
	c, cfg, _ := strings.Cut(name, "/")
	return c, cfg
}
