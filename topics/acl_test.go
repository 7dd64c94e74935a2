package topics_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func allow(name string, pattern kmsg.ACLResourcePatternType, op kmsg.ACLOperation) kfake.ACL {
	return kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: name, Pattern: pattern, Operation: op, Allow: true}
}

// aclCluster has one user, "svc", who may DESCRIBE topics named app.*,
// WRITE and DESCRIBE_CONFIGS app.orders, and nothing else: no CREATE, no
// ALTER, no ALTER_CONFIGS.
func aclCluster(t *testing.T) *kgo.Client {
	c := testkit.Cluster(t, []string{"app.orders", "app.audit", "other"},
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"),
		kfake.User("SCRAM-SHA-256", "svc", "svc-pw",
			allow("app.", kmsg.ACLResourcePatternTypePrefixed, kmsg.ACLOperationDescribe),
			allow("app.orders", kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLOperationWrite),
			allow("app.orders", kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLOperationDescribeConfigs),
		),
	)
	return client(t, c, kgo.SASL(scram.Auth{User: "svc", Pass: "svc-pw"}.AsSha256Mechanism()))
}

func TestEnsureDenied(t *testing.T) {
	cl := aclCluster(t)
	compact := map[string]string{"cleanup.policy": "compact"}
	tests := []struct {
		name  string
		topic topics.Topic
		opts  []topics.Option
		op    kmsg.ACLOperation
	}{
		{"create a missing topic", topics.Topic{Name: "app.new"}, nil, kmsg.ACLOperationCreate},
		{"validate a create", topics.Topic{Name: "app.new"}, []topics.Option{topics.ValidateOnly()}, kmsg.ACLOperationCreate},
		{"describe", topics.Topic{Name: "other"}, nil, kmsg.ACLOperationDescribe},
		{"add partitions", topics.Topic{Name: "app.orders", Partitions: 6}, []topics.Option{topics.AddPartitions()}, kmsg.ACLOperationAlter},
		{"describe configs", topics.Topic{Name: "app.audit", Configs: compact}, nil, kmsg.ACLOperationDescribeConfigs},
		{"alter configs", topics.Topic{Name: "app.orders", Configs: compact}, []topics.Option{topics.AlterConfigs()}, kmsg.ACLOperationAlterConfigs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, []topics.Topic{tt.topic}, tt.opts...)
			var te *topics.Error
			if !errors.As(err, &te) || te.Topic != tt.topic.Name || te.Op != tt.op {
				t.Fatalf("want an *Error for %s on %q, got %#v", tt.op, tt.topic.Name, err)
			}
			if kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization {
				t.Fatalf("class %s, want authorization: %v", kafkaproducer.Classify(err), err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tt.topic.Name+`"`) || !strings.Contains(msg, "not authorized to "+tt.op.String()) {
				t.Fatalf("message does not name the topic and %s: %s", tt.op, msg)
			}
			t.Logf("%v: %s", time.Since(start).Round(time.Millisecond), msg)
		})
	}
	// Drift on a topic the principal can read is still reported without
	// any change being asked for.
	rep, err := topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, []topics.Topic{{Name: "app.orders", Partitions: 6}})
	if err != nil || len(rep.Drift) != 1 || rep.Drift[0].WantPartitions != 6 {
		t.Fatalf("%+v %v", rep, err)
	}
}

func TestReadyDenied(t *testing.T) {
	cl := aclCluster(t)
	if err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl, "app.orders"); err != nil {
		t.Fatalf("app.orders: %v", err)
	}
	tests := []struct {
		topic string
		op    kmsg.ACLOperation
		class kafkaproducer.Class
		want  string
	}{
		{"app.audit", kmsg.ACLOperationWrite, kafkaproducer.ClassAuthorization, "not authorized to WRITE"},
		{"other", kmsg.ACLOperationDescribe, kafkaproducer.ClassAuthorization, "not authorized to DESCRIBE"},
		{"app.missing", kmsg.ACLOperationDescribe, kafkaproducer.ClassBadInput, `topic "app.missing" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.topic, func(t *testing.T) {
			err := topics.Ready(testkit.Ctx(t, 5*time.Second), cl, "app.orders", tt.topic)
			var te *topics.Error
			if !errors.As(err, &te) || te.Topic != tt.topic || te.Op != tt.op || kafkaproducer.Classify(err) != tt.class || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want %s on %q (%s, %q), got %v", tt.op, tt.topic, tt.class, tt.want, err)
			}
			t.Log(err)
		})
	}
}

// One refused topic does not hide the others: each refusal names its
// topic, and the rest are still looked at. (kadm's Metadata and
// DescribeTopicConfigs fail a whole call with one unnamed *kadm.AuthError,
// which is why the package asks per topic or builds that request itself.)
func TestEnsureDeniedAmongOthers(t *testing.T) {
	cl := aclCluster(t)
	compact := map[string]string{"cleanup.policy": "compact"}
	rep, err := topics.Ensure(testkit.Ctx(t, 10*time.Second), cl, []topics.Topic{
		{Name: "other"},                                       // DESCRIBE refused
		{Name: "app.audit", Configs: compact},                 // DESCRIBE_CONFIGS refused
		{Name: "app.orders", Partitions: 6, Configs: compact}, // drift, readable
	})
	for topic, op := range map[string]kmsg.ACLOperation{"other": kmsg.ACLOperationDescribe, "app.audit": kmsg.ACLOperationDescribeConfigs} {
		if !strings.Contains(fmt.Sprint(err), fmt.Sprintf("topic %q: not authorized to %s", topic, op)) {
			t.Errorf("no %s refusal for %q in: %v", op, topic, err)
		}
	}
	if kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization {
		t.Errorf("class %s", kafkaproducer.Classify(err))
	}
	if len(rep.Drift) != 1 || rep.Drift[0].Topic != "app.orders" || rep.Drift[0].WantPartitions != 6 || len(rep.Drift[0].Configs) != 1 {
		t.Fatalf("drift of the readable topic: %+v", rep.Drift)
	}
}
