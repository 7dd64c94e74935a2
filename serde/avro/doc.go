// Package avro serializes Go values as Avro binary with hamba/avro, for
// kafkaproducer.Typed, either plain (Serializer) or in the Schema Registry
// wire format (Serializer.Format with serde/sr).
//
//	s, err := avro.NewSerializer[Order](orderSchemaJSON, nil)
//	typed, err := kafkaproducer.NewTyped[string, Order](p, kafkaproducer.StringSerializer{}, s)
//
// Values are encoded into pooled hamba writers and copied once into the
// record's own exact-size buffer. A Serializer is safe for concurrent use.
package avro
