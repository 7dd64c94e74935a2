package metrics_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
	"github.com/kprod/kprod/presets"
)

// TestTracing sends records under a parent span with tracing on, then
// checks one producer span per record, parented and ended, and that the
// records read back from kfake carry a traceparent naming that span.
func TestTracing(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders", "pay"})
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := m.Instrument(m.Instrument(presets.LowLatency())) // twice: still counted once
	cfg.Opts = append(cfg.Opts, metrics.Tracing(tp))
	p := testkit.Producer(t, c, cfg)

	ctx, parent := tp.Tracer("test").Start(testkit.Ctx(t, 30*time.Second), "handle request")
	const n = 5
	headers := make([]kafkaproducer.Header, 1, 4) // spare capacity kotel must not write into
	headers[0] = kafkaproducer.Header{Key: "seq", Value: []byte("x")}
	for i := range n {
		r := rec("orders", i)
		r.Headers = headers
		res, err := p.Send(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Record.Headers) != 2 || res.Record.Headers[1].Key != "traceparent" {
			t.Fatalf("result headers %v", res.Record.Headers)
		}
	}
	if got := headers[:cap(headers)][1]; got.Key != "" {
		t.Fatalf("the caller's header array was written to: %v", got)
	}
	// A failing record: its span ends with an error status.
	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "pay", Err: kerr.TopicAuthorizationFailed, Count: -1})
	if _, err := p.Send(ctx, rec("pay", 0)); kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization {
		t.Fatalf("faulted send: %v", err)
	}
	parent.End()
	if v := scrape(t, reg, "kprod_records_sent_total", "topic", "orders").value; v != n {
		t.Errorf("metrics with tracing on: sent %v, want %d", v, n)
	}
	if v := scrape(t, reg, "kprod_records_failed_total", "topic", "pay", "class", "authorization").value; v != 1 {
		t.Errorf("metrics with tracing on: failed %v, want 1", v)
	}
	var payErr int
	for _, s := range sr.Ended() {
		if s.Name() == "pay publish" && s.Status().Code == codes.Error {
			payErr++
		}
	}
	if payErr != 1 {
		t.Errorf("%d failed publish spans with error status, want 1", payErr)
	}

	spans := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		if s.Name() != "orders publish" {
			continue
		}
		spans[s.SpanContext().SpanID()] = s
		if s.SpanKind() != trace.SpanKindProducer || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("span %s: kind %v parent %v", s.Name(), s.SpanKind(), s.Parent().SpanID())
		}
		for _, a := range s.Attributes() {
			if a.Key == attribute.Key("messaging.kafka.message_key") {
				t.Errorf("record key on span: %v", a.Value.Emit())
			}
		}
	}
	if len(spans) != n {
		t.Fatalf("%d publish spans ended, want %d", len(spans), n)
	}

	got := testkit.Consume(t, c.ListenAddrs(), "orders", n, false, 20*time.Second)
	for _, r := range got {
		tpHeader := header(r, "traceparent")
		// version-traceid-spanid-flags
		parts := strings.Split(tpHeader, "-")
		if len(parts) != 4 || parts[1] != parent.SpanContext().TraceID().String() {
			t.Fatalf("record %q traceparent %q, want trace %s", r.Value, tpHeader, parent.SpanContext().TraceID())
		}
		sid, err := trace.SpanIDFromHex(parts[2])
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := spans[sid]; !ok {
			t.Errorf("record %q names span %s, which is not a recorded publish span", r.Value, sid)
		}
		if header(r, "seq") != "x" {
			t.Errorf("record %q lost its own header", r.Value)
		}
	}
}

// TestTracingNilProviderIsOff: a nil provider records nothing and adds no
// trace header.
func TestTracingNilProviderIsOff(t *testing.T) {
	c := testkit.Cluster(t, []string{"orders"})
	cfg := presets.LowLatency()
	cfg.Opts = append(cfg.Opts, metrics.Tracing(nil))
	p := testkit.Producer(t, c, cfg)
	res, err := p.Send(testkit.Ctx(t, 30*time.Second), rec("orders", 1))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Record.Headers {
		if h.Key == "traceparent" {
			t.Fatalf("traceparent %q with tracing off", h.Value)
		}
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
