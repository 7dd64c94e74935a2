// Package protobuf serializes protobuf messages (google.golang.org/protobuf)
// for kafkaproducer.Typed, either plain (Serializer) or in the Schema
// Registry wire format (Format and FormatFor with serde/sr, which write
// the message index and register imported files as references).
//
//	typed, err := kafkaproducer.NewTyped[string, *pb.Order](p,
//		kafkaproducer.StringSerializer{}, protobuf.NewSerializer[*pb.Order]())
//
// Each message is sized once and marshaled into a buffer of exactly that
// size. A Serializer is safe for concurrent use, provided no one modifies
// a message while it is being sent.
package protobuf
