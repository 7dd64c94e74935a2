// Package topics declares the Kafka topics a service needs and makes a
// cluster match them: Ensure creates what is missing, reports how
// existing topics differ (drift) and changes them only when asked, and
// Ready is the start-up and health check that the service can produce
// now. It speaks the admin protocol through any franz-go client, such as
// the one kafkaproducer.Producer.Client() returns.
//
//	want := []topics.Topic{
//		{Name: "orders", Partitions: 6, Configs: map[string]string{"min.insync.replicas": "2"}},
//		{Name: "orders.DLT"}, // the broker's partitions and replication factor
//	}
//	rep, err := topics.Ensure(ctx, p.Client(), want)           // create missing; report drift
//	log.Info("topics", zap.Stringer("report", rep))
//	rep, err = topics.Ensure(ctx, cl, want, topics.ValidateOnly()) // dry run: the brokers validate, nothing changes
//	rep, err = topics.Ensure(ctx, cl, want, topics.AddPartitions(), topics.AlterConfigs()) // fix drift too
//	err = topics.Ready(ctx, p.Client(), topics.Names(want...)...) // exists, has leaders, WRITE allowed
//
// Ensure is idempotent and safe to run from many instances at once: a
// topic another instance created first counts as existing. A missing ACL
// fails with an *Error naming the topic and the operation (CREATE, ALTER,
// DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS, WRITE), which
// kafkaproducer.Classify sorts as ClassAuthorization.
//
// The principal needs DESCRIBE on each topic for either call, CREATE
// (on the topic or the cluster) to create one, DESCRIBE_CONFIGS when a
// Topic names Configs, ALTER and ALTER_CONFIGS to fix drift. A service
// that does not own a topic should name it without Configs, or only call
// Ready.
//
// Every function is safe for concurrent use; none keeps state between
// calls or starts a goroutine that outlives it.
package topics
