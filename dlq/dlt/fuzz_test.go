package dlt_test

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kprod/kprod/dlq/dlt"
)

// FuzzDecode: header values on a dead-letter topic come from whoever
// wrote it. Decode must never panic on any of them, and whatever it makes
// of a record must describe that record.
func FuzzDecode(f *testing.F) {
	f.Add("kprod-dlt-original-topic", []byte("orders"), "kprod-dlt-original-partition", []byte("3"))
	f.Add("kafka_dlt-original-offset", []byte{0, 0, 0, 0, 0, 0, 0, 42}, "kafka_dlt-original-partition", []byte{0, 0, 0, 1})
	f.Add("kprod-dlt-replay-count", []byte("-1"), "kprod-dlt-previous-1-error-class", []byte(""))
	f.Add("kafka_dlt-original-timestamp", []byte{1, 2, 3}, "kprod-original-timestamp", []byte("not a time"))
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte) {
		r := &kgo.Record{Topic: "orders.DLT", Partition: 1, Offset: 7, Headers: []kgo.RecordHeader{{Key: k1, Value: v1}, {Key: k2, Value: v2}}}
		d := dlt.Decode(r)
		if d.Topic != r.Topic || d.Partition != r.Partition || d.Offset != r.Offset {
			t.Fatalf("Decode moved the record: %+v", d)
		}
	})
}
