package topics

import (
	"fmt"
	"strings"

	"github.com/kprod/kprod/kafkaproducer"
)

// Topic is one topic a service needs. Only Name is required; what is left
// zero is the broker's to decide.
type Topic struct {
	// Name is the topic's name.
	Name string
	// Partitions is how many partitions the topic should have. 0 leaves
	// it to the broker (num.partitions; -1 on the wire, KIP-464). On an
	// existing topic, fewer partitions than this is drift; more is not
	// (Kafka cannot remove partitions).
	Partitions int32
	// ReplicationFactor is how many replicas each partition has. 0
	// leaves it to the broker (default.replication.factor). It is used
	// only to create the topic: changing it is a reassignment, which
	// this package neither does nor reports.
	ReplicationFactor int16
	// Configs are topic-level configs such as cleanup.policy,
	// min.insync.replicas, retention.ms or max.message.bytes. They are
	// set when the topic is created; on an existing topic each is
	// compared with the broker's value (string equality), which needs
	// DESCRIBE_CONFIGS on the topic. Configs not named here are not
	// compared.
	Configs map[string]string
}

// Names returns the names of ts, in order: for Ready after Ensure.
func Names(ts ...Topic) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}

// check refuses topics no broker should be asked about.
func check(ts []Topic) error {
	seen := make(map[string]bool, len(ts))
	for i, t := range ts {
		var msg string
		switch {
		case strings.TrimSpace(t.Name) == "":
			msg = "has no name"
		case seen[t.Name]:
			msg = "is named twice"
		case t.Partitions < 0:
			msg = fmt.Sprintf("has %d partitions: use 0 for the broker's default", t.Partitions)
		case t.ReplicationFactor < 0:
			msg = fmt.Sprintf("has replication factor %d: use 0 for the broker's default", t.ReplicationFactor)
		}
		for k := range t.Configs {
			if msg == "" && strings.TrimSpace(k) == "" {
				msg = "has a config with no name"
			}
		}
		if msg != "" {
			return kafkaproducer.WithClass(kafkaproducer.ClassBadInput, fmt.Errorf("kprod: topics: topic %d (%q) %s", i, t.Name, msg))
		}
		seen[t.Name] = true
	}
	return nil
}
