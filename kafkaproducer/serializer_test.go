package kafkaproducer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
)

// TestSerializers checks each built-in serializer with and without a
// buffer to append to.
func TestSerializers(t *testing.T) {
	order := typedOrder{ID: "o-1", Amount: 5}
	orderJSON, _ := json.Marshal(order)
	upper := kafkaproducer.JSONSerializer[typedOrder]{Marshal: func(v any) ([]byte, error) {
		b, err := json.Marshal(v)
		return bytes.ToUpper(b), err
	}}
	tests := []struct {
		name      string
		serialize func(dst []byte) ([]byte, error)
		want      []byte
	}{
		{"bytes", func(dst []byte) ([]byte, error) {
			return kafkaproducer.BytesSerializer{}.Serialize("t", []byte("raw"), dst)
		}, []byte("raw")},
		{"bytes nil", func(dst []byte) ([]byte, error) { return kafkaproducer.BytesSerializer{}.Serialize("t", nil, dst) }, nil},
		{"string", func(dst []byte) ([]byte, error) {
			return kafkaproducer.StringSerializer{}.Serialize("t", "héllo", dst)
		}, []byte("héllo")},
		{"string empty", func(dst []byte) ([]byte, error) { return kafkaproducer.StringSerializer{}.Serialize("t", "", dst) }, []byte{}},
		{"json", func(dst []byte) ([]byte, error) { return kafkaproducer.JSON[typedOrder]().Serialize("t", order, dst) }, orderJSON},
		{"json custom marshal", func(dst []byte) ([]byte, error) { return upper.Serialize("t", order, dst) }, bytes.ToUpper(orderJSON)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.serialize(nil)
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("nil dst: %q %v, want %q", got, err, tt.want)
			}
			if tt.name == "string empty" && got == nil {
				t.Fatal("empty string must encode as an empty key, not a missing one")
			}
			prefix := []byte("prefix:")
			got, err = tt.serialize(append(make([]byte, 0, 64), prefix...))
			if err != nil || !bytes.Equal(got, append(prefix, tt.want...)) {
				t.Fatalf("appending: %q %v", got, err)
			}
		})
	}
}

func TestBytesSerializerDoesNotCopy(t *testing.T) {
	in := []byte("payload")
	out, _ := kafkaproducer.BytesSerializer{}.Serialize("t", in, nil)
	if &out[0] != &in[0] {
		t.Fatal("BytesSerializer copied its input")
	}
}

// BenchmarkSerializers measures each core serializer alone.
func BenchmarkSerializers(b *testing.B) {
	order := typedOrder{ID: "order-000123", Amount: 129900, Items: []string{"sku-1", "sku-2", "sku-3"}}
	payload, _ := json.Marshal(order)
	s := string(payload)
	testkit.BenchEncodings(b, []testkit.Encoding{
		{Name: "bytes", Fn: func() ([]byte, error) { return kafkaproducer.BytesSerializer{}.Serialize("t", payload, nil) }},
		{Name: "string", Fn: func() ([]byte, error) { return kafkaproducer.StringSerializer{}.Serialize("t", s, nil) }},
		{Name: "json", Fn: func() ([]byte, error) { return kafkaproducer.JSON[typedOrder]().Serialize("t", order, nil) }},
		{Name: "json-ptr", Fn: func() ([]byte, error) { return kafkaproducer.JSON[*typedOrder]().Serialize("t", &order, nil) }},
	}...)
}

// BenchmarkSendBytesVsTyped compares a bytes SendAsync (and SendAsyncErr,
// which builds no Result) with typed SendAsyncs of the same record
// (string key, JSON value) through one producer to an in-process kfake
// broker. The difference per op is what typing costs: the encoding and
// handing the typed record to the callback.
func BenchmarkSendBytesVsTyped(b *testing.B) {
	p := testkit.Producer(b, testkit.Cluster(b, []string{"bench"}), presets.HighThroughput())
	order := typedOrder{ID: "order-000123", Amount: 129900, Items: []string{"sku-1", "sku-2", "sku-3"}}
	payload, _ := json.Marshal(order)
	hdrs := []kafkaproducer.Header{{Key: "source", Value: []byte("bench")}}
	jsonTyped, _ := kafkaproducer.NewTyped[string, typedOrder](p, kafkaproducer.StringSerializer{}, kafkaproducer.JSON[typedOrder]())
	bytesTyped, _ := kafkaproducer.NewTyped[[]byte, []byte](p, kafkaproducer.BytesSerializer{}, kafkaproducer.BytesSerializer{})
	ctx := context.Background()

	run := func(b *testing.B, send func(i int, cb func()) error) {
		b.ReportAllocs()
		var wg sync.WaitGroup
		i := 0
		for b.Loop() {
			wg.Add(1)
			if err := send(i, wg.Done); err != nil {
				b.Fatal(err)
			}
			i++
		}
		wg.Wait()
	}
	b.Run("bytes", func(b *testing.B) {
		run(b, func(i int, done func()) error {
			return p.SendAsync(ctx, kafkaproducer.Record{Topic: "bench", Key: []byte("customer-42"), Value: payload, Headers: hdrs},
				func(kafkaproducer.Result) { done() })
		})
	})
	b.Run("bytes-err", func(b *testing.B) { // SendAsyncErr: no Result
		run(b, func(i int, done func()) error {
			return p.SendAsyncErr(ctx, kafkaproducer.Record{Topic: "bench", Key: []byte("customer-42"), Value: payload, Headers: hdrs},
				func(error) { done() })
		})
	})
	b.Run("typed-bytes", func(b *testing.B) {
		run(b, func(i int, done func()) error {
			return bytesTyped.SendAsync(ctx, kafkaproducer.TypedRecord[[]byte, []byte]{Topic: "bench", Key: []byte("customer-42"), Value: payload, Headers: hdrs},
				func(kafkaproducer.TypedResult[[]byte, []byte]) { done() })
		})
	})
	b.Run("typed-json", func(b *testing.B) {
		run(b, func(i int, done func()) error {
			return jsonTyped.SendAsync(ctx, kafkaproducer.TypedRecord[string, typedOrder]{Topic: "bench", Key: "customer-42", Value: order, Headers: hdrs},
				func(kafkaproducer.TypedResult[string, typedOrder]) { done() })
		})
	})
	flushCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Flush(flushCtx); err != nil {
		b.Fatal(fmt.Errorf("flush: %w", err))
	}
}
