package avro_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	hamba "github.com/hamba/avro/v2"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/serde/avro"
	franzsr "github.com/twmb/franz-go/pkg/sr"
)

type order struct {
	ID     string   `avro:"id"`
	Amount int64    `avro:"amount"`
	Items  []string `avro:"items"`
}

const orderSchema = `{"type":"record","name":"Order","namespace":"com.example","fields":[
 {"name":"id","type":"string"},{"name":"amount","type":"long"},
 {"name":"items","type":{"type":"array","items":"string"}}]}`

func TestRoundTrip(t *testing.T) {
	o := order{ID: "o-1", Amount: 1234, Items: []string{"a", "b"}}
	structs, err := avro.NewSerializer[order](orderSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	ptrs, _ := avro.NewSerializer[*order](orderSchema, nil)
	maps, _ := avro.NewSerializer[map[string]any](orderSchema, nil)
	longs, _ := avro.NewSerializer[int64](`"long"`, nil)
	want, err := hamba.Marshal(structs.Schema(), o)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		serialize func(dst []byte) ([]byte, error)
		want      []byte
	}{
		{"struct", func(dst []byte) ([]byte, error) { return structs.Serialize("t", o, dst) }, want},
		{"pointer", func(dst []byte) ([]byte, error) { return ptrs.Serialize("t", &o, dst) }, want},
		{"map", func(dst []byte) ([]byte, error) {
			return maps.Serialize("t", map[string]any{"id": "o-1", "amount": int64(1234), "items": []any{"a", "b"}}, dst)
		}, want},
		{"long", func(dst []byte) ([]byte, error) { return longs.Serialize("t", -3, dst) }, []byte{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.serialize(nil)
			if err != nil || !bytes.Equal(got, tt.want) || cap(got) != len(got) {
				t.Fatalf("got %x (cap %d) %v, want %x", got, cap(got), err, tt.want)
			}
			got, err = tt.serialize([]byte("hdr"))
			if err != nil || !bytes.Equal(got, append([]byte("hdr"), tt.want...)) {
				t.Fatalf("append: %x %v", got, err)
			}
		})
	}
	var back order
	if err := hamba.Unmarshal(structs.Schema(), want, &back); err != nil || back.ID != o.ID || back.Amount != o.Amount || len(back.Items) != 2 {
		t.Fatalf("decoded %+v %v", back, err)
	}
}

func TestErrors(t *testing.T) {
	_, err := avro.NewSerializer[order](`{"type":"record"`, nil)
	if _, ok := errors.AsType[*kafkaproducer.ConfigError](err); !ok {
		t.Fatalf("bad schema: %v", err)
	}
	maps, _ := avro.NewSerializer[map[string]any](orderSchema, nil)
	tests := []struct {
		name string
		v    map[string]any
	}{
		{"missing field", map[string]any{"id": "x"}},
		{"wrong type", map[string]any{"id": 5, "amount": int64(1), "items": []any{}}},
	}
	for _, tt := range tests {
		if b, err := maps.Serialize("t", tt.v, nil); err == nil {
			t.Errorf("%s: encoded %x, want an error", tt.name, b)
		}
	}
	// The pooled writer is clean after a failure.
	ok := map[string]any{"id": "y", "amount": int64(2), "items": []any{}}
	b, err := maps.Serialize("t", ok, nil)
	want, _ := hamba.Marshal(maps.Schema(), ok)
	if err != nil || !bytes.Equal(b, want) {
		t.Fatalf("after failures: %x %v, want %x", b, err, want)
	}
}

func TestFormat(t *testing.T) {
	s, _ := avro.NewSerializer[order](orderSchema, nil)
	f := s.Format()
	if f.RecordName != "com.example.Order" || f.Schema.Type != franzsr.TypeAvro || f.Schema.Schema != orderSchema || f.Index != nil {
		t.Fatalf("format %+v", f)
	}
	b, err := f.AppendEncode([]byte{0, 0, 0, 0, 1}, order{ID: "a"})
	if err != nil || !bytes.HasPrefix(b, []byte{0, 0, 0, 0, 1}) {
		t.Fatalf("AppendEncode: %x %v", b, err)
	}
	prim, _ := avro.NewSerializer[string](`"string"`, nil)
	if name := prim.Format().RecordName; name != "" {
		t.Fatalf("primitive schema has record name %q", name)
	}
}

func ExampleNewSerializer() {
	type order struct {
		ID     string `avro:"id"`
		Amount int64  `avro:"amount"`
	}
	s, err := avro.NewSerializer[order](`{"type":"record","name":"Order","fields":[
		{"name":"id","type":"string"},{"name":"amount","type":"long"}]}`, nil)
	if err != nil {
		panic(err)
	}
	b, _ := s.Serialize("orders", order{ID: "o-1", Amount: 2}, nil)
	fmt.Printf("%x\n", b)
	// Output: 066f2d3104
}

func BenchmarkSerialize(b *testing.B) {
	o := order{ID: "order-000123", Amount: 129900, Items: []string{"sku-1", "sku-2", "sku-3"}}
	s, _ := avro.NewSerializer[order](orderSchema, nil)
	ptr, _ := avro.NewSerializer[*order](orderSchema, nil)
	testkit.BenchEncodings(b, []testkit.Encoding{
		{Name: "kprod", Fn: func() ([]byte, error) { return s.Serialize("t", o, nil) }},
		{Name: "kprod-ptr", Fn: func() ([]byte, error) { return ptr.Serialize("t", &o, nil) }},
		{Name: "hamba.Marshal", Fn: func() ([]byte, error) { return hamba.Marshal(s.Schema(), o) }},
	}...)
}
