package dlt

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/errname"
	"github.com/kprod/kprod/kafkaproducer"
)

const maxErrHeader = 1024

// replayRecord is the copy of d sent to target: its key, value and
// headers without the failure headers (kprod-dlt-*, kafka_dlt-*), its
// record ID, the original timestamp header, and the replay headers.
func replayRecord(d DeadLetter, target string, keepTimestamp bool) kafkaproducer.Record {
	hs := make([]kafkaproducer.Header, 0, len(d.Headers)+3)
	for _, h := range d.Headers {
		if !isFailureHeader(h.Key) {
			hs = append(hs, h)
		}
	}
	hs = withOriginals(hs, d)
	hs = append(hs,
		kafkaproducer.Header{Key: HeaderReplayCount, Value: strconv.AppendInt(nil, int64(d.ReplayCount+1), 10)},
		kafkaproducer.Header{Key: HeaderReplaySource, Value: []byte(d.Topic + "/" + sourceKey(d.Partition, d.Offset))},
	)
	rec := kafkaproducer.Record{Topic: target, Key: d.Key, Value: d.Value, Headers: hs}
	if keepTimestamp && !d.OriginalTimestamp.IsZero() {
		rec.Timestamp = d.OriginalTimestamp
	}
	return rec
}

// withOriginals adds a record ID (derived from d's place on the
// dead-letter topic, so every replay of it carries the same one) and the
// original timestamp when d's headers lack them (Spring-only dead
// letters).
func withOriginals(hs []kafkaproducer.Header, d DeadLetter) []kafkaproducer.Header {
	if d.RecordID == "" {
		sum := sha256.Sum256([]byte(d.Topic + "/" + sourceKey(d.Partition, d.Offset)))
		hs = append(hs, kafkaproducer.Header{Key: dlq.DefaultRecordIDHeader, Value: []byte(hex.EncodeToString(sum[:16]))})
	}
	if !d.OriginalTimestamp.IsZero() && !hasHeader(hs, dlq.HeaderOriginalTimestamp) {
		hs = append(hs, kafkaproducer.Header{Key: dlq.HeaderOriginalTimestamp, Value: strconv.AppendInt(nil, d.OriginalTimestamp.UnixMilli(), 10)})
	}
	return hs
}

// failedAgainRecord is the dead letter for d, refused by target with
// cause on replay: d's headers with its earlier failures kept
// (kprod-dlt-previous-*, oldest first, then d's latest failure as
// previous), the new failure as kprod-dlt-*, and, when d had Spring's
// headers, Spring's original-* kept and exception-* set to the new cause.
func failedAgainRecord(d DeadLetter, dlt, target string, cause error, clientID string, now time.Time) kafkaproducer.Record {
	msg := cause.Error()
	if len(msg) > maxErrHeader {
		msg = msg[:maxErrHeader]
	}
	hs := make([]kafkaproducer.Header, 0, len(d.Headers)+20)
	for _, h := range d.Headers {
		switch {
		case strings.HasPrefix(h.Key, PreviousPrefix),
			strings.HasPrefix(h.Key, "kafka_dlt-original-"),
			!isFailureHeader(h.Key):
			hs = append(hs, h)
		}
	}
	hs = withOriginals(hs, d)
	if d.Failure.Topic != "" || d.Failure.Error != "" {
		hs = append(hs, failureHeaders(d.Failure, PreviousPrefix)...)
	}
	if clientID == "" {
		clientID = "kprod"
	}
	hs = append(hs, failureHeaders(Failure{
		Topic: target, Partition: -1, Class: kafkaproducer.Classify(cause).String(),
		Error: msg, FailedAt: now, Attempts: 1, ClientID: clientID,
	}, kprodPrefix)...)
	hs = append(hs, kafkaproducer.Header{Key: HeaderReplayCount, Value: strconv.AppendInt(nil, int64(d.ReplayCount+1), 10)})
	if d.Spring != nil {
		hs = append(hs,
			kafkaproducer.Header{Key: dlq.SpringExceptionFQCN, Value: []byte(errname.TypeName(cause))},
			kafkaproducer.Header{Key: dlq.SpringExceptionCauseFQCN, Value: []byte(errname.TypeName(errname.Innermost(cause)))},
			kafkaproducer.Header{Key: dlq.SpringExceptionMessage, Value: []byte(msg)},
		)
	}
	return kafkaproducer.Record{Topic: dlt, Key: d.Key, Value: d.Value, Headers: hs}
}

func hasHeader(hs []kafkaproducer.Header, key string) bool {
	for _, h := range hs {
		if h.Key == key {
			return true
		}
	}
	return false
}
