package topics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxLeaderWait bounds how long Ensure waits, after creating topics or
// adding partitions, for every new partition to have a leader (on a real
// cluster that takes a few hundred milliseconds; the caller's ctx may end
// it sooner).
const maxLeaderWait = 30 * time.Second

// metadata describes topics (uncached, never auto-creating them) and
// returns each by name. withOps asks for each topic's authorized
// operations. An error is the cluster's, not a topic's.
//
// This is the package's one hand-built request. kadm.Metadata would do
// but for two things: when the broker refuses DESCRIBE on one topic it
// fails the whole call with one *kadm.AuthError that names no topic (so
// Ensure could not create the others, nor Ready say which topic), and,
// unless asked for authorized operations, it answers from the client's
// metadata cache, which may predate a topic just created or grown.
func metadata(ctx context.Context, cl *kgo.Client, topics []string, withOps bool) (map[string]kmsg.MetadataResponseTopic, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = make([]kmsg.MetadataRequestTopic, 0, len(topics)) // empty, not nil: nil asks for every topic
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	req.AllowAutoTopicCreation = false // a look must not create
	req.IncludeTopicAuthorizedOperations = withOps
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, fmt.Errorf("kprod: topics: the cluster did not answer a metadata request: %w", err)
	}
	if len(resp.Brokers) == 0 {
		return nil, fmt.Errorf("kprod: topics: metadata lists no brokers: %w", kerr.BrokerNotAvailable)
	}
	out := make(map[string]kmsg.MetadataResponseTopic, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Topic != nil {
			out[*t.Topic] = t
		}
	}
	for _, t := range topics {
		if _, ok := out[t]; !ok {
			mt := kmsg.NewMetadataResponseTopic()
			mt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			out[t] = mt
		}
	}
	return out, nil
}

// waitLeaders polls metadata until every partition of topics has a
// leader, ctx ends or maxLeaderWait passes.
func waitLeaders(ctx context.Context, cl *kgo.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, maxLeaderWait)
	defer cancel()
	backoff := 10 * time.Millisecond
	for {
		meta, err := metadata(ctx, cl, topics, false)
		var errs []error
		if err != nil {
			errs = append(errs, err)
		} else {
			for _, t := range topics {
				errs = append(errs, leaders(t, meta[t]))
			}
		}
		err = errors.Join(errs...)
		if err == nil {
			cl.ForceMetadataRefresh() // the client's own view may predate the topics
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("kprod: topics: waiting for leaders of %s: %w (last: %w)", strings.Join(topics, ", "), ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// leaders is nil when the described topic has partitions and a leader for
// each, else an *Error naming the topic and the first partition without.
func leaders(name string, mt kmsg.MetadataResponseTopic) error {
	if err := kerr.ErrorForCode(mt.ErrorCode); err != nil {
		return &Error{Topic: name, Op: kmsg.ACLOperationDescribe, Err: err}
	}
	if len(mt.Partitions) == 0 {
		return &Error{Topic: name, Op: kmsg.ACLOperationDescribe, Err: fmt.Errorf("no partitions: %w", kerr.LeaderNotAvailable)}
	}
	for _, p := range mt.Partitions {
		if err := kerr.ErrorForCode(p.ErrorCode); err != nil || p.Leader < 0 {
			if err == nil {
				err = kerr.LeaderNotAvailable
			}
			return &Error{Topic: name, Op: kmsg.ACLOperationDescribe, Err: fmt.Errorf("partition %d has no leader: %w", p.Partition, err)}
		}
	}
	return nil
}
