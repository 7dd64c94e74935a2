package dlt

import (
	"context"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
)

// MaxGroupError bounds the error text Summary groups by: messages that
// differ only after it are one group.
const MaxGroupError = 200

var (
	keyText   = regexp.MustCompile(`key "(?:[^"\\]|\\.)*"`)
	digitRuns = regexp.MustCompile(`[0-9]+`)
)

// ErrorPattern is the error text Summary groups by: the record's key
// (kprod's SendError names it) and every number masked, so that one
// cause is one group: 'send to topic "orders" key "k7"' and
// '... key "k8"' are both 'send to topic "orders" key "*"'.
func ErrorPattern(msg string) string {
	msg = digitRuns.ReplaceAllString(keyText.ReplaceAllString(msg, `key "*"`), "N")
	if len(msg) > MaxGroupError {
		msg = msg[:MaxGroupError]
	}
	return msg
}

// Summary is what a dead-letter topic holds, as Inspect read it.
type Summary struct {
	Topic      string
	Partitions []PartitionRange // every partition's offsets when read
	Records    int              // dead letters read
	Matched    int              // dead letters the filter selected
	// Groups count the selected dead letters by original topic, error
	// class and ErrorPattern of the error text, most first.
	Groups []Group
	// First and Last bound the selected dead letters' failure times.
	First, Last time.Time
}

// PartitionRange is a partition's offsets: records Start to End-1.
type PartitionRange struct {
	Partition  int32
	Start, End int64
}

// Group is one (original topic, class, error) of a Summary.
type Group struct {
	OriginalTopic string
	Class         string
	Error         string
	Count         int
	First, Last   time.Time // failure times
}

// Inspect reads the dead-letter topic dlt with read_committed isolation,
// from its start to its end as of the call, and summarises the dead
// letters f selects. It connects with cfg's settings (brokers, TLS,
// SASL) through a short-lived client of its own; it writes nothing and
// commits nothing.
func Inspect(ctx context.Context, cfg kafkaproducer.Config, dlt string, f Filter) (Summary, error) {
	s := Summary{Topic: dlt}
	type gk struct{ topic, class, err string }
	groups := map[gk]*Group{}
	ranges, err := scan(ctx, cfg, dlt, f, DefaultIdle, func(d DeadLetter, matched bool) bool {
		s.Records++
		if !matched {
			return true
		}
		s.Matched++
		msg := ErrorPattern(d.Failure.Error)
		k := gk{d.Failure.Topic, d.Failure.Class, msg}
		g := groups[k]
		if g == nil {
			g = &Group{OriginalTopic: k.topic, Class: k.class, Error: k.err}
			groups[k] = g
		}
		t := d.FailedAt()
		g.Count++
		g.First, g.Last = earliest(g.First, t), latest(g.Last, t)
		s.First, s.Last = earliest(s.First, t), latest(s.Last, t)
		return true
	})
	s.Partitions = ranges
	for _, g := range groups {
		s.Groups = append(s.Groups, *g)
	}
	sort.Slice(s.Groups, func(i, j int) bool {
		a, b := s.Groups[i], s.Groups[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.OriginalTopic != b.OriginalTopic {
			return a.OriginalTopic < b.OriginalTopic
		}
		if a.Class != b.Class {
			return a.Class < b.Class
		}
		return a.Error < b.Error
	})
	return s, err
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func containsPartition(ps []int32, p int32) bool { return slices.Contains(ps, p) }

func sortRanges(rs []PartitionRange) {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Partition < rs[j].Partition })
}
