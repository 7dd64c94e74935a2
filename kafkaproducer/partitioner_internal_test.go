package kafkaproducer

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// vectors are the published partitioner test vectors of Kafka, librdkafka
// and sarama (testdata/partitioners.json says where each comes from).
type vectors struct {
	JavaMurmur2 []struct {
		Key  string `json:"key"`
		Hash int32  `json:"hash"`
	} `json:"java_murmur2_signed"`
	RdMurmur2 []struct {
		Key  string `json:"key"`
		Hash string `json:"hash"`
	} `json:"librdkafka_murmur2_unsigned_hex"`
	Rd0048 struct {
		Keys             []*string `json:"keys_in_order"`
		ConsistentRandom []any     `json:"consistent_random"`
		Murmur2Random    []any     `json:"murmur2_random"`
		FNV1aRandom      []any     `json:"fnv1a_random"`
	} `json:"librdkafka_0048_partitioners"`
	SaramaMurmur2 []struct {
		Key       string `json:"key"`
		Hash      uint32 `json:"hash"`
		Partition *int   `json:"partition_of_100"`
	} `json:"sarama_murmur2_unsigned"`
	SaramaCRC []struct {
		Key       string `json:"key"`
		Partition int    `json:"partition"`
	} `json:"sarama_consistent_crc_partition_of_100"`
	SaramaFNV []struct {
		Key       string `json:"key"`
		Partition int    `json:"partition"`
	} `json:"sarama_default_fnv1a_partition_of_100"`
}

func loadVectors(t *testing.T) vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/partitioners.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.JavaMurmur2) == 0 || len(v.Rd0048.Keys) == 0 || len(v.SaramaCRC) == 0 {
		t.Fatal("vectors file is missing sections")
	}
	return v
}

func hex32(t *testing.T, s string) uint32 {
	t.Helper()
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return uint32(n)
}

// place runs a kprod partitioner (as franz-go would) for one key.
func place(t *testing.T, name Partitioner, key []byte, n int) (int, bool) {
	t.Helper()
	p, err := name.build()
	if err != nil {
		t.Fatal(err)
	}
	tp := p.ForTopic("t")
	r := &kgo.Record{Key: key, Partition: -1}
	consistent := tp.RequiresConsistency(r)
	if bp, ok := tp.(kgo.TopicBackupPartitioner); ok {
		return bp.PartitionByBackup(r, n, &iter{n: n}), consistent
	}
	return tp.Partition(r, n), consistent
}

type iter struct{ i, n int }

func (it *iter) Next() (int, int64) { it.i++; return it.i - 1, 0 }
func (it *iter) Rem() int           { return it.n - it.i }

func TestMurmur2Vectors(t *testing.T) {
	v := loadVectors(t)
	for _, tt := range v.JavaMurmur2 {
		if got := int32(murmur2([]byte(tt.Key))); got != tt.Hash {
			t.Errorf("java murmur2(%q) = %d, want %d", tt.Key, got, tt.Hash)
		}
	}
	for _, tt := range v.RdMurmur2 {
		if got := murmur2([]byte(tt.Key)); got != hex32(t, tt.Hash) {
			t.Errorf("librdkafka murmur2(%q) = %#x, want %s", tt.Key, got, tt.Hash)
		}
	}
	for _, tt := range v.SaramaMurmur2 {
		if got := murmur2([]byte(tt.Key)); got != tt.Hash {
			t.Errorf("sarama murmur2(%q) = %d, want %d", tt.Key, got, tt.Hash)
		}
		if tt.Partition != nil {
			if got, _ := place(t, PartitionerJava, []byte(tt.Key), 100); got != *tt.Partition {
				t.Errorf("java partition(%q, 100) = %d, want %d", tt.Key, got, *tt.Partition)
			}
		}
	}
}

// TestLibrdkafka0048 replays librdkafka's tests/0048-partitioner.c table
// with its 7 (quick) and 17 partition counts.
func TestLibrdkafka0048(t *testing.T) {
	v := loadVectors(t)
	modes := []struct {
		name Partitioner
		want []any
	}{
		{PartitionerLibrdkafka, v.Rd0048.ConsistentRandom},
		{PartitionerJava, v.Rd0048.Murmur2Random},
		{PartitionerSarama, v.Rd0048.FNV1aRandom},
	}
	for _, m := range modes {
		for _, n := range []int{7, 17} {
			for i, k := range v.Rd0048.Keys {
				var key []byte
				if k != nil {
					key = []byte(*k)
				}
				got, consistent := place(t, m.name, key, n)
				if got < 0 || got >= n {
					t.Fatalf("%s: key %d placed at %d of %d", m.name, i, got, n)
				}
				switch want := m.want[i].(type) {
				case float64: // -1: any partition, spread
					if consistent {
						t.Errorf("%s: key %q should be spread, not hashed", m.name, key)
					}
				case string:
					if exp := int(hex32(t, want) % uint32(n)); got != exp {
						t.Errorf("%s n=%d key %q: partition %d, want %d", m.name, n, key, got, exp)
					}
				}
			}
		}
	}
}

func TestSaramaVectors(t *testing.T) {
	v := loadVectors(t)
	for _, tt := range v.SaramaCRC {
		if got, _ := place(t, PartitionerSaramaCRC, []byte(tt.Key), 100); got != tt.Partition {
			t.Errorf("sarama-crc(%q) = %d, want %d", tt.Key, got, tt.Partition)
		}
	}
	for _, tt := range v.SaramaFNV {
		if got, _ := place(t, PartitionerSarama, []byte(tt.Key), 100); got != tt.Partition {
			t.Errorf("sarama(%q) = %d, want %d", tt.Key, got, tt.Partition)
		}
	}
}

func TestExplicitPartitionWins(t *testing.T) {
	part := func(tp kgo.TopicPartitioner, r *kgo.Record) int {
		if bp, ok := tp.(kgo.TopicBackupPartitioner); ok {
			return bp.PartitionByBackup(r, 8, &iter{n: 8})
		}
		return tp.Partition(r, 8)
	}
	for _, name := range Partitioners() {
		p, _ := name.build()
		tp := p.ForTopic("t")
		px := &pending{explicit: -1, parent: context.Background()}
		px.kr = kgo.Record{Key: []byte("k"), Partition: 5, Context: px}
		if got := part(tp, &px.kr); got != 5 || !tp.RequiresConsistency(&px.kr) {
			t.Errorf("%s: explicit partition 5 went to %d", name, got)
		}
		if name == PartitionerManual {
			continue
		}
		// A hand-built franz-go record (on a client from ClientOpts) is
		// partitioned, whatever its zero Partition field says.
		seen := map[int]bool{}
		for i := range 64 {
			seen[part(tp, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i)})] = true
		}
		if len(seen) < 2 {
			t.Errorf("%s: hand-built records all went to partition %v", name, seen)
		}
	}
}

func TestRoundRobinSpreads(t *testing.T) {
	p, _ := PartitionerRoundRobin.build()
	tp := p.ForTopic("t")
	seen := map[int]bool{}
	for range 6 {
		seen[tp.Partition(&kgo.Record{Key: []byte("same"), Partition: -1}, 3)] = true
	}
	if len(seen) != 3 {
		t.Errorf("round-robin used %d of 3 partitions", len(seen))
	}
}

func TestBackoffJitter(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		try      int
		j        float64
		min, max time.Duration
	}{
		{1, 0, 50 * time.Millisecond, 50 * time.Millisecond},
		{1, 0.999, 99 * time.Millisecond, 100 * time.Millisecond},
		{3, 0, 200 * time.Millisecond, 200 * time.Millisecond},
		{10, 0.999, 999 * time.Millisecond, time.Second},
		{10, 0, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		got := b.wait(tt.try, b.Max, tt.j)
		if got < tt.min || got > tt.max {
			t.Errorf("try %d jitter %v: %v not in [%v, %v]", tt.try, tt.j, got, tt.min, tt.max)
		}
	}
	fn := b.fn()
	for try := 1; try < 50; try++ {
		if d := fn(try); d <= 0 || d > time.Second {
			t.Fatalf("try %d: %v", try, d)
		}
	}
}

// BenchmarkPartitioners places keyed and unkeyed records with each
// partitioner as franz-go calls it (ForTopic once, then per record
// RequiresConsistency and Partition or PartitionByBackup), next to
// franz-go's own default partitioner (kgo.UniformBytesPartitioner with its
// default hasher), which kprod's java partitioner wraps with murmur2 and
// the explicit-partition check. The unkeyed cases stay on one partition
// (no batch fills here), the path nearly every unkeyed record takes. The
// hashes alone are BenchmarkHashes.
func BenchmarkPartitioners(b *testing.B) {
	keys := make([][]byte, 10_000)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "key-%05d", i)
	}
	const n = 6
	type partitionerCase struct {
		name string
		p    func() (kgo.Partitioner, error)
	}
	cases := []partitionerCase{{"franz-go-default", func() (kgo.Partitioner, error) {
		return kgo.UniformBytesPartitioner(64<<10, true, true, nil), nil // franz-go's own default
	}}}
	for _, name := range Partitioners() {
		if name == PartitionerManual {
			continue // places nothing: the record's own Partition is used
		}
		cases = append(cases, partitionerCase{string(name), name.build})
	}
	for _, c := range cases {
		for _, keyed := range []bool{true, false} {
			sub := c.name + "/keyed"
			if !keyed {
				sub = c.name + "/no-key"
			}
			b.Run(sub, func(b *testing.B) {
				p, err := c.p()
				if err != nil {
					b.Fatal(err)
				}
				tp := p.ForTopic("t")
				bp, backup := tp.(kgo.TopicBackupPartitioner)
				r := &kgo.Record{Topic: "t", Partition: -1}
				it := &iter{n: n} // franz-go's own backup iterator is not the partitioner's to allocate
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if keyed {
						r.Key = keys[i%len(keys)]
					}
					i++
					var got int
					_ = tp.RequiresConsistency(r) // franz-go asks this of every record
					if backup {
						it.i = 0
						got = bp.PartitionByBackup(r, n, it)
					} else {
						got = tp.Partition(r, n)
					}
					if got < 0 || got >= n {
						b.Fatalf("partition %d of %d", got, n)
					}
				}
			})
		}
	}
}

// BenchmarkHashes times the key hashes the partitioners use on a 9-byte
// key.
func BenchmarkHashes(b *testing.B) {
	key := []byte("key-01234")
	for _, h := range []struct {
		name string
		f    func([]byte) uint32
	}{{"murmur2", Murmur2}, {"fnv1a", FNV1a}, {"crc32", crc32.ChecksumIEEE}} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			var sum uint32
			for b.Loop() {
				sum += h.f(key)
			}
			if sum == 1 { // keeps sum live; never true in practice
				b.Log(sum)
			}
		})
	}
}
