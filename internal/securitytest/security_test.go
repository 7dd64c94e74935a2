package securitytest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/internal/testkit"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/txn"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const password = "pw-7f3a-never-print"

func allow(res kmsg.ACLResourceType, name string, op kmsg.ACLOperation) kfake.ACL {
	return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: op, Allow: true}
}

// cluster has one user, "svc", who may write orders, audit.DLT and the
// transactional ID "granted", and nothing else.
func cluster(t *testing.T) *kfake.Cluster {
	return testkit.Cluster(t, []string{"orders", "audit", "audit.DLT", "secret", "secret.DLT"},
		kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"),
		kfake.User("SCRAM-SHA-256", "svc", password,
			allow(kmsg.ACLResourceTypeTopic, "orders", kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeTopic, "audit.DLT", kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeTopic, "*", kmsg.ACLOperationDescribe),
			allow(kmsg.ACLResourceTypeCluster, "kafka-cluster", kmsg.ACLOperationIdempotentWrite),
			allow(kmsg.ACLResourceTypeTransactionalId, "granted", kmsg.ACLOperationWrite),
			allow(kmsg.ACLResourceTypeTransactionalId, "granted", kmsg.ACLOperationDescribe),
		),
	)
}

func config(c *kfake.Cluster) kafkaproducer.Config {
	cfg := presets.Reliable()
	cfg.Brokers = c.ListenAddrs()
	cfg.ClientID = "security-test"
	cfg.SASL = &kafkaproducer.SASLConfig{Mechanism: kafkaproducer.SASLScramSHA256, Username: "svc", Password: kafkaproducer.Secret(password)}
	return cfg
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestTransactionalIDACL: without an ACL on its transactional ID the
// transactional producer fails in New, clearly and as authorization.
func TestTransactionalIDACL(t *testing.T) {
	c := cluster(t)
	start := time.Now()
	p, err := txn.New(config(c), txn.Config{ID: "not-granted"})
	if err == nil {
		_ = p.Close(context.Background())
		t.Fatal("txn.New succeeded without a transactional-ID ACL")
	}
	if kafkaproducer.Classify(err) != kafkaproducer.ClassAuthorization || !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("want TRANSACTIONAL_ID_AUTHORIZATION_FAILED as authorization, got %v (%v)", err, kafkaproducer.Classify(err))
	}
	if strings.Contains(err.Error(), password) {
		t.Fatal("the error shows the password")
	}
	t.Logf("refused in %v: %v", time.Since(start).Round(time.Millisecond), err)

	ok, err := txn.New(config(c), txn.Config{ID: "granted"})
	if err != nil {
		t.Fatalf("with the ACL: %v", err)
	}
	defer ok.Close(context.Background())
	if err := ok.Run(ctx(t), func(ctx context.Context, tx *txn.Tx) error {
		_, err := tx.Send(ctx, kafkaproducer.Record{Topic: "orders", Value: []byte("paid")})
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestDeniedTopicWaitsForItsGrant: TOPIC_AUTHORIZATION_FAILED is the
// operator's problem for that topic, not the record's: dlq spools the
// record for its own topic (never its dead-letter topic, even when that
// one is writable; dlq's tests replay it once the ACL allows). The error
// is a non-retriable authorization failure and carries no credential.
func TestDeniedTopicWaitsForItsGrant(t *testing.T) {
	c := cluster(t)
	p, err := kafkaproducer.New(config(c))
	if err != nil {
		t.Fatal(err)
	}
	d, err := dlq.New(p, dlq.Config{SpoolDir: t.TempDir(), SpringHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())

	for _, topic := range []string{"audit", "secret"} { // audit.DLT is writable, secret.DLT is not
		res, err := d.Send(ctx(t), kafkaproducer.Record{Topic: topic, Key: []byte("k"), Value: []byte("v")})
		if err != nil || res.Disposition != dlq.Spooled || res.DeadLetter != nil {
			t.Fatalf("denied topic %s: want the spool, got %v %v", topic, res.Disposition, err)
		}
		if kafkaproducer.Classify(res.Attempt.Err) != kafkaproducer.ClassAuthorization || kafkaproducer.IsRetriable(res.Attempt.Err) {
			t.Fatalf("attempt error %v should be non-retriable authorization", res.Attempt.Err)
		}
		if msg := res.Attempt.Err.Error(); strings.Contains(msg, password) {
			t.Fatalf("attempt error carries the password: %s", msg)
		}
	}
	if st := d.Stats(); st.Spooled != 2 || st.DeadLettered != 0 {
		t.Fatalf("stats %+v: want 2 spooled, 0 dead-lettered", st)
	}
}
