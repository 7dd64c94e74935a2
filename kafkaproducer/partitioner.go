package kafkaproducer

import (
	"hash/crc32"
	"hash/fnv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// uniformStickyBytes is how much goes to one partition before the
// uniform sticky partitioner moves on (Java's batch.size default is
// 16 KiB; KIP-794 uses partitioner.adaptive with batch.size; franz-go
// and kprod use 64 KiB, the size batches actually reach here).
const uniformStickyBytes = 64 << 10

// Partitioners lists every partitioner name New accepts.
func Partitioners() []Partitioner {
	return []Partitioner{PartitionerJava, PartitionerLibrdkafka, PartitionerSarama, PartitionerSaramaCRC, PartitionerRoundRobin, PartitionerManual}
}

// build returns the franz-go partitioner, wrapped so that records with an
// explicit partition go to it.
func (p Partitioner) build() (kgo.Partitioner, error) {
	var inner kgo.Partitioner
	switch p {
	case "", PartitionerJava:
		inner = kgo.UniformBytesPartitioner(uniformStickyBytes, true, true, kgo.KafkaHasher(murmur2))
	case PartitionerLibrdkafka:
		inner = emptyKeySpread{kgo.StickyKeyPartitioner(unsignedHasher(crc32.ChecksumIEEE))}
	case PartitionerSarama:
		inner = kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(fnv1a))
	case PartitionerSaramaCRC:
		inner = kgo.StickyKeyPartitioner(unsignedHasher(crc32.ChecksumIEEE))
	case PartitionerRoundRobin:
		inner = kgo.RoundRobinPartitioner()
	case PartitionerManual:
		inner = kgo.ManualPartitioner()
	default:
		names := make([]string, 0, 6)
		for _, n := range Partitioners() {
			names = append(names, string(n))
		}
		return nil, cfgErr("Partitioner", "unknown partitioner %q: use one of %s", string(p), strings.Join(names, ", "))
	}
	return explicit{inner}, nil
}

// murmur2 is Kafka's murmur2 hash (Utils.murmur2 in the Java client, seed
// 0x9747b28c), as an unsigned 32-bit value. The Java client places a keyed
// record at (murmur2(key) & 0x7fffffff) % partitions.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// unsignedHasher places a key at hash % n, the hash taken as unsigned
// (librdkafka's consistent partitioners and sarama's consistent CRC one).
// Unlike kgo.SaramaHasher it does not depend on the width of int.
func unsignedHasher(hash func([]byte) uint32) kgo.PartitionerHasher {
	return func(key []byte, n int) int { return int(hash(key) % uint32(n)) }
}

// fnv1a is the 32-bit FNV-1a hash, sarama's default key hash.
func fnv1a(b []byte) uint32 {
	h := fnv.New32a()
	_, _ = h.Write(b)
	return h.Sum32()
}

// emptyKeySpread treats an empty key like a nil one (spread, not hashed),
// as librdkafka's consistent_random does.
type emptyKeySpread struct{ kgo.Partitioner }

func (e emptyKeySpread) ForTopic(t string) kgo.TopicPartitioner {
	return emptyKeyTopic{e.Partitioner.ForTopic(t)}
}

type emptyKeyTopic struct{ kgo.TopicPartitioner }

func (e emptyKeyTopic) RequiresConsistency(r *kgo.Record) bool { return len(r.Key) > 0 }

func (e emptyKeyTopic) Partition(r *kgo.Record, n int) int {
	if len(r.Key) == 0 && r.Key != nil {
		k := r.Key
		r.Key = nil
		p := e.TopicPartitioner.Partition(r, n)
		r.Key = k
		return p
	}
	return e.TopicPartitioner.Partition(r, n)
}

func (e emptyKeyTopic) OnNewBatch() {
	if nb, ok := e.TopicPartitioner.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

// explicit sends a record that kprod sent with Record.PartitionSet to
// its partition, and every other record to the wrapped partitioner. A
// franz-go record built by hand on a client from Config.ClientOpts (whose
// Partition is 0 unless set) is always partitioned; use PartitionerManual
// to place such records yourself. franz-go discovers optional
// interfaces by type assertion, so the wrapper for a topic implements
// exactly the ones the wrapped topic partitioner does.
type explicit struct{ inner kgo.Partitioner }

func (e explicit) ForTopic(t string) kgo.TopicPartitioner {
	tp := e.inner.ForTopic(t)
	base := explicitTopic{tp}
	bp, backup := tp.(kgo.TopicBackupPartitioner)
	nb, newBatch := tp.(kgo.TopicPartitionerOnNewBatch)
	switch {
	case backup && newBatch:
		return explicitBackupNewBatch{explicitBackup{base, bp}, nb}
	case backup:
		return explicitBackup{base, bp}
	case newBatch:
		return explicitNewBatch{base, nb}
	default:
		return base
	}
}

type explicitTopic struct{ tp kgo.TopicPartitioner }

// isExplicit reports a record kprod sent with an explicit partition.
func isExplicit(r *kgo.Record) bool {
	if r.Partition < 0 {
		return false // kprod's records without one say -1
	}
	pd := pendingOf(r)
	return pd != nil && pd.explicit != 0
}

func (e explicitTopic) RequiresConsistency(r *kgo.Record) bool {
	return isExplicit(r) || e.tp.RequiresConsistency(r)
}

func (e explicitTopic) Partition(r *kgo.Record, n int) int {
	if isExplicit(r) {
		return checkExplicit(r, n)
	}
	return e.tp.Partition(r, n)
}

// checkExplicit returns the record's explicit partition, noting on the
// pending record when the topic does not have it (franz-go then fails the
// record, and deliver reports ErrBadPartition).
func checkExplicit(r *kgo.Record, n int) int {
	if int(r.Partition) >= n {
		if pd := pendingOf(r); pd != nil {
			pd.explicit = int32(n)
		}
	}
	return int(r.Partition)
}

type explicitBackup struct {
	explicitTopic
	bp kgo.TopicBackupPartitioner
}

func (e explicitBackup) PartitionByBackup(r *kgo.Record, n int, it kgo.TopicBackupIter) int {
	if isExplicit(r) {
		return checkExplicit(r, n)
	}
	return e.bp.PartitionByBackup(r, n, it)
}

type explicitNewBatch struct {
	explicitTopic
	nb kgo.TopicPartitionerOnNewBatch
}

func (e explicitNewBatch) OnNewBatch() { e.nb.OnNewBatch() }

type explicitBackupNewBatch struct {
	explicitBackup
	nb kgo.TopicPartitionerOnNewBatch
}

func (e explicitBackupNewBatch) OnNewBatch() { e.nb.OnNewBatch() }
