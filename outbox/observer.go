package outbox

import "time"

// Observer receives the relay's counts, for metrics. Its methods take only
// plain types. They run on the relay's goroutines (the one running Run,
// and another of the leader's for OnBacklog), never under a lock;
// they must be fast and must not block. Labels are bounded: topic names
// and kafkaproducer.Class names.
type Observer interface {
	// OnPublished: a row for topic was acknowledged by Kafka, lag after
	// it was added (the relay's clock minus the writer's, so skew between
	// hosts shows here).
	OnPublished(topic string, lag time.Duration)
	// OnFailed: a send of a row for topic failed with an error of class
	// (a kafkaproducer.Class name); the row stays in the outbox unless it
	// is then dead-lettered.
	OnFailed(topic, class string)
	// OnDeadLettered: a row for topic was moved to the dead-letter table,
	// its send having failed alone with class.
	OnDeadLettered(topic, class string)
	// OnBacklog: the outbox holds rows rows, the oldest added oldest ago
	// (0 when empty). Reported by the leader every StatsInterval.
	OnBacklog(rows int64, oldest time.Duration)
	// OnLeader: this relay became the leader (true) or stopped being it.
	OnLeader(leader bool)
}

type nopObserver struct{}

func (nopObserver) OnPublished(string, time.Duration) {}
func (nopObserver) OnFailed(string, string)           {}
func (nopObserver) OnDeadLettered(string, string)     {}
func (nopObserver) OnBacklog(int64, time.Duration)    {}
func (nopObserver) OnLeader(bool)                     {}
