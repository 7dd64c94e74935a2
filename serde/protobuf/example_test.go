package protobuf_test

import (
	"fmt"

	"github.com/kprod/kprod/serde/protobuf"
	"google.golang.org/protobuf/types/known/structpb"
)

func ExampleFormat() {
	// structpb.Value is the second message of google/protobuf/struct.proto.
	f, err := protobuf.Format[*structpb.Value]()
	if err != nil {
		panic(err)
	}
	fmt.Println(f.RecordName, f.Index, f.Schema.Type)
	// Output: google.protobuf.Value [1] PROTOBUF
}

// A Serializer is the value side (or key side) of kafkaproducer.NewTyped;
// here it encodes one message directly.
func ExampleNewSerializer() {
	s := protobuf.NewSerializer[*structpb.Value]()
	b, err := s.Serialize("orders", structpb.NewStringValue("o-1"), nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", b)
	// Output: 1a 03 6f 2d 31
}
