package main

import (
	"runtime"
	"slices"
	"sort"
	"syscall"
	"time"
)

// Result is one measured run of one case, as a child process reports it.
type Result struct {
	Case    string `json:"case"`
	Mode    string `json:"mode"`
	Round   int    `json:"round"`
	Variant string `json:"variant,omitempty"`

	Records   int     `json:"records"`
	Seconds   float64 `json:"seconds"`
	RecPerSec float64 `json:"records_per_sec"`
	MBPerSec  float64 `json:"mb_per_sec"`
	// CPUus is client CPU (user+system, every thread of the process, so
	// librdkafka's C threads count) per record, in microseconds.
	CPUus float64 `json:"cpu_us_per_record"`
	// Allocs is Go heap allocations per record (runtime.MemStats.Mallocs).
	Allocs float64 `json:"allocs_per_record"`
	// AllocBytes is Go heap bytes allocated per record.
	AllocBytes float64 `json:"alloc_bytes_per_record"`
	// P50us and P99us are per-send latencies (latency and concurrency
	// modes), measured around the blocking call.
	P50us float64 `json:"p50_us,omitempty"`
	P99us float64 `json:"p99_us,omitempty"`

	// GCs is the number of garbage collections during the run.
	GCs uint32 `json:"gcs"`

	Goroutines int `json:"goroutines,omitempty"`
	Pool       int `json:"pool,omitempty"`

	Errors   int    `json:"errors"`
	FirstErr string `json:"first_error,omitempty"`
}

// meter measures wall time, process CPU and Go allocations between start
// and stop.
type meter struct {
	t0     time.Time
	ru0    syscall.Rusage
	malloc uint64
	bytes  uint64
	gcs    uint32
}

func startMeter() *meter {
	// Collect the setup's garbage first so it is not charged to the run.
	runtime.GC()
	m := &meter{}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.malloc, m.bytes, m.gcs = ms.Mallocs, ms.TotalAlloc, ms.NumGC
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &m.ru0)
	m.t0 = time.Now()
	return m
}

// stop fills the rate, CPU and allocation fields of r for records
// records of valueSize bytes.
func (m *meter) stop(r *Result, records, valueSize int) {
	el := time.Since(m.t0)
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu := tv(ru.Utime) - tv(m.ru0.Utime) + tv(ru.Stime) - tv(m.ru0.Stime)
	r.Records = records
	r.Seconds = el.Seconds()
	r.GCs = ms.NumGC - m.gcs
	if records == 0 || el <= 0 {
		return
	}
	r.RecPerSec = float64(records) / el.Seconds()
	r.MBPerSec = r.RecPerSec * float64(valueSize) / 1e6
	r.CPUus = float64(cpu.Microseconds()) / float64(records)
	r.Allocs = float64(ms.Mallocs-m.malloc) / float64(records)
	r.AllocBytes = float64(ms.TotalAlloc-m.bytes) / float64(records)
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

// percentiles sets p50 and p99 (nearest rank) of lat, which it sorts.
func percentiles(r *Result, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	r.P50us = us(lat[rank(len(lat), 0.50)])
	r.P99us = us(lat[rank(len(lat), 0.99)])
}

func rank(n int, q float64) int {
	i := int(float64(n)*q+0.999999) - 1
	return max(0, min(n-1, i))
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// median returns the median of xs (the mean of the middle two for an even
// count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
