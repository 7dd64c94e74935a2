package metrics

import (
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing returns a franz-go option that traces every produced record
// with OpenTelemetry through franz-go's kotel plugin: a "<topic> publish"
// span (kind producer) per record, from buffering to acknowledgement,
// child of the span in the context passed to Send, with the W3C
// traceparent (and baggage) injected into the record's headers so
// consumers continue the trace. Add it to Config.Opts:
//
//	cfg.Opts = append(cfg.Opts, metrics.Tracing(tp))
//
// tp nil means tracing off (a no-op provider); kprod never reaches for
// OpenTelemetry's global provider or propagator. Record keys are not put
// on spans unless you pass kotel.KeyFormatter; opts are applied after
// kprod's defaults (provider, W3C trace-context and baggage propagation,
// no keys), so the last one wins.
//
// Headers: the trace headers are appended to the record's own; kprod
// copies the header slice first when it already holds a trace header, so
// a Record reused across sends is not modified.
func Tracing(tp trace.TracerProvider, opts ...kotel.TracerOpt) kgo.Opt {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	all := []kotel.TracerOpt{
		kotel.TracerProvider(tp),
		kotel.TracerPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
		kotel.KeyFormatter(func(*kgo.Record) (string, error) { return "", errKeyOmitted }),
	}
	return kgo.WithHooks(&tracingHook{t: kotel.NewTracer(append(all, opts...)...)})
}

var errKeyOmitted = errors.New("kprod: record keys are not attached to spans")

// tracingHook guards the caller's header slice, then defers to kotel.
type tracingHook struct{ t *kotel.Tracer }

var (
	_ kgo.HookProduceRecordBuffered   = (*tracingHook)(nil)
	_ kgo.HookProduceRecordUnbuffered = (*tracingHook)(nil)
)

func (h *tracingHook) OnProduceRecordBuffered(r *kgo.Record) {
	// kotel appends headers (which could write into spare capacity of
	// the caller's slice) and overwrites an existing trace header in
	// place: give it a slice of its own in both cases.
	r.Headers = slices.Clip(r.Headers)
	for _, hd := range r.Headers {
		if hd.Key == "traceparent" || hd.Key == "tracestate" || hd.Key == "baggage" {
			r.Headers = slices.Clone(r.Headers)
			break
		}
	}
	h.t.OnProduceRecordBuffered(r)
}

func (h *tracingHook) OnProduceRecordUnbuffered(r *kgo.Record, err error) {
	h.t.OnProduceRecordUnbuffered(r, err)
}
