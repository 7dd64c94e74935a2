package metrics_test

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/metrics"
)

// FuzzTopicLabel feeds arbitrary topic strings (they come from callers'
// records) through every topic-labelled path: nothing may panic (client
// label values must be valid UTF-8), labels stay legal and bounded, and
// the registry still gathers.
func FuzzTopicLabel(f *testing.F) {
	for _, s := range []string{"orders", "", "other", "(none)", "caf\xc3\xa9", "bad\xff", "a b", "x.y_z-1", string(make([]byte, 300))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		reg := prometheus.NewRegistry()
		m, err := metrics.New(reg, metrics.WithMaxTopics(1))
		if err != nil {
			t.Fatal(err)
		}
		m.OnRecordDone(kafkaproducer.Result{Record: kafkaproducer.Record{Topic: topic}})
		m.OnRecordDone(kafkaproducer.Result{Record: kafkaproducer.Record{Topic: topic}, Err: errors.New("boom")})
		m.OnRecordAcked(kafkaproducer.AckedRecord{Topic: topic})
		m.OnDeadLettered(topic)
		m.OnSpooled(topic)
		m.OnReplayed(topic)
		m.OnAmbiguous(topic)
		m.OnSetAside(topic, topic) // an unknown reason is "other"
		label := m.TopicLabel(topic)
		switch label {
		case metrics.NoTopic, metrics.InvalidTopic, metrics.OtherTopic:
		default:
			if label != topic || !utf8.ValidString(label) || len(label) > 249 {
				t.Fatalf("topic %q labelled %q", topic, label)
			}
		}
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("gather after topic %q: %v", topic, err)
		}
	})
}
