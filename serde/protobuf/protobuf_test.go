package protobuf_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/serde/protobuf"
	franzsr "github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/apipb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestRoundTrip(t *testing.T) {
	st, _ := structpb.NewStruct(map[string]any{"id": "o-1", "amount": 12.5, "items": []any{"a", "b"}})
	ts := timestamppb.New(timestamppb.Now().AsTime())
	tests := []struct {
		name string
		msg  proto.Message
		ser  func(m proto.Message, dst []byte) ([]byte, error)
		back proto.Message
	}{
		{"struct", st, func(m proto.Message, dst []byte) ([]byte, error) {
			return protobuf.NewSerializer[*structpb.Struct]().Serialize("t", m.(*structpb.Struct), dst)
		}, &structpb.Struct{}},
		{"timestamp", ts, func(m proto.Message, dst []byte) ([]byte, error) {
			return protobuf.NewSerializer[*timestamppb.Timestamp]().Serialize("t", m.(*timestamppb.Timestamp), dst)
		}, &timestamppb.Timestamp{}},
		{"interface type, deterministic", wrapperspb.String("hi"), func(m proto.Message, dst []byte) ([]byte, error) {
			s := &protobuf.Serializer[proto.Message]{Options: proto.MarshalOptions{Deterministic: true}}
			return s.Serialize("t", m, dst)
		}, &wrapperspb.StringValue{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ser(tt.msg, nil)
			if err != nil || len(got) != proto.Size(tt.msg) || cap(got) != len(got) {
				t.Fatalf("len %d cap %d err %v, want exact size %d", len(got), cap(got), err, proto.Size(tt.msg))
			}
			if err := proto.Unmarshal(got, tt.back); err != nil || !proto.Equal(tt.back, tt.msg) {
				t.Fatalf("read back %v (%v), want %v", tt.back, err, tt.msg)
			}
			pre, err := tt.ser(tt.msg, []byte{9, 9})
			if err != nil || !bytes.Equal(pre[:2], []byte{9, 9}) || len(pre) != 2+len(got) {
				t.Fatalf("append: %x %v", pre, err)
			}
		})
	}
}

func TestMessageIndex(t *testing.T) {
	tests := []struct {
		md   protoreflect.MessageDescriptor
		want string
	}{
		{(&structpb.Struct{}).ProtoReflect().Descriptor(), "[0]"},
		{(&structpb.Value{}).ProtoReflect().Descriptor(), "[1]"},
		{(&structpb.ListValue{}).ProtoReflect().Descriptor(), "[2]"},
		// descriptor.proto: FileDescriptorSet, FileDescriptorProto,
		// DescriptorProto{ExtensionRange, ReservedRange}.
		{(&descriptorpb.DescriptorProto_ExtensionRange{}).ProtoReflect().Descriptor(), "[2 0]"},
		{(&descriptorpb.DescriptorProto_ReservedRange{}).ProtoReflect().Descriptor(), "[2 1]"},
	}
	for _, tt := range tests {
		if got := fmt.Sprint(protobuf.MessageIndex(tt.md)); got != tt.want {
			t.Errorf("%s: index %s, want %s", tt.md.FullName(), got, tt.want)
		}
	}
}

func TestFormat(t *testing.T) {
	f, err := protobuf.Format[*structpb.Value]()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(f.Schema.Schema)
	var fdp descriptorpb.FileDescriptorProto
	if err != nil || proto.Unmarshal(raw, &fdp) != nil || fdp.GetName() != "google/protobuf/struct.proto" {
		t.Fatalf("schema is not struct.proto's descriptor: %v", err)
	}
	if f.Schema.Type != franzsr.TypeProtobuf || f.RecordName != "google.protobuf.Value" || fmt.Sprint(f.Index) != "[1]" {
		t.Fatalf("format %+v", f)
	}
	v := structpb.NewNumberValue(3)
	b, err := f.AppendEncode(make([]byte, 0, f.Size(v)), v)
	if err != nil || len(b) != proto.Size(v) {
		t.Fatalf("encode: %x %v", b, err)
	}

	// api.proto imports well-known files, left out unless asked for;
	// type.proto in turn imports any.proto and source_context.proto.
	api, _ := protobuf.Format[*apipb.Api]()
	if len(api.Dependencies) != 0 {
		t.Fatalf("well-known imports registered by default: %d", len(api.Dependencies))
	}
	api, _ = protobuf.Format[*apipb.Api](protobuf.RegisterWellKnown())
	names := map[string]int{}
	for _, d := range api.Dependencies {
		names[d.Name] = len(d.Dependencies)
	}
	if len(names) != 2 || names["google/protobuf/type.proto"] != 2 {
		t.Fatalf("api.proto dependencies %v", names)
	}

	// A dynamic message has no descriptor on its zero value.
	_, err = protobuf.Format[*dynamicpb.Message]()
	if _, ok := errors.AsType[*kafkaproducer.ConfigError](err); !ok {
		t.Fatalf("Format of dynamicpb: %v", err)
	}
}

func BenchmarkSerialize(b *testing.B) {
	st, _ := structpb.NewStruct(map[string]any{"id": "order-000123", "amount": 129900, "items": []any{"sku-1", "sku-2", "sku-3"}})
	s := protobuf.NewSerializer[*structpb.Struct]()
	testkit.BenchEncodings(b, []testkit.Encoding{
		{Name: "kprod", Fn: func() ([]byte, error) { return s.Serialize("t", st, nil) }},
		{Name: "proto.Marshal", Fn: func() ([]byte, error) { return proto.Marshal(st) }},
	}...)
}
