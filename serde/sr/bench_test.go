package sr_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/serde/avro"
	"github.com/kprod/kprod/serde/protobuf"
	kprodsr "github.com/kprod/kprod/serde/sr"
	"google.golang.org/protobuf/types/known/structpb"
)

type benchSerializers struct {
	avro, avroSR          kafkaproducer.Serializer[order]
	proto, protoSR        kafkaproducer.Serializer[*structpb.Struct]
	order                 order
	msg                   *structpb.Struct
	avroBytes, protoBytes []byte
}

// warmSerializers builds each serializer path and warms the registry ones
// for topic "bench", so the benchmarks measure the steady state.
func warmSerializers(b *testing.B) benchSerializers {
	reg := newRegistry(b)
	var bs benchSerializers
	bs.order = order{ID: "order-000123", Amount: 129900, Items: []string{"sku-1", "sku-2", "sku-3"}}
	bs.msg, _ = structpb.NewStruct(map[string]any{"id": "order-000123", "amount": 129900, "items": []any{"sku-1", "sku-2", "sku-3"}})
	as, err := avro.NewSerializer[order](orderSchema, nil)
	if err != nil {
		b.Fatal(err)
	}
	asr, err := kprodsr.NewSerializer(reg.cl, false, as.Format())
	if err != nil {
		b.Fatal(err)
	}
	pf, err := protobuf.Format[*structpb.Struct]()
	if err != nil {
		b.Fatal(err)
	}
	psr, err := kprodsr.NewSerializer(reg.cl, false, pf)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := asr.Warm(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	if err := psr.Warm(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	bs.avro, bs.avroSR, bs.proto, bs.protoSR = as, asr, protobuf.NewSerializer[*structpb.Struct](), psr
	bs.avroBytes, _ = asr.Serialize("bench", bs.order, nil)
	bs.protoBytes, _ = psr.Serialize("bench", bs.msg, nil)
	return bs
}

// BenchmarkSerializePaths measures each serializer alone, warm.
func BenchmarkSerializePaths(b *testing.B) {
	bs := warmSerializers(b)
	testkit.BenchEncodings(b, []testkit.Encoding{
		{Name: "avro", Fn: func() ([]byte, error) { return bs.avro.Serialize("bench", bs.order, nil) }},
		{Name: "avro-sr", Fn: func() ([]byte, error) { return bs.avroSR.Serialize("bench", bs.order, nil) }},
		{Name: "protobuf", Fn: func() ([]byte, error) { return bs.proto.Serialize("bench", bs.msg, nil) }},
		{Name: "protobuf-sr", Fn: func() ([]byte, error) { return bs.protoSR.Serialize("bench", bs.msg, nil) }},
	}...)
}

// BenchmarkSendBytesVsTypedSR compares sending pre-encoded bytes with
// typed sends through the registry serializers (warm), same payloads, one
// producer, an in-process kfake broker.
func BenchmarkSendBytesVsTypedSR(b *testing.B) {
	bs := warmSerializers(b)
	p := testkit.Producer(b, testkit.Cluster(b, []string{"bench"}), presets.HighThroughput())
	avroT, _ := kafkaproducer.NewTyped[string, order](p, kafkaproducer.StringSerializer{}, bs.avroSR)
	protoT, _ := kafkaproducer.NewTyped[string, *structpb.Struct](p, kafkaproducer.StringSerializer{}, bs.protoSR)
	ctx := context.Background()
	key := []byte("customer-42")

	run := func(b *testing.B, send func(done func()) error) {
		b.ReportAllocs()
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Add(1)
			if err := send(wg.Done); err != nil {
				b.Fatal(err)
			}
		}
		wg.Wait()
	}
	bytesSend := func(v []byte) func(done func()) error {
		return func(done func()) error {
			return p.SendAsync(ctx, kafkaproducer.Record{Topic: "bench", Key: key, Value: v}, func(kafkaproducer.Result) { done() })
		}
	}
	b.Run("bytes-avro", func(b *testing.B) { run(b, bytesSend(bs.avroBytes)) })
	b.Run("typed-avro-sr", func(b *testing.B) {
		run(b, func(done func()) error {
			return avroT.SendAsync(ctx, kafkaproducer.TypedRecord[string, order]{Topic: "bench", Key: "customer-42", Value: bs.order},
				func(kafkaproducer.TypedResult[string, order]) { done() })
		})
	})
	b.Run("bytes-protobuf", func(b *testing.B) { run(b, bytesSend(bs.protoBytes)) })
	b.Run("typed-protobuf-sr", func(b *testing.B) {
		run(b, func(done func()) error {
			return protoT.SendAsync(ctx, kafkaproducer.TypedRecord[string, *structpb.Struct]{Topic: "bench", Key: "customer-42", Value: bs.msg},
				func(kafkaproducer.TypedResult[string, *structpb.Struct]) { done() })
		})
	})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := p.Flush(fctx); err != nil {
		b.Fatal(err)
	}
}
