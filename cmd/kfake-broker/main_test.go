package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(tt.args, nil, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%v) = %v, want an error mentioning %q", tt.args, err, tt.want)
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
			stop, done := make(chan os.Signal, 1), make(chan error, 1)
			listening := make(chan struct{})
			go func() { done <- run(args, stop, closeOnWrite(listening)) }()
			select {
			case <-listening:
			case err := <-done:
				t.Fatalf("run: %v", err)
			}
			defer func() {
				stop <- syscall.SIGTERM
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
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
