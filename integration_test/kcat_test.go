package integration_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/kafkatest"
	"github.com/kprod/kprod/presets"
)

// kcatRecord is one line of `kcat -C -J`.
type kcatRecord struct {
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Headers   []string `json:"headers"` // key, value, key, value...
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// kcatRead consumes topic from the start to its end with kcat (librdkafka)
// at the given isolation level and returns its records as kgo records, so
// checkRecords can compare them.
func kcatRead(t *testing.T, c *kafkatest.Cluster, topic string, iso kafkatest.Isolation) []*kgo.Record {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install -y kcat); CI installs it")
	}
	ctx := ctxFor(t, 60*time.Second)
	cmd := exec.CommandContext(ctx, path, "-C", "-b", strings.Join(c.Brokers(), ","), "-t", topic,
		"-o", "beginning", "-e", "-J", "-q", "-X", "isolation.level="+iso.String())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat: %v: %s", err, stderr.String())
	}
	var recs []*kgo.Record
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var kr kcatRecord
		if err := json.Unmarshal(sc.Bytes(), &kr); err != nil {
			t.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		r := &kgo.Record{Partition: kr.Partition, Offset: kr.Offset}
		if kr.Key != nil {
			r.Key = []byte(*kr.Key)
		}
		if kr.Payload != nil {
			r.Value = []byte(*kr.Payload)
		}
		for i := 0; i+1 < len(kr.Headers); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: kr.Headers[i], Value: []byte(kr.Headers[i+1])})
		}
		recs = append(recs, r)
	}
	// Order by partition then offset, as ReadAll does: kcat interleaves
	// partitions.
	byPart := make(map[int32][]*kgo.Record)
	maxPart := int32(0)
	for _, r := range recs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
		maxPart = max(maxPart, r.Partition)
	}
	sorted := recs[:0]
	for p := range maxPart + 1 {
		sorted = append(sorted, byPart[p]...)
	}
	return sorted
}

// TestKcatReadsEveryCodec writes with each compression codec and has kcat
// (librdkafka, a third-party client) read keys, values and headers back.
// The batches on the wire must really use the codec.
func TestKcatReadsEveryCodec(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not installed (apt-get install -y kcat); CI installs it")
	}
	tests := []struct {
		codec kafkaproducer.Compression
		attr  uint8 // kgo.RecordAttrs.CompressionType
	}{
		{kafkaproducer.CompressionNone, 0},
		{kafkaproducer.CompressionGzip, 1},
		{kafkaproducer.CompressionSnappy, 2},
		{kafkaproducer.CompressionLZ4, 3},
		{kafkaproducer.CompressionZstd, 4},
	}
	onEachBackend(t, func(t *testing.T, c *kafkatest.Cluster) {
		for _, tt := range tests {
			t.Run(string(tt.codec), func(t *testing.T) {
				topic := c.NewTopic(t, 2)
				cfg := presets.HighThroughput()
				cfg.Compression = tt.codec
				p := c.Producer(t, cfg)
				ctx := ctxFor(t, 30*time.Second)
				var want []kafkaproducer.Record
				for i := range 40 {
					want = append(want, testRecord(topic, i))
				}
				if err := p.SendBatch(ctx, want).FirstErr(); err != nil {
					t.Fatalf("send: %v", err)
				}
				for _, r := range c.ReadAll(t, topic, kafkatest.ReadUncommitted, 20*time.Second) {
					if got := r.Attrs.CompressionType(); got != tt.attr {
						t.Fatalf("record at %d/%d was written with codec %d, want %d (%s)", r.Partition, r.Offset, got, tt.attr, tt.codec)
					}
				}
				checkRecords(t, kcatRead(t, c, topic, kafkatest.ReadUncommitted), want)
			})
		}
	})
}

// TestKcatReadCommitted has kcat read a topic holding a committed and an
// aborted transaction: read_committed shows only the committed records.
func TestKcatReadCommitted(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not installed (apt-get install -y kcat); CI installs it")
	}
	onEachBackend(t, func(t *testing.T, c *kafkatest.Cluster) {
		topic := c.NewTopic(t, 2)
		want := writeTransactions(t, c, topic, 8, 4)
		checkRecords(t, kcatRead(t, c, topic, kafkatest.ReadCommitted), want)
		if got := kcatRead(t, c, topic, kafkatest.ReadUncommitted); len(got) != 8+4 {
			t.Fatalf("kcat read_uncommitted read %d records, want %d", len(got), 8+4)
		}
	})
}
