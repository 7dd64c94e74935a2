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
