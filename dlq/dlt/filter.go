package dlt

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
)

// Filter selects dead letters. Every set field must match (AND); the
// zero Filter selects everything.
type Filter struct {
	// OriginalTopic matches the latest failure's topic.
	OriginalTopic string
	// Classes match the error class of any recorded failure (the latest
	// or an earlier one), so a record that failed again with another
	// class is still selected by the class it first failed with.
	Classes []string
	// ErrorContains matches a substring of any recorded failure's error
	// message.
	ErrorContains string
	// Since and Until bound the latest failure's time (kprod-dlt-failed-at,
	// else the dead letter's own timestamp): Since <= t < Until. Zero
	// means unbounded.
	Since, Until time.Time
	// Key matches the record key exactly when KeySet is true (a nil Key
	// with KeySet then selects records without a key).
	Key    []byte
	KeySet bool
	// Headers match headers by exact value: every pair must be present.
	Headers map[string]string
	// RecordIDs match kprod-record-id values.
	RecordIDs []string
	// Partitions of the dead-letter topic; empty means all.
	Partitions []int32
	// FromOffset (inclusive) and ToOffset (exclusive) bound offsets on
	// the dead-letter topic, in every selected partition. ToOffset 0
	// means no upper bound.
	FromOffset int64
	ToOffset   int64
}

// Match reports whether d is selected.
func (f Filter) Match(d DeadLetter) bool {
	if len(f.Partitions) > 0 && !slices.Contains(f.Partitions, d.Partition) {
		return false
	}
	if d.Offset < f.FromOffset || (f.ToOffset > 0 && d.Offset >= f.ToOffset) {
		return false
	}
	if f.OriginalTopic != "" && d.Failure.Topic != f.OriginalTopic {
		return false
	}
	causes := d.Causes()
	if len(f.Classes) > 0 && !slices.ContainsFunc(causes, func(c Failure) bool { return slices.Contains(f.Classes, c.Class) }) {
		return false
	}
	if f.ErrorContains != "" && !slices.ContainsFunc(causes, func(c Failure) bool { return strings.Contains(c.Error, f.ErrorContains) }) {
		return false
	}
	if !f.Since.IsZero() || !f.Until.IsZero() {
		t := d.FailedAt()
		if (!f.Since.IsZero() && t.Before(f.Since)) || (!f.Until.IsZero() && !t.Before(f.Until)) {
			return false
		}
	}
	if f.KeySet && (!bytes.Equal(d.Key, f.Key) || (f.Key == nil) != (d.Key == nil)) {
		return false
	}
	for k, v := range f.Headers {
		if !slices.ContainsFunc(d.Headers, func(h kafkaproducer.Header) bool { return h.Key == k && string(h.Value) == v }) {
			return false
		}
	}
	if len(f.RecordIDs) > 0 && !slices.Contains(f.RecordIDs, d.RecordID) {
		return false
	}
	return true
}

// FailedAt is the latest failure's time: kprod-dlt-failed-at, else the
// dead letter's timestamp.
func (d DeadLetter) FailedAt() time.Time {
	if !d.Failure.FailedAt.IsZero() {
		return d.Failure.FailedAt
	}
	return d.Timestamp
}

// String is the filter in a canonical form (sorted, one line), used in
// logs and to derive DefaultGroup.
func (f Filter) String() string {
	var parts []string
	add := func(k, v string) { parts = append(parts, k+"="+strconv.Quote(v)) }
	if f.OriginalTopic != "" {
		add("topic", f.OriginalTopic)
	}
	if len(f.Classes) > 0 {
		c := slices.Clone(f.Classes)
		sort.Strings(c)
		add("class", strings.Join(slices.Compact(c), ","))
	}
	if f.ErrorContains != "" {
		add("error", f.ErrorContains)
	}
	if !f.Since.IsZero() {
		add("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		add("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.KeySet {
		if f.Key == nil {
			add("key", "<nil>")
		} else {
			add("key", hex.EncodeToString(f.Key))
		}
	}
	if len(f.Headers) > 0 {
		ks := make([]string, 0, len(f.Headers))
		for k := range f.Headers {
			ks = append(ks, strconv.Quote(k)+":"+strconv.Quote(f.Headers[k]))
		}
		sort.Strings(ks)
		add("headers", strings.Join(ks, ","))
	}
	if len(f.RecordIDs) > 0 {
		ids := slices.Clone(f.RecordIDs)
		sort.Strings(ids)
		add("ids", strings.Join(slices.Compact(ids), ","))
	}
	if len(f.Partitions) > 0 {
		ps := slices.Clone(f.Partitions)
		slices.Sort(ps)
		ss := make([]string, 0, len(ps))
		for _, p := range slices.Compact(ps) {
			ss = append(ss, strconv.Itoa(int(p)))
		}
		add("partitions", strings.Join(ss, ","))
	}
	if f.FromOffset > 0 {
		add("from", strconv.FormatInt(f.FromOffset, 10))
	}
	if f.ToOffset > 0 {
		add("to", strconv.FormatInt(f.ToOffset, 10))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}

// DefaultGroup is the consumer group Replay commits its position to when
// ReplayConfig.Group is empty: "kprod-dlt-replay.<dlt>.<hash>", the hash
// taken over the filter and toTopic. The same selection resumes; another
// selection gets its own group and starts from the beginning.
func DefaultGroup(dlt string, f Filter, toTopic string) string {
	sum := sha256.Sum256([]byte(f.String() + "\x00to=" + toTopic))
	return fmt.Sprintf("kprod-dlt-replay.%s.%s", dlt, hex.EncodeToString(sum[:6]))
}
