package sr_test

import (
	"testing"

	hamba "github.com/hamba/avro/v2"
	"github.com/kprod/kprod/serde/avro"
	kprodsr "github.com/kprod/kprod/serde/sr"
	franzsr "github.com/twmb/franz-go/pkg/sr"
)

// FuzzAvroWireRoundTrip checks that whatever an order holds, what the
// registry serializer writes is decoded back to the same order by
// franz-go's sr.Serde, an independent reader of the wire format.
func FuzzAvroWireRoundTrip(f *testing.F) {
	f.Add("o-1", int64(0), "sku", "")
	f.Add("", int64(-1), "", "\x00\xff")
	f.Add("ünïcödé", int64(1<<62), "a\nb", "c")
	reg := newRegistry(f)
	as, err := avro.NewSerializer[order](orderSchema, nil)
	if err != nil {
		f.Fatal(err)
	}
	s, err := kprodsr.NewSerializer(reg.cl, false, as.Format())
	if err != nil {
		f.Fatal(err)
	}
	if err := s.Warm(f.Context(), "fuzz"); err != nil {
		f.Fatal(err)
	}
	id, _ := s.ID("fuzz")
	serde := franzsr.NewSerde()
	serde.Register(id, order{}, franzsr.DecodeFn(func(b []byte, v any) error { return hamba.Unmarshal(as.Schema(), b, v) }))
	f.Fuzz(func(t *testing.T, oid string, amount int64, item1, item2 string) {
		in := order{ID: oid, Amount: amount, Items: []string{item1, item2}}
		b, err := s.Serialize("fuzz", in, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out order
		if err := serde.Decode(b, &out); err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if out.ID != in.ID || out.Amount != in.Amount || len(out.Items) != 2 || out.Items[0] != item1 || out.Items[1] != item2 {
			t.Fatalf("round trip %+v -> %+v", in, out)
		}
	})
}
