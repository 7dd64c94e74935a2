package topics

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// drift compares existing topics with what was asked: the partition
// count from meta, and the named configs through DescribeTopicConfigs.
// It returns one *Drift per topic that differs, in order.
func drift(ctx context.Context, adm *kadm.Client, existing []Topic, meta map[string]kmsg.MetadataResponseTopic) ([]*Drift, error) {
	var out []*Drift
	var errs []error
	for _, t := range existing {
		d := &Drift{Topic: t.Name}
		if have := int32(len(meta[t.Name].Partitions)); have < t.Partitions {
			d.Partitions, d.WantPartitions = have, t.Partitions
		}
		var err error
		d.Configs, err = configDrift(ctx, adm, t)
		errs = append(errs, err)
		if d.WantPartitions > 0 || len(d.Configs) > 0 {
			out = append(out, d)
		}
	}
	return out, errors.Join(errs...)
}

// configDrift is t's Configs whose broker value differs, sorted by name.
// It asks per topic because kadm fails a whole DescribeConfigs call with
// one *kadm.AuthError, naming no topic, when the broker refuses any.
func configDrift(ctx context.Context, adm *kadm.Client, t Topic) ([]ConfigDrift, error) {
	if len(t.Configs) == 0 {
		return nil, nil
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, t.Name)
	var rc kadm.ResourceConfig
	if err == nil {
		rc, err = rcs.On(t.Name, nil)
	}
	if err == nil {
		err = brokerErr(rc.Err, rc.ErrMessage)
	}
	if err != nil {
		return nil, &Error{Topic: t.Name, Op: kmsg.ACLOperationDescribeConfigs, Err: err}
	}
	have := make(map[string]string, len(rc.Configs))
	for _, c := range rc.Configs {
		have[c.Key] = c.MaybeValue()
	}
	var out []ConfigDrift
	for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
		if have[k] != t.Configs[k] {
			out = append(out, ConfigDrift{Name: k, Have: have[k], Want: t.Configs[k]})
		}
	}
	return out, nil
}

// addPartitions grows each drifted topic to its wanted partition count,
// then waits for the new partitions' leaders.
func addPartitions(ctx context.Context, cl *kgo.Client, adm *kadm.Client, drifts []*Drift, validateOnly bool) error {
	update := adm.UpdatePartitions
	if validateOnly {
		update = adm.ValidateUpdatePartitions
	}
	var errs []error
	var grown []string
	for _, d := range drifts {
		if d.WantPartitions == 0 {
			continue
		}
		rs, err := update(ctx, int(d.WantPartitions), d.Topic)
		var r kadm.CreatePartitionsResponse
		if err == nil {
			r, err = rs.On(d.Topic, nil)
		}
		if err == nil {
			err = brokerErr(r.Err, r.ErrMessage)
		}
		if err != nil {
			errs = append(errs, &Error{Topic: d.Topic, Op: kmsg.ACLOperationAlter, Err: err})
			continue
		}
		d.PartitionsAdded = true
		grown = append(grown, d.Topic)
	}
	if !validateOnly {
		errs = append(errs, waitLeaders(ctx, cl, grown))
	}
	return errors.Join(errs...)
}

// alterConfigs sets each drifted config with an incremental alter (SET of
// the differing names only).
func alterConfigs(ctx context.Context, adm *kadm.Client, drifts []*Drift, validateOnly bool) error {
	alter := adm.AlterTopicConfigs
	if validateOnly {
		alter = adm.ValidateAlterTopicConfigs
	}
	var errs []error
	for _, d := range drifts {
		if len(d.Configs) == 0 {
			continue
		}
		var set []kadm.AlterConfig
		for _, c := range d.Configs {
			set = append(set, kadm.AlterConfig{Op: kadm.SetConfig, Name: c.Name, Value: kadm.StringPtr(c.Want)})
		}
		rs, err := alter(ctx, set, d.Topic)
		var r kadm.AlterConfigsResponse
		if err == nil {
			r, err = rs.On(d.Topic, nil)
		}
		if err == nil {
			err = brokerErr(r.Err, r.ErrMessage)
		}
		if err != nil {
			errs = append(errs, &Error{Topic: d.Topic, Op: kmsg.ACLOperationAlterConfigs, Err: err})
			continue
		}
		d.ConfigsAltered = true
	}
	return errors.Join(errs...)
}
