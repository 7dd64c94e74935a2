package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Option widens what one Ensure call may do. With none, Ensure creates
// missing topics and reports drift without changing existing topics.
type Option func(*options)

type options struct {
	validateOnly, addPartitions, alterConfigs bool
}

// ValidateOnly makes Ensure a dry run: every create, partition increase
// and config change it would make goes to the brokers with Kafka's
// validateOnly flag, so the brokers check names, counts, configs, policies
// and ACLs, and nothing changes. The Report says what a real run would do.
func ValidateOnly() Option { return func(o *options) { o.validateOnly = true } }

// AddPartitions lets Ensure grow an existing topic that has fewer
// partitions than its Topic.Partitions (needs ALTER on the topic). Adding
// partitions moves keys to other partitions: consumers that rely on
// per-key order see that order break once. Off by default.
func AddPartitions() Option { return func(o *options) { o.addPartitions = true } }

// AlterConfigs lets Ensure set, on an existing topic, each of its
// Topic.Configs whose value differs (an incremental SET; configs not named
// are left alone; needs ALTER_CONFIGS on the topic). Off by default.
func AlterConfigs() Option { return func(o *options) { o.alterConfigs = true } }

// Report is what one Ensure call found and did.
type Report struct {
	// Created lists the topics this call created, in the order given.
	// In a dry run (ValidateOnly): the topics it would create, each
	// accepted by the brokers' validation.
	Created []string
	// Existing lists the topics that were there already, including any
	// that another instance created between this call's look and its
	// create (TOPIC_ALREADY_EXISTS is success).
	Existing []string
	// Drift lists existing topics that differ from what was asked, in
	// the order given.
	Drift []Drift
	// ValidateOnly is set when nothing was changed because the call was
	// a dry run.
	ValidateOnly bool
}

// Drift is how one existing topic differs from its Topic.
type Drift struct {
	Topic string
	// Partitions is how many partitions the topic has and
	// WantPartitions how many were asked for, when that is more;
	// both are 0 when the count is not drift.
	Partitions, WantPartitions int32
	// Configs are the asked-for configs whose value differs, sorted by
	// name.
	Configs []ConfigDrift
	// PartitionsAdded is set when Ensure grew the topic (AddPartitions);
	// ConfigsAltered when it set the differing configs (AlterConfigs).
	// In a dry run they say the brokers accepted the change.
	PartitionsAdded, ConfigsAltered bool
}

// ConfigDrift is one config whose value differs from the wanted one.
type ConfigDrift struct {
	Name string
	Have string // the broker's value; "" when it reports none
	Want string
}

// String is one line: the counts and each config that differs, and what
// was done about them.
func (d Drift) String() string {
	var parts []string
	if d.WantPartitions > 0 {
		s := fmt.Sprintf("%d partitions, want %d", d.Partitions, d.WantPartitions)
		if d.PartitionsAdded {
			s += " (added)"
		}
		parts = append(parts, s)
	}
	for _, c := range d.Configs {
		s := fmt.Sprintf("%s=%q, want %q", c.Name, c.Have, c.Want)
		if d.ConfigsAltered {
			s += " (altered)"
		}
		parts = append(parts, s)
	}
	return d.Topic + ": " + strings.Join(parts, ", ")
}

// String summarises the report on one line, for a start-up log.
func (r Report) String() string {
	var b strings.Builder
	if r.ValidateOnly {
		b.WriteString("validate only: would create ")
	} else {
		b.WriteString("created ")
	}
	list := func(s []string) string {
		if len(s) == 0 {
			return "none"
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(&b, "%s; existing %s", list(r.Created), list(r.Existing))
	for _, d := range r.Drift {
		fmt.Fprintf(&b, "; drift %s", d)
	}
	return b.String()
}

// Ensure makes sure each topic in want exists, and reports how the ones
// that already exist differ from want. It is idempotent and safe to run
// from every instance of a service at start-up at once: a topic another
// instance created first is reported as existing, not as an error.
//
// Missing topics are created, one CreateTopics request each, with their
// partitions, replication factor (the broker's defaults when 0) and
// configs; Ensure returns once each created topic has a leader for every
// partition, so a send right after it finds the topic. Existing topics
// are compared with want (partition count from metadata; Configs through
// DescribeConfigs, one request per topic that names some) and
// differences are listed in Report.Drift; they are changed only with
// AddPartitions or AlterConfigs. ValidateOnly turns every change into a
// dry run.
//
// The principal needs DESCRIBE on each topic, CREATE on missing ones (on
// the topic or the cluster), DESCRIBE_CONFIGS on existing topics that
// name Configs, ALTER for AddPartitions and ALTER_CONFIGS for
// AlterConfigs. A refusal, like any failure of one topic, is an *Error
// naming the topic and the operation; the errors of several topics are
// joined, and the Report still lists what succeeded. Topics whose
// settings are invalid (no name, a name given twice, negative counts) are
// refused before any request, with an error of class ClassBadInput.
//
// cl may be any franz-go client, such as kafkaproducer.Producer.Client():
// Ensure sends its own requests and does not change the client's
// configuration. ctx bounds the whole call; a deadline is advised. A
// create, partition increase or config change already sent when ctx ends
// may still be applied: run Ensure again to see where things stand.
func Ensure(ctx context.Context, cl *kgo.Client, want []Topic, opts ...Option) (Report, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	rep := Report{ValidateOnly: o.validateOnly}
	if err := check(want); err != nil {
		return rep, err
	}
	if len(want) == 0 {
		return rep, nil
	}
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(timeoutMillis(ctx))

	meta, err := metadata(ctx, cl, Names(want...), false)
	if err != nil {
		return rep, err
	}
	var errs []error
	var missing, existing []Topic
	for _, t := range want {
		switch err := kerr.ErrorForCode(meta[t.Name].ErrorCode); {
		case err == nil:
			existing = append(existing, t)
		case errors.Is(err, kerr.UnknownTopicOrPartition):
			missing = append(missing, t)
		default:
			errs = append(errs, &Error{Topic: t.Name, Op: kmsg.ACLOperationDescribe, Err: err})
		}
	}

	if len(missing) > 0 {
		created, raced, err := create(ctx, adm, missing, o.validateOnly)
		errs = append(errs, err)
		rep.Created = created
		if len(raced) > 0 {
			// Another instance created these first: look at them
			// as at any existing topic.
			m, err := metadata(ctx, cl, Names(raced...), false)
			if err != nil {
				return rep, errors.Join(append(errs, err)...)
			}
			maps.Copy(meta, m)
			existing = append(existing, raced...)
		}
		if !o.validateOnly {
			errs = append(errs, waitLeaders(ctx, cl, created))
		}
	}
	existing = inOrder(want, existing)
	rep.Existing = Names(existing...)

	drifts, err := drift(ctx, adm, existing, meta)
	errs = append(errs, err)
	if o.addPartitions {
		errs = append(errs, addPartitions(ctx, cl, adm, drifts, o.validateOnly))
	}
	if o.alterConfigs {
		errs = append(errs, alterConfigs(ctx, adm, drifts, o.validateOnly))
	}
	for _, d := range drifts {
		rep.Drift = append(rep.Drift, *d)
	}
	return rep, errors.Join(errs...)
}

// inOrder returns ts sorted into the order of want.
func inOrder(want, ts []Topic) []Topic {
	pos := make(map[string]int, len(want))
	for i, t := range want {
		pos[t.Name] = i
	}
	slices.SortFunc(ts, func(a, b Topic) int { return pos[a.Name] - pos[b.Name] })
	return ts
}

// create creates each of ts with its own request, since kadm gives every
// topic of one call the same partitions, replication factor and configs
// (topics are created once per cluster, so the extra round trips do not
// matter). It returns the topics created (or, validating only, accepted)
// and those another client created first.
func create(ctx context.Context, adm *kadm.Client, ts []Topic, validateOnly bool) (created []string, raced []Topic, err error) {
	createTopics := adm.CreateTopics
	if validateOnly {
		createTopics = adm.ValidateCreateTopics
	}
	var errs []error
	for _, t := range ts {
		configs := make(map[string]*string, len(t.Configs))
		for k, v := range t.Configs {
			configs[k] = kadm.StringPtr(v)
		}
		rs, err := createTopics(ctx, orDefault(t.Partitions), int16(orDefault(int32(t.ReplicationFactor))), configs, t.Name)
		if err != nil {
			return created, raced, errors.Join(append(errs, fmt.Errorf("kprod: topics: create %q: %w", t.Name, err))...)
		}
		r, err := rs.On(t.Name, nil)
		if err == nil {
			err = brokerErr(r.Err, r.ErrMessage)
		}
		switch {
		case err == nil:
			created = append(created, t.Name)
		case errors.Is(err, kerr.TopicAlreadyExists):
			raced = append(raced, t)
		default:
			errs = append(errs, &Error{Topic: t.Name, Op: kmsg.ACLOperationCreate, Err: err})
		}
	}
	return created, raced, errors.Join(errs...)
}

// orDefault is n, or -1 (the broker's default, KIP-464) for 0.
func orDefault(n int32) int32 {
	if n == 0 {
		return -1
	}
	return n
}

// timeoutMillis is the broker-side timeout of an admin request: what is
// left of ctx, or 30s.
func timeoutMillis(ctx context.Context) int32 {
	if dl, ok := ctx.Deadline(); ok {
		return int32(min(max(time.Until(dl).Milliseconds(), 1), 30_000))
	}
	return 30_000
}
