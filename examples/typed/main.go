// Command typed sends an Order struct through kprod's typed producers,
// once as JSON and once as Avro in the Schema Registry wire format, then
// reads both topics back with an independent consumer and decodes them
// (encoding/json; franz-go's sr.Serde with the schema fetched from the
// registry by ID). It also shows a tombstone and a record refused because
// it cannot be serialized.
//
// With no flags it runs against an in-process kfake broker and an
// in-process srfake registry. --brokers uses a real cluster, --registry a
// real Schema Registry. Either way it first makes sure its two topics
// exist with topics.Ensure (3 partitions, the broker's replication
// factor, created only where missing).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"time"

	hamba "github.com/hamba/avro/v2"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/serde/avro"
	kprodsr "github.com/kprod/kprod/serde/sr"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// Order is what the service sends. The json and avro tags name the same
// fields for both encodings.
type Order struct {
	ID       string  `json:"id" avro:"id"`
	Customer string  `json:"customer" avro:"customer"`
	Amount   float64 `json:"amount" avro:"amount"`
	Items    []Item  `json:"items" avro:"items"`
}

// Item is one line of an Order.
type Item struct {
	SKU      string `json:"sku" avro:"sku"`
	Quantity int32  `json:"quantity" avro:"quantity"`
}

const orderSchema = `{
  "type": "record", "name": "Order", "namespace": "com.example.shop",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "customer", "type": "string"},
    {"name": "amount", "type": "double"},
    {"name": "items", "type": {"type": "array", "items": {
      "type": "record", "name": "Item",
      "fields": [{"name": "sku", "type": "string"}, {"name": "quantity", "type": "int"}]}}}
  ]
}`

const (
	jsonTopic = "kprod-typed-orders-json"
	avroTopic = "kprod-typed-orders-avro"
	perTopic  = 5
)

func main() {
	brokers := flag.String("brokers", "", "comma-separated host:port list of a real cluster (default: in-process kfake).\n"+
		"Topics "+jsonTopic+" and "+avroTopic+" are created there if missing (3 partitions, the broker's replication factor)")
	registry := flag.String("registry", "", "Schema Registry URL (default: in-process srfake)")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := run(ctx, *brokers, *registry); err != nil {
		fmt.Fprintln(os.Stderr, "typed:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, brokers, registryURL string) error {
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("start kfake: %w", err)
		}
		defer c.Close()
		addrs = c.ListenAddrs()
		fmt.Println("cluster:  in-process kfake at", addrs[0])
	} else {
		fmt.Println("cluster: ", brokers)
	}
	if registryURL == "" {
		reg := srfake.New()
		defer reg.Close()
		registryURL = reg.URL()
		fmt.Println("registry: in-process srfake at", registryURL)
	} else {
		fmt.Println("registry:", registryURL)
	}
	transport := &http.Transport{}
	defer transport.CloseIdleConnections()
	srcl, err := sr.NewClient(sr.URLs(registryURL), sr.HTTPClient(&http.Client{Transport: transport, Timeout: 10 * time.Second}))
	if err != nil {
		return fmt.Errorf("registry client: %w", err)
	}

	cfg := presets.Reliable()
	cfg.Brokers = addrs
	p, err := kafkaproducer.New(cfg)
	if err != nil {
		return err
	}
	defer p.Close(context.Background())
	want := []topics.Topic{{Name: jsonTopic, Partitions: 3}, {Name: avroTopic, Partitions: 3}}
	rep, err := topics.Ensure(ctx, p.Client(), want)
	if err != nil {
		return err
	}
	fmt.Println("topics:  ", rep)

	// Two typed producers share the one Producer.
	asJSON, err := kafkaproducer.NewTyped[string, *Order](p, kafkaproducer.StringSerializer{}, kafkaproducer.JSON[*Order]())
	if err != nil {
		return err
	}
	avroOrders, err := avro.NewSerializer[*Order](orderSchema, nil)
	if err != nil {
		return err
	}
	values, err := kprodsr.NewSerializer(srcl, false, avroOrders.Format())
	if err != nil {
		return err
	}
	if err := values.Warm(ctx, avroTopic); err != nil { // register now, not on the first record
		return err
	}
	id, _ := values.ID(avroTopic)
	fmt.Printf("schema:   subject %q registered as id %d\n", values.Subject(avroTopic), id)
	asAvro, err := kafkaproducer.NewTyped[string, *Order](p, kafkaproducer.StringSerializer{}, values)
	if err != nil {
		return err
	}

	run := fmt.Sprintf("%08x", rand.Uint32())
	hdrs := []kafkaproducer.Header{{Key: "run", Value: []byte(run)}, {Key: "content-type", Value: []byte("application/json")}}
	avroHdrs := []kafkaproducer.Header{{Key: "run", Value: []byte(run)}, {Key: "content-type", Value: []byte("application/vnd.kafka.avro.v2")}}
	sent := map[string]Order{}
	batchJSON := make([]kafkaproducer.TypedRecord[string, *Order], 0, perTopic)
	batchAvro := make([]kafkaproducer.TypedRecord[string, *Order], 0, perTopic)
	for i := range perTopic - 1 {
		o := Order{ID: fmt.Sprintf("%s-%d", run, i), Customer: fmt.Sprintf("c-%d", i%2), Amount: 10.5 * float64(i+1),
			Items: []Item{{SKU: "sku-1", Quantity: int32(i + 1)}, {SKU: "sku-2", Quantity: 1}}}
		sent[o.ID] = o
		batchJSON = append(batchJSON, kafkaproducer.TypedRecord[string, *Order]{Topic: jsonTopic, Key: o.Customer, Value: &o, Headers: hdrs})
		batchAvro = append(batchAvro, kafkaproducer.TypedRecord[string, *Order]{Topic: avroTopic, Key: o.Customer, Value: &o, Headers: avroHdrs})
	}
	// A nil *Order is a tombstone: the record is sent with a null value.
	batchJSON = append(batchJSON, kafkaproducer.TypedRecord[string, *Order]{Topic: jsonTopic, Key: "c-0", Headers: hdrs})
	batchAvro = append(batchAvro, kafkaproducer.TypedRecord[string, *Order]{Topic: avroTopic, Key: "c-0", Headers: avroHdrs})
	for _, b := range []struct {
		name  string
		typed *kafkaproducer.Typed[string, *Order]
		recs  []kafkaproducer.TypedRecord[string, *Order]
	}{{"json", asJSON, batchJSON}, {"avro", asAvro, batchAvro}} {
		name, res := b.name, b.typed.SendBatch(ctx, b.recs)
		if err := res.FirstErr(); err != nil {
			return fmt.Errorf("send %s: %w", name, err)
		}
		fmt.Printf("sent:     %d %s records (last at partition %d offset %d, %d bytes)\n",
			len(res), name, res[len(res)-2].Partition, res[len(res)-2].Offset, len(res[len(res)-2].Record.Value))
	}

	// JSON cannot encode NaN: the record is refused before Kafka.
	_, err = asJSON.Send(ctx, kafkaproducer.TypedRecord[string, *Order]{Topic: jsonTopic, Key: "c-9", Value: &Order{ID: "bad", Amount: math.NaN()}})
	if bad, ok := errors.AsType[*kafkaproducer.BadInputError](err); ok {
		fmt.Printf("refused:  topic %q side %q class %s: %v\n", bad.Topic, bad.Side, kafkaproducer.Classify(err), bad.Err)
	} else {
		return fmt.Errorf("NaN order: want a BadInputError, got %v", err)
	}

	if err := readJSON(ctx, addrs, run, sent); err != nil {
		return err
	}
	if err := readAvro(ctx, addrs, run, srcl, sent); err != nil {
		return err
	}
	fmt.Println("ok:       every order read back and decoded by an independent reader, headers intact")
	return nil
}

// consume reads topic from the start until it has seen want records of
// this run (by the "run" header).
func consume(ctx context.Context, addrs []string, topic, run string, want int) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read %s: got %d of %d records: %w", topic, len(out), want, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "run" && string(h.Value) == run {
					out = append(out, r)
				}
			}
		})
	}
	return out, nil
}

func check(kind string, r *kgo.Record, o *Order, sent map[string]Order) error {
	if len(r.Headers) != 2 || r.Headers[1].Key != "content-type" {
		return fmt.Errorf("%s record %d lost headers: %v", kind, r.Offset, r.Headers)
	}
	if o == nil {
		return nil
	}
	want, ok := sent[o.ID]
	if !ok || want.Amount != o.Amount || len(o.Items) != len(want.Items) || string(r.Key) != want.Customer {
		return fmt.Errorf("%s record %d decoded as %+v, want %+v", kind, r.Offset, o, want)
	}
	return nil
}

func readJSON(ctx context.Context, addrs []string, run string, sent map[string]Order) error {
	recs, err := consume(ctx, addrs, jsonTopic, run, perTopic)
	if err != nil {
		return err
	}
	tombstones := 0
	for _, r := range recs {
		var o *Order
		if r.Value == nil {
			tombstones++
		} else if err := json.Unmarshal(r.Value, &o); err != nil {
			return fmt.Errorf("json record %d: %w", r.Offset, err)
		}
		if err := check("json", r, o, sent); err != nil {
			return err
		}
	}
	fmt.Printf("read:     %d json records, %d tombstone(s) with a null value, decoded with encoding/json\n", len(recs), tombstones)
	return nil
}

func readAvro(ctx context.Context, addrs []string, run string, srcl *sr.Client, sent map[string]Order) error {
	recs, err := consume(ctx, addrs, avroTopic, run, perTopic)
	if err != nil {
		return err
	}
	serde := sr.NewSerde()
	tombstones := 0
	for _, r := range recs {
		if r.Value == nil {
			tombstones++
			if err := check("avro", r, nil, sent); err != nil {
				return err
			}
			continue
		}
		id, _, err := serde.DecodeID(r.Value)
		if err != nil {
			return fmt.Errorf("avro record %d: %w", r.Offset, err)
		}
		if !serde.IsRegistered(id, sr.DecodeFn) {
			s, err := srcl.SchemaByID(ctx, id)
			if err != nil {
				return err
			}
			schema, err := hamba.ParseWithCache(s.Schema, "", &hamba.SchemaCache{})
			if err != nil {
				return err
			}
			serde.Register(id, Order{}, sr.DecodeFn(func(b []byte, v any) error { return hamba.Unmarshal(schema, b, v) }))
		}
		var o Order
		if err := serde.Decode(r.Value, &o); err != nil {
			return fmt.Errorf("avro record %d: %w", r.Offset, err)
		}
		if err := check("avro", r, &o, sent); err != nil {
			return err
		}
	}
	fmt.Printf("read:     %d avro records, %d tombstone(s), decoded with sr.Serde + the registry's schema\n", len(recs), tombstones)
	return nil
}
