package topics

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// drift compares existing topics with what was asked: the partition
// count from meta, and the named configs through one DescribeConfigs
// request. It returns one *Drift per topic that differs, in order.
func drift(ctx context.Context, cl *kgo.Client, existing []Topic, meta map[string]kmsg.MetadataResponseTopic) ([]*Drift, error) {
	byTopic := map[string]*Drift{}
	get := func(name string) *Drift {
		if d := byTopic[name]; d != nil {
			return d
		}
		d := &Drift{Topic: name}
		byTopic[name] = d
		return d
	}
	for _, t := range existing {
		if have := int32(len(meta[t.Name].Partitions)); t.Partitions > 0 && have < t.Partitions {
			d := get(t.Name)
			d.Partitions, d.WantPartitions = have, t.Partitions
		}
	}

	req := kmsg.NewPtrDescribeConfigsRequest()
	wantConfigs := map[string]map[string]string{}
	for _, t := range existing {
		if len(t.Configs) == 0 {
			continue
		}
		wantConfigs[t.Name] = t.Configs
		r := kmsg.NewDescribeConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = t.Name
		r.ConfigNames = slices.Sorted(maps.Keys(t.Configs))
		req.Resources = append(req.Resources, r)
	}
	var errs []error
	if len(req.Resources) > 0 {
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return nil, fmt.Errorf("kprod: topics: describe configs: %w", err)
		}
		answered := map[string]bool{}
		for _, r := range resp.Resources {
			want, ok := wantConfigs[r.ResourceName]
			if !ok || r.ResourceType != kmsg.ConfigResourceTypeTopic {
				continue
			}
			answered[r.ResourceName] = true
			if err := brokerErr(r.ErrorCode, r.ErrorMessage); err != nil {
				errs = append(errs, &Error{Topic: r.ResourceName, Op: kmsg.ACLOperationDescribeConfigs, Err: err})
				continue
			}
			have := map[string]string{}
			for _, c := range r.Configs {
				if c.Value != nil {
					have[c.Name] = *c.Value
				}
			}
			for _, k := range slices.Sorted(maps.Keys(want)) {
				if have[k] != want[k] {
					d := get(r.ResourceName)
					d.Configs = append(d.Configs, ConfigDrift{Name: k, Have: have[k], Want: want[k]})
				}
			}
		}
		for name := range wantConfigs {
			if !answered[name] {
				errs = append(errs, &Error{Topic: name, Op: kmsg.ACLOperationDescribeConfigs, Err: errors.New("the broker did not answer for this topic")})
			}
		}
	}

	var out []*Drift
	for _, t := range existing {
		if d := byTopic[t.Name]; d != nil {
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// addPartitions grows each drifted topic to its wanted partition count in
// one CreatePartitions request, then waits for the new partitions'
// leaders.
func addPartitions(ctx context.Context, cl *kgo.Client, drifts []*Drift, validateOnly bool) error {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.ValidateOnly = validateOnly
	req.TimeoutMillis = timeoutMillis(ctx)
	byTopic := map[string]*Drift{}
	for _, d := range drifts {
		if d.WantPartitions == 0 {
			continue
		}
		byTopic[d.Topic] = d
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic = d.Topic
		rt.Count = d.WantPartitions
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("kprod: topics: add partitions: %w", err)
	}
	var errs []error
	var grown []string
	for _, rt := range resp.Topics {
		d := byTopic[rt.Topic]
		if d == nil {
			continue
		}
		if err := brokerErr(rt.ErrorCode, rt.ErrorMessage); err != nil {
			errs = append(errs, &Error{Topic: rt.Topic, Op: kmsg.ACLOperationAlter, Err: err})
			continue
		}
		d.PartitionsAdded = true
		grown = append(grown, rt.Topic)
	}
	if !validateOnly {
		errs = append(errs, waitLeaders(ctx, cl, grown))
	}
	return errors.Join(errs...)
}

// alterConfigs sets each drifted config in one IncrementalAlterConfigs
// request (SET of the differing names only).
func alterConfigs(ctx context.Context, cl *kgo.Client, drifts []*Drift, validateOnly bool) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	byTopic := map[string]*Drift{}
	for _, d := range drifts {
		if len(d.Configs) == 0 {
			continue
		}
		byTopic[d.Topic] = d
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = d.Topic
		for _, c := range d.Configs {
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name = c.Name
			rc.Op = kmsg.IncrementalAlterConfigOpSet
			rc.Value = kmsg.StringPtr(c.Want)
			r.Configs = append(r.Configs, rc)
		}
		req.Resources = append(req.Resources, r)
	}
	if len(req.Resources) == 0 {
		return nil
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("kprod: topics: alter configs: %w", err)
	}
	var errs []error
	for _, r := range resp.Resources {
		d := byTopic[r.ResourceName]
		if d == nil || r.ResourceType != kmsg.ConfigResourceTypeTopic {
			continue
		}
		if err := brokerErr(r.ErrorCode, r.ErrorMessage); err != nil {
			errs = append(errs, &Error{Topic: r.ResourceName, Op: kmsg.ACLOperationAlterConfigs, Err: err})
			continue
		}
		d.ConfigsAltered = true
	}
	return errors.Join(errs...)
}

// timeoutMillis is the broker-side timeout of an admin request: what is
// left of ctx, or 30s.
func timeoutMillis(ctx context.Context) int32 {
	if dl, ok := ctx.Deadline(); ok {
		return int32(min(max(time.Until(dl).Milliseconds(), 1), 30_000))
	}
	return 30_000
}
