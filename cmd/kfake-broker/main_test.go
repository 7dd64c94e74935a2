package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no port", []string{"-listen", "127.0.0.1"}, "-listen"},
		{"port zero", []string{"-listen", "127.0.0.1:0"}, "fixed port"},
		{"bad level", []string{"-log-level", "loud"}, "-log-level"},
		{"bad advertise", []string{"-listen", "127.0.0.1:9", "-advertise", "nohost"}, "-advertise"},
		{"unknown flag", []string{"-nope"}, "not defined"},
		{"no brokers", []string{"-brokers", "0"}, "-brokers"},
		{"ports past 65535", []string{"-listen", "127.0.0.1:65535", "-brokers", "2"}, "-listen"},
		{"advertise count", []string{"-brokers", "3", "-advertise", "h:1,h:2"}, "one per broker"},
		{"advertise base past 65535", []string{"-brokers", "2", "-advertise", "h:65535"}, "-advertise"},
		{"advertise list entry", []string{"-brokers", "2", "-advertise", "h:1,nohost"}, "-advertise"},
		{"advertise list port", []string{"-brokers", "2", "-advertise", "h:1,h:abc"}, "port must be"},
		{"advertise list port range", []string{"-brokers", "2", "-advertise", "h:1,h:70000"}, "port must be"},
		{"cert without key", []string{"-tls-cert", "c.pem"}, "-tls-key"},
		{"missing cert", []string{"-tls-cert", "/nonexistent/c.pem", "-tls-key", "/nonexistent/k.pem"}, "-tls-cert"},
		{"sasl mechanism", []string{"-sasl", "GSSAPI:u:secret-pw"}, "mechanism"},
		{"sasl no password", []string{"-sasl", "PLAIN:u:"}, "MECHANISM:USER:PASS"},
		{"sasl no user", []string{"-sasl", "PLAIN:secret-pw"}, "MECHANISM:USER:PASS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tt.args, nil, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%v) = %v, want an error mentioning %q", tt.args, err, tt.want)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Fatalf("run(%v) = %v: the error repeats the password", tt.args, err)
			}
		})
	}
}

// TestRunServesAndPersists starts the broker with a data dir, writes a
// record, stops it, starts it again on the same port and reads the record
// back, advertised under the address given.
func TestRunServesAndPersists(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	args := []string{"-listen", addr, "-advertise", "localhost:" + strconv.Itoa(port), "-topics", "a,b", "-partitions", "2", "-data-dir", dir}

	start := func() (chan os.Signal, chan error) {
		stop := make(chan os.Signal, 1)
		done := make(chan error, 1)
		go func() { done <- run(args, stop, &bytes.Buffer{}) }()
		return stop, done
	}
	halt := func(stop chan os.Signal, done chan error) {
		stop <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stop, done := start()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.Close()
	halt(stop, done)

	stop, done = start()
	defer halt(stop, done)
	cl, err = kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("a"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollRecords(ctx, 1)
	if err := fs.Err0(); err != nil {
		t.Fatalf("consume after restart: %v", err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("after restart read %d records, want the one written before", len(recs))
	}
	brokers, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer brokers.Close()
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, brokers)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 1 || meta.Brokers[0].Host != "localhost" || meta.Brokers[0].Port != int32(port) {
		t.Fatalf("advertised brokers %+v, want localhost:%d", meta.Brokers, port)
	}
}

// TestRunBare starts the broker without -topics: it has none, a topic
// created without a count gets -partitions, and a metadata request that
// asks for auto-creation creates a topic only with -auto-create-topics.
func TestRunBare(t *testing.T) {
	for _, auto := range []bool{false, true} {
		t.Run("auto-create="+strconv.FormatBool(auto), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			args := []string{"-listen", addr, "-partitions", "4"}
			if auto {
				args = append(args, "-auto-create-topics")
			}
			serve(t, args)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()

			all, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl) // nil topics: every topic
			if err != nil {
				t.Fatal(err)
			}
			if len(all.Topics) != 0 {
				t.Fatalf("a bare broker lists %d topics", len(all.Topics))
			}

			create := kmsg.NewPtrCreateTopicsRequest()
			ct := kmsg.NewCreateTopicsRequestTopic()
			ct.Topic, ct.NumPartitions, ct.ReplicationFactor = "made", -1, -1
			create.Topics = append(create.Topics, ct)
			cresp, err := create.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if len(cresp.Topics) != 1 || cresp.Topics[0].ErrorCode != 0 || cresp.Topics[0].NumPartitions != 4 {
				t.Fatalf("create with the broker's count: %+v %v", cresp, err)
			}

			meta := kmsg.NewPtrMetadataRequest()
			mt := kmsg.NewMetadataRequestTopic()
			mt.Topic = kmsg.StringPtr("asked")
			meta.Topics = append(meta.Topics, mt)
			meta.AllowAutoTopicCreation = true
			resp, err := meta.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Topics) != 1 {
				t.Fatalf("metadata answered %d topics", len(resp.Topics))
			}
			created := resp.Topics[0].ErrorCode == 0
			if created != auto || (auto && len(resp.Topics[0].Partitions) != 4) {
				t.Fatalf("auto-create %v: topic created %v with %d partitions", auto, created, len(resp.Topics[0].Partitions))
			}
		})
	}
}

// serve runs the broker with args until the test ends and returns once
// it listens, with the line it printed.
func serve(t *testing.T, args []string) string {
	t.Helper()
	stop, done := make(chan os.Signal, 1), make(chan error, 1)
	var out bytes.Buffer
	listening := make(chan struct{})
	go func() { done <- run(args, stop, io.MultiWriter(&out, closeOnWrite(listening))) }()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	t.Cleanup(func() {
		stop <- syscall.SIGTERM
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return out.String()
}

// closeOnWrite is a writer that closes ch on its first write: run's
// listening line.
type closeOnWrite chan struct{}

func (c closeOnWrite) Write(p []byte) (int, error) {
	select {
	case <-c:
	default:
		close(c)
	}
	return len(p), nil
}

// TestRunSecuredBrokers starts three brokers with TLS and two SASL users:
// each broker advertises its own address (a list here, as kafkatest's
// container backend passes), clients with either user produce over
// SASL_SSL, and clients without TLS or without credentials get nowhere.
func TestRunSecuredBrokers(t *testing.T) {
	ports := freeConsecutivePorts(t, 3)
	dir := t.TempDir()
	certFile, keyFile, roots := writeCert(t, dir)
	var advertised []string
	for i := range 3 {
		advertised = append(advertised, "localhost:"+strconv.Itoa(ports[0]+i))
	}
	args := []string{
		"-listen", "127.0.0.1:" + strconv.Itoa(ports[0]), "-brokers", "3",
		"-advertise", strings.Join(advertised, ","),
		"-tls-cert", certFile, "-tls-key", keyFile,
		"-sasl", "SCRAM-SHA-512:alice:a:pass:with:colons",
		"-sasl", "plain:bob:bob-secret",
		"-topics", "t", "-partitions", "6",
	}
	line := serve(t, args)
	if strings.Contains(line, "pass:with") || strings.Contains(line, "bob-secret") {
		t.Fatalf("the listening line shows a password: %q", line)
	}
	if !strings.Contains(line, "advertised "+strings.Join(advertised, ",")) || !strings.Contains(line, "tls") {
		t.Fatalf("listening line %q: want every advertised address and tls", line)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	seed := kgo.SeedBrokers("127.0.0.1:" + strconv.Itoa(ports[1]))
	tlsCfg := kgo.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})
	tests := []struct {
		name string
		opts []kgo.Opt
		ok   bool
	}{
		{"scram-512", []kgo.Opt{tlsCfg, kgo.SASL(scram.Auth{User: "alice", Pass: "a:pass:with:colons"}.AsSha512Mechanism())}, true},
		{"plain", []kgo.Opt{tlsCfg, kgo.SASL(plain.Auth{User: "bob", Pass: "bob-secret"}.AsMechanism())}, true},
		{"wrong password", []kgo.Opt{tlsCfg, kgo.SASL(plain.Auth{User: "bob", Pass: "nope"}.AsMechanism())}, false},
		{"no credentials", []kgo.Opt{tlsCfg}, false},
		{"no tls", []kgo.Opt{kgo.SASL(plain.Auth{User: "bob", Pass: "bob-secret"}.AsMechanism())}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := kgo.NewClient(append(tt.opts, seed, kgo.DefaultProduceTopic("t"), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if !tt.ok {
				pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
				defer pcancel()
				if err := cl.Ping(pctx); err == nil {
					t.Fatal("reached the cluster")
				}
				return
			}
			meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range meta.Brokers {
				got = append(got, net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))))
			}
			slices.Sort(got)
			if !slices.Equal(got, advertised) {
				t.Fatalf("advertised brokers %v, want %v", got, advertised)
			}
			// Every broker answers at its advertised address, over
			// TLS and SASL (kfake picks partition leaders at random,
			// so a produce alone might not reach all three).
			for _, br := range meta.Brokers {
				if _, err := cl.Broker(int(br.NodeID)).Request(ctx, kmsg.NewPtrApiVersionsRequest()); err != nil {
					t.Fatalf("broker %d at %s:%d: %v", br.NodeID, br.Host, br.Port, err)
				}
			}
			var recs []*kgo.Record
			for i := range 12 {
				recs = append(recs, &kgo.Record{Partition: int32(i % 6), Value: []byte("v")})
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
		})
	}
}

// freeConsecutivePorts finds n consecutive loopback ports that were free
// a moment ago.
func freeConsecutivePorts(t *testing.T, n int) []int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{ln}
		for i := 1; i < n; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if len(lns) == n {
			ports := make([]int, n)
			for i := range ports {
				ports[i] = base + i
			}
			return ports
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return nil
}

// writeCert writes a self-signed certificate for localhost and 127.0.0.1
// and its key as PEM files and returns them with a pool trusting it.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake-broker test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func TestParseListeners(t *testing.T) {
	tests := []struct {
		name              string
		listen, advertise string
		n                 int
		wantListen, want  []string
	}{
		{"one", "0.0.0.0:9092", "127.0.0.1:40000", 1, []string{"0.0.0.0:9092"}, []string{"127.0.0.1:40000"}},
		{"default advertise", "127.0.0.1:9092", "", 2, []string{"127.0.0.1:9092", "127.0.0.1:9093"}, []string{"127.0.0.1:9092", "127.0.0.1:9093"}},
		{"base", "0.0.0.0:9092", "localhost:40000", 3, []string{"0.0.0.0:9092", "0.0.0.0:9093", "0.0.0.0:9094"}, []string{"localhost:40000", "localhost:40001", "localhost:40002"}},
		{"list", "0.0.0.0:9092", "h:5,h:3,g:9", 3, []string{"0.0.0.0:9092", "0.0.0.0:9093", "0.0.0.0:9094"}, []string{"h:5", "h:3", "g:9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := parseListeners(tt.listen, tt.advertise, tt.n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(l.listenAddrs, tt.wantListen) || !slices.Equal(l.advertised, tt.want) {
				t.Fatalf("listen %v advertised %v, want %v and %v", l.listenAddrs, l.advertised, tt.wantListen, tt.want)
			}
		})
	}
}
