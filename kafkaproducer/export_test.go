package kafkaproducer

// The hashes, for the external tests that check placement on a real
// topic.
var (
	Murmur2 = murmur2
	FNV1a   = fnv1a
)
