// Package sr serializes record keys and values in the Confluent Schema
// Registry wire format (magic byte 0, the 4-byte big-endian schema ID,
// protobuf message indexes, then the encoded value) through franz-go's
// pkg/sr client. Import it under another name, since franz-go's package is
// also called sr:
//
//	import kprodsr "github.com/kprod/kprod/serde/sr"
//
// A Serializer pairs a Format (the schema, its dependencies and an
// encoder; serde/avro and serde/protobuf build them) with a subject name
// strategy. The first record for a topic registers the schema (or only
// looks it up, WithAutoRegister(false)) and caches the ID; every later
// record is encoded without a registry call or a lock. Warm resolves
// topics up front.
//
//	cl, _ := sr.NewClient(sr.URLs("http://registry:8081"))
//	orders, _ := avro.NewSerializer[Order](orderSchema, nil)
//	values, _ := kprodsr.NewSerializer(cl, false, orders.Format())
//	if err := values.Warm(ctx, "orders"); err != nil { ... }
//	typed, _ := kafkaproducer.NewTyped[string, Order](p, kafkaproducer.StringSerializer{}, values)
//
// Failures reach the caller of Typed's send methods as a
// *kafkaproducer.BadInputError naming the topic and side; a registry that
// cannot be reached keeps its retriable class, a registry that refuses
// the schema is bad input. Nothing is sent in either case.
//
// A Serializer is safe for concurrent use; concurrent first records for
// one subject make one registry call.
package sr
