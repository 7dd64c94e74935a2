package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestJudge checks the checker's arithmetic on a claims log and a read-back
// with one of each anomaly.
func TestJudge(t *testing.T) {
	tests := []struct {
		name  string
		path  string
		log   string
		read  []readRec
		check func(t *testing.T, r Report)
	}{
		{
			name: "plain",
			path: "reliable",
			log: `start 0 path=reliable
intent 0.0 k=k0
intent 0.1 k=k0
intent 0.2 k=k1
intent 0.3 k=k1
intent 0.4 k=k1
ack 0.0 p=0 o=0
ack 0.1 p=0 o=1
fail 0.2 class=timeout amb=true err="x"
ack 0.3 p=1 o=1
intent 0.5 k=k0
end 0`,
			read: []readRec{
				{id: "0.1", key: "k0", partition: 0, offset: 0, topic: "chaos"},
				{id: "0.0", key: "k0", partition: 0, offset: 1, topic: "chaos"},
				{id: "0.2", key: "k1", partition: 1, offset: 0, topic: "chaos"},
				{id: "0.2", key: "k1", partition: 1, offset: 1, topic: "chaos"},
				{id: "0.4", key: "k1", partition: 1, offset: 2, topic: "chaos"},
				{id: "0.4", key: "k1", partition: 1, offset: 3, topic: "chaos"},
				{id: "9.9", key: "k1", partition: 1, offset: 4, topic: "chaos"},
			},
			check: func(t *testing.T, r Report) {
				want := [...]int{6, 3, 1, 2, 1, 1, 1, 1, 1, 7, 5}
				got := [...]int{r.Sent, r.Acked, r.Failed, r.NoOutcome, r.Lost, r.DupExplained, r.DupUnexplained, r.Reordered, r.Unlogged, r.Read, r.Distinct}
				if got != want {
					t.Fatalf("sent, acked, failed, no outcome, lost, dup explained, dup unexplained, reordered, unlogged, read, distinct:\ngot  %v\nwant %v", got, want)
				}
				if r.Kept {
					t.Fatal("a lost acknowledged record kept the promise")
				}
			},
		},
		{
			name: "txn",
			path: "txn",
			log: `begin 0.t0 ids=0.0,0.1
commit 0.t0
begin 0.t1 ids=0.2,0.3
abort 0.t1 class=timeout err="x"
begin 0.t2 ids=0.4,0.5
commit 0.t2`,
			read: []readRec{
				{id: "0.0", key: "k0", topic: "chaos"},
				{id: "0.1", key: "k1", offset: 1, topic: "chaos"},
				{id: "0.2", key: "k0", offset: 2, topic: "chaos"},
				{id: "0.4", key: "k0", offset: 3, topic: "chaos"},
			},
			check: func(t *testing.T, r Report) {
				if r.AbortedReads != 1 || r.TornTransactions != 2 || r.Lost != 1 || r.Acked != 4 || r.Failed != 2 || r.Kept {
					t.Fatalf("got %+v", r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "claims.log")
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(tt.log, "\t", "")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			ids, txns, inSpool, err := parseLog(p)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, judge(tt.path, ids, txns, inSpool, tt.read))
		})
	}
}
