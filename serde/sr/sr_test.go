package sr_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	hamba "github.com/hamba/avro/v2"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/serde/avro"
	"github.com/kprod/kprod/serde/protobuf"
	kprodsr "github.com/kprod/kprod/serde/sr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	franzsr "github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
)

type order struct {
	ID     string   `avro:"id"`
	Amount int64    `avro:"amount"`
	Items  []string `avro:"items"`
}

const orderSchema = `{"type":"record","name":"Order","namespace":"com.example","fields":[
 {"name":"id","type":"string"},{"name":"amount","type":"long"},
 {"name":"items","type":{"type":"array","items":"string"}}]}`

// registry is an srfake registry that counts the requests it serves.
type registry struct {
	*srfake.Registry
	cl       *franzsr.Client
	requests atomic.Int64
	posts    atomic.Int64
}

func newRegistry(t testing.TB) *registry {
	t.Helper()
	r := &registry{Registry: srfake.New()}
	r.Intercept(func(_ http.ResponseWriter, req *http.Request) bool {
		r.requests.Add(1)
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/versions") {
			r.posts.Add(1)
		}
		return false
	})
	tr := &http.Transport{}
	cl, err := franzsr.NewClient(franzsr.URLs(r.URL()), franzsr.HTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	r.cl = cl
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		r.Close()
	})
	return r
}

func newProducer(t testing.TB, c *kfake.Cluster, hooks ...kafkaproducer.Hook) *kafkaproducer.Producer {
	t.Helper()
	cfg := presets.Reliable()
	cfg.Hooks = hooks
	return testkit.Producer(t, c, cfg)
}

// avroDecoder is the independent reader: franz-go's sr.Serde, given the
// schema fetched from the registry by the ID found in each record.
func avroDecoder(t *testing.T, reg *registry, recs []*kgo.Record) *franzsr.Serde {
	t.Helper()
	serde := franzsr.NewSerde()
	for _, r := range recs {
		id, _, err := serde.DecodeID(r.Value)
		if err != nil {
			t.Fatalf("record %d: %v", r.Offset, err)
		}
		if serde.IsRegistered(id, franzsr.DecodeFn) {
			continue
		}
		text, err := reg.cl.SchemaByID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		schema, err := hamba.ParseWithCache(text.Schema, "", &hamba.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		serde.Register(id, order{}, franzsr.DecodeFn(func(b []byte, v any) error { return hamba.Unmarshal(schema, b, v) }))
	}
	return serde
}

// TestAvroThroughRegistry sends Avro orders in every style through a
// registry-backed serializer, reads them from Kafka and decodes them with
// sr.Serde; once the subject is warm, no record calls the registry.
func TestAvroThroughRegistry(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	reg := newRegistry(t)
	p := newProducer(t, c)
	as, err := avro.NewSerializer[order](orderSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := kprodsr.NewSerializer(reg.cl, false, as.Format())
	if err != nil {
		t.Fatal(err)
	}
	tp, err := kafkaproducer.NewTyped[string, order](p, kafkaproducer.StringSerializer{}, vs)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Ctx(t, 30*time.Second)
	rec := func(i int) kafkaproducer.TypedRecord[string, order] {
		return kafkaproducer.TypedRecord[string, order]{
			Topic:   "orders",
			Key:     fmt.Sprintf("c-%d", i),
			Value:   order{ID: fmt.Sprintf("o-%d", i), Amount: int64(i), Items: []string{"x", fmt.Sprint(i)}},
			Headers: []kafkaproducer.Header{{Key: "trace", Value: fmt.Appendf(nil, "t-%d", i)}},
		}
	}
	if _, err := tp.Send(ctx, rec(0)); err != nil {
		t.Fatal(err)
	}
	warm := reg.requests.Load()
	if warm == 0 || !reg.SubjectExists("orders-value") {
		t.Fatalf("first send made %d registry calls; subject registered: %v", warm, reg.SubjectExists("orders-value"))
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := 1; i < 30; i++ {
		wg.Add(1)
		if err := tp.SendAsync(ctx, rec(i), func(r kafkaproducer.TypedResult[string, order]) {
			defer wg.Done()
			if r.Err != nil {
				failed.Add(1)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	batch := make([]kafkaproducer.TypedRecord[string, order], 20)
	for i := range batch {
		batch[i] = rec(30 + i)
	}
	if err := tp.SendBatch(ctx, batch).FirstErr(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d async sends failed", failed.Load())
	}
	if n := reg.requests.Load() - warm; n != 0 {
		t.Fatalf("%d registry calls after warm-up; want none", n)
	}

	got := testkit.Consume(t, c.ListenAddrs(), "orders", 50, false, 20*time.Second)
	serde := avroDecoder(t, reg, got)
	id, ok := vs.ID("orders")
	if !ok {
		t.Fatal("no cached ID for orders")
	}
	for _, r := range got {
		if r.Value[0] != 0 {
			t.Fatalf("magic byte %d", r.Value[0])
		}
		gotID, _, _ := serde.DecodeID(r.Value)
		var o order
		if err := serde.Decode(r.Value, &o); err != nil {
			t.Fatalf("decode %x: %v", r.Value, err)
		}
		var i int
		fmt.Sscanf(o.ID, "o-%d", &i)
		want := rec(i)
		if gotID != id || o.Amount != want.Value.Amount || strings.Join(o.Items, ",") != strings.Join(want.Value.Items, ",") ||
			string(r.Key) != want.Key || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprintf("t-%d", i) {
			t.Fatalf("record %d read back as id %d %+v key %q headers %v", i, gotID, o, r.Key, r.Headers)
		}
	}
}

// orderFiles builds two .proto files at run time (there is no protoc
// here): kprod/test/money.proto and kprod/test/order.proto, which imports
// it and has a nested message Order.Line.
func orderFiles(t testing.TB) (lineMD protoreflect.MessageDescriptor) {
	t.Helper()
	s := proto.String
	money := &descriptorpb.FileDescriptorProto{
		Name: s("kprod/test/money.proto"), Package: s("kprod.test"), Syntax: s("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: s("Money"), Field: []*descriptorpb.FieldDescriptorProto{
			{Name: s("units"), JsonName: s("units"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
		}}},
	}
	ord := &descriptorpb.FileDescriptorProto{
		Name: s("kprod/test/order.proto"), Package: s("kprod.test"), Syntax: s("proto3"),
		Dependency: []string{"kprod/test/money.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: s("Order"),
			Field: []*descriptorpb.FieldDescriptorProto{
				{Name: s("id"), JsonName: s("id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
				{Name: s("total"), JsonName: s("total"), Number: proto.Int32(2), Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), TypeName: s(".kprod.test.Money"), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
			},
			NestedType: []*descriptorpb.DescriptorProto{{Name: s("Line"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: s("sku"), JsonName: s("sku"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
			}}},
		}},
	}
	files, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{money, ord}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := files.FindDescriptorByName("kprod.test.Order")
	if err != nil {
		t.Fatal(err)
	}
	return d.(protoreflect.MessageDescriptor).Messages().Get(0)
}

// TestProtobufThroughRegistry sends protobuf messages (a well-known type
// that is not the first in its file, and a run-time message nested in a
// file with an import) in the wire format with message indexes, and
// decodes them with sr.Serde.
func TestProtobufThroughRegistry(t *testing.T) {
	c := testkit.Cluster(t, []string{"values", "lines"})
	reg := newRegistry(t)
	p := newProducer(t, c)
	ctx := testkit.Ctx(t, 30*time.Second)

	// structpb.Value is message 1 of google/protobuf/struct.proto.
	vf, err := protobuf.Format[*structpb.Value]()
	if err != nil {
		t.Fatal(err)
	}
	vser, err := kprodsr.NewSerializer(reg.cl, false, vf)
	if err != nil {
		t.Fatal(err)
	}
	values, _ := kafkaproducer.NewTyped[string, *structpb.Value](p, kafkaproducer.StringSerializer{}, vser)
	hdr := []kafkaproducer.Header{{Key: "h", Value: []byte("v")}}
	for i := range 5 {
		v := structpb.NewStringValue(fmt.Sprintf("value-%d", i))
		if _, err := values.Send(ctx, kafkaproducer.TypedRecord[string, *structpb.Value]{Topic: "values", Key: fmt.Sprint(i), Value: v, Headers: hdr}); err != nil {
			t.Fatal(err)
		}
	}

	lineMD := orderFiles(t)
	lf, err := protobuf.FormatFor[*dynamicpb.Message](lineMD)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(lf.Index) != "[0 0]" || lf.RecordName != "kprod.test.Order.Line" || len(lf.Dependencies) != 1 {
		t.Fatalf("format of Order.Line: index %v name %q deps %d", lf.Index, lf.RecordName, len(lf.Dependencies))
	}
	lser, err := kprodsr.NewSerializer(reg.cl, false, lf, kprodsr.WithStrategy(kprodsr.TopicRecordName))
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := kafkaproducer.NewTyped[string, *dynamicpb.Message](p, kafkaproducer.StringSerializer{}, lser)
	for i := range 5 {
		m := dynamicpb.NewMessage(lineMD)
		m.Set(lineMD.Fields().ByName("sku"), protoreflect.ValueOfString(fmt.Sprintf("sku-%d", i)))
		if _, err := lines.Send(ctx, kafkaproducer.TypedRecord[string, *dynamicpb.Message]{Topic: "lines", Key: fmt.Sprint(i), Value: m, Headers: hdr}); err != nil {
			t.Fatal(err)
		}
	}
	// The import went in as its own subject, referenced by the order file.
	if !reg.SubjectExists("kprod/test/money.proto") || !reg.SubjectExists("lines-kprod.test.Order.Line") {
		t.Fatal("dependency or topic-record subject missing")
	}
	ss, ok := reg.GetSchema("lines-kprod.test.Order.Line", 1)
	if !ok || len(ss.References) != 1 || ss.References[0].Name != "kprod/test/money.proto" {
		t.Fatalf("registered schema references %+v", ss.References)
	}
	// The registered schema is the file descriptor, readable back.
	raw, err := base64.StdEncoding.DecodeString(ss.Schema.Schema)
	var fdp descriptorpb.FileDescriptorProto
	if err != nil || proto.Unmarshal(raw, &fdp) != nil || fdp.GetName() != "kprod/test/order.proto" {
		t.Fatalf("registered schema is not order.proto's descriptor: %v", err)
	}

	// Independent reader: sr.Serde with each ID and message index.
	serde := franzsr.NewSerde()
	vid, _ := vser.ID("values")
	lid, _ := lser.ID("lines")
	serde.Register(vid, &structpb.Value{}, franzsr.Index(1), franzsr.DecodeFn(func(b []byte, v any) error { return proto.Unmarshal(b, v.(*structpb.Value)) }))
	serde.Register(lid, &dynamicpb.Message{}, franzsr.Index(0, 0),
		franzsr.GenerateFn(func() any { return dynamicpb.NewMessage(lineMD) }),
		franzsr.DecodeFn(func(b []byte, v any) error { return proto.Unmarshal(b, v.(*dynamicpb.Message)) }))

	// The Confluent wire format: magic 0, big-endian ID, then the message
	// index as zigzag varints (count 1, index 1; count 2, indexes 0 0).
	wantHeader := func(id int, index ...byte) []byte {
		return append([]byte{0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}, index...)
	}
	for _, r := range testkit.Consume(t, c.ListenAddrs(), "values", 5, false, 10*time.Second) {
		if h := wantHeader(vid, 2, 2); !bytes.HasPrefix(r.Value, h) {
			t.Fatalf("values header %x, want prefix %x", r.Value, h)
		}
		var v structpb.Value
		if err := serde.Decode(r.Value, &v); err != nil || v.GetStringValue() != "value-"+string(r.Key) || string(r.Headers[0].Value) != "v" {
			t.Fatalf("values record %q: %q %v (%x)", r.Key, v.GetStringValue(), err, r.Value)
		}
	}
	for _, r := range testkit.Consume(t, c.ListenAddrs(), "lines", 5, false, 10*time.Second) {
		if h := wantHeader(lid, 4, 0, 0); !bytes.HasPrefix(r.Value, h) {
			t.Fatalf("lines header %x, want prefix %x", r.Value, h)
		}
		got, err := serde.DecodeNew(r.Value)
		if err != nil {
			t.Fatalf("lines record %q: %v (%x)", r.Key, err, r.Value)
		}
		m := got.(*dynamicpb.Message)
		if sku := m.Get(lineMD.Fields().ByName("sku")).String(); sku != "sku-"+string(r.Key) || string(r.Headers[0].Value) != "v" {
			t.Fatalf("lines record %q read back as sku %q", r.Key, sku)
		}
	}
}

func TestSubjectStrategies(t *testing.T) {
	reg := newRegistry(t)
	as, err := avro.NewSerializer[order](orderSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		key      bool
		strategy kprodsr.Strategy
		want     string
	}{
		{"topic value", false, kprodsr.TopicName, "payments-value"},
		{"topic key", true, kprodsr.TopicName, "payments-key"},
		{"record", false, kprodsr.RecordName, "com.example.Order"},
		{"topic record", true, kprodsr.TopicRecordName, "payments-com.example.Order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kprodsr.NewSerializer(reg.cl, tt.key, as.Format(), kprodsr.WithStrategy(tt.strategy))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Subject("payments"); got != tt.want {
				t.Fatalf("subject %q, want %q", got, tt.want)
			}
			if err := s.Warm(testkit.Ctx(t, 30*time.Second), "payments"); err != nil || !reg.SubjectExists(tt.want) {
				t.Fatalf("warm: %v; subject %q exists: %v", err, tt.want, reg.SubjectExists(tt.want))
			}
		})
	}
}

// TestRegistryFailures: a record whose schema cannot be resolved never
// reaches Kafka; the error names the side and is bad input when the
// registry refuses, retriable when it cannot be reached.
func TestRegistryFailures(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	var hooked atomic.Int64
	// Refused records reach the producer's hooks (so metrics count them)
	// as failures, never Kafka.
	p := newProducer(t, c, hookFunc(func(r kafkaproducer.Result) {
		if r.Err != nil && r.Offset == -1 {
			hooked.Add(1)
		}
	}))
	as, _ := avro.NewSerializer[order](orderSchema, nil)
	down := newRegistry(t)
	down.Close() // nothing listens there any more

	up := newRegistry(t)
	tests := []struct {
		name      string
		cl        *franzsr.Client
		opts      []kprodsr.Option
		key       bool
		value     any
		wantClass kafkaproducer.Class
		wantSide  string
	}{
		{"unregistered, lookup only", up.cl, []kprodsr.Option{kprodsr.WithAutoRegister(false)}, false, nil, kafkaproducer.ClassBadInput, kafkaproducer.SideValue},
		{"registry unreachable", down.cl, []kprodsr.Option{kprodsr.WithTimeout(2 * time.Second)}, false, nil, kafkaproducer.ClassRetriable, kafkaproducer.SideValue},
		{"key side unreachable", down.cl, []kprodsr.Option{kprodsr.WithTimeout(2 * time.Second)}, true, nil, kafkaproducer.ClassRetriable, kafkaproducer.SideKey},
		{"registry overloaded (503)", failingRegistry(t, http.StatusServiceUnavailable).cl, nil, false, nil, kafkaproducer.ClassRetriable, kafkaproducer.SideValue},
		{"registry refuses credentials (401)", failingRegistry(t, http.StatusUnauthorized).cl, nil, false, nil, kafkaproducer.ClassAuthorization, kafkaproducer.SideValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kprodsr.NewSerializer(tt.cl, tt.key, as.Format(), tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			var tp interface {
				Send(context.Context, kafkaproducer.TypedRecord[order, order]) (kafkaproducer.Result, error)
			}
			if tt.key {
				tp, _ = kafkaproducer.NewTyped[order, order](p, s, passthroughAvro(t))
			} else {
				tp, _ = kafkaproducer.NewTyped[order, order](p, passthroughAvro(t), s)
			}
			_, err = tp.Send(testkit.Ctx(t, 30*time.Second), kafkaproducer.TypedRecord[order, order]{Topic: "orders", Value: order{ID: "x"}})
			bad, ok := errors.AsType[*kafkaproducer.BadInputError](err)
			if !ok || bad.Side != tt.wantSide || bad.Topic != "orders" || kafkaproducer.Classify(err) != tt.wantClass {
				t.Fatalf("got %v (class %s), want BadInputError on %s, class %s", err, kafkaproducer.Classify(err), tt.wantSide, tt.wantClass)
			}
		})
	}
	if n := hooked.Load(); n != int64(len(tests)) {
		t.Fatalf("hooks saw %d refused records, want %d", n, len(tests))
	}
	if got := testkit.ConsumeUpTo(t, c.ListenAddrs(), "orders", 1, false, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("%d records reached Kafka", len(got))
	}
}

// failingRegistry answers every request with status.
func failingRegistry(t *testing.T, status int) *registry {
	r := newRegistry(t)
	r.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"error_code":%d,"message":"injected %d"}`, status, status)
		return true
	})
	return r
}

type hookFunc func(kafkaproducer.Result)

func (f hookFunc) OnRecordDone(r kafkaproducer.Result) { f(r) }

func passthroughAvro(t *testing.T) kafkaproducer.Serializer[order] {
	s, err := avro.NewSerializer[order](orderSchema, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestColdStartRegistersOnce: many goroutines sending to a new topic at
// once cause one registration, not one per record.
func TestColdStartRegistersOnce(t *testing.T) {
	reg := newRegistry(t)
	as, _ := avro.NewSerializer[order](orderSchema, nil)
	s, err := kprodsr.NewSerializer(reg.cl, false, as.Format())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Go(func() {
			if _, err := s.Serialize("cold", order{ID: fmt.Sprint(i)}, nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := reg.posts.Load(); n != 1 {
		t.Fatalf("%d registrations for one subject, want 1", n)
	}
}

func TestNewSerializerValidates(t *testing.T) {
	reg := newRegistry(t)
	as, _ := avro.NewSerializer[order](orderSchema, nil)
	good := as.Format()
	noName := good
	noName.RecordName = ""
	noEnc := good
	noEnc.AppendEncode = nil
	tests := []struct {
		name  string
		cl    *franzsr.Client
		f     kprodsr.Format[order]
		opts  []kprodsr.Option
		field string
	}{
		{"nil client", nil, good, nil, "client"},
		{"no encoder", reg.cl, noEnc, nil, "AppendEncode"},
		{"record strategy without name", reg.cl, noName, []kprodsr.Option{kprodsr.WithStrategy(kprodsr.RecordName)}, "WithStrategy"},
		{"empty schema", reg.cl, kprodsr.Format[order]{AppendEncode: good.AppendEncode}, nil, "Schema"},
	}
	for _, tt := range tests {
		_, err := kprodsr.NewSerializer(tt.cl, false, tt.f, tt.opts...)
		if ce, ok := errors.AsType[*kafkaproducer.ConfigError](err); !ok || !strings.Contains(ce.Field, tt.field) {
			t.Errorf("%s: want ConfigError on %s, got %v", tt.name, tt.field, err)
		}
	}
}
