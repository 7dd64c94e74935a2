package spool

import (
	"context"
	"testing"
)

func benchEntry() Entry {
	return Entry{Topic: "orders", OriginalTopic: "orders", Key: []byte("customer-0042"), Value: make([]byte, 100), Class: "timeout"}
}

// BenchmarkAppendParallel: many goroutines append one 100-byte record
// each; group commit shares every fsync among them.
func BenchmarkAppendParallel(b *testing.B) {
	s, err := Open(b.TempDir(), Options{MaxBytes: 8 << 30, SegmentBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := benchEntry()
		for pb.Next() {
			if err := s.Append(context.Background(), e); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendBatch100: one caller appends 100 records per call (what
// the dead-letter router does with what piled up), one fsync per call.
func BenchmarkAppendBatch100(b *testing.B) {
	s, err := Open(b.TempDir(), Options{MaxBytes: 8 << 30, SegmentBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := make([]Entry, 100)
	for i := range batch {
		batch[i] = benchEntry()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		if err := s.Append(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
