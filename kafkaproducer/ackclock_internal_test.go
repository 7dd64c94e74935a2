package kafkaproducer

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAckClock: only successful produce responses move the clock, it
// never goes back, and a record sent after the last response read falls
// back to reading the time.
func TestAckClock(t *testing.T) {
	a := &ackClock{epoch: time.Now().Add(-time.Second)}
	read := func(key int16, err error) { a.OnBrokerRead(kgo.BrokerMetadata{}, key, 100, 0, 0, err) }
	read(3, nil)                 // metadata
	read(0, errors.New("reset")) // a failed read
	if got := a.last.Load(); got != 0 {
		t.Fatalf("non-produce or failed reads moved the clock to %d", got)
	}
	read(0, nil)
	last := a.last.Load()
	if last < int64(time.Second) {
		t.Fatalf("last = %v, want at least the second since epoch", time.Duration(last))
	}
	a.last.Store(last + int64(time.Hour)) // a later read by another connection
	read(0, nil)                          // computed earlier, stored after: ignored
	if got := a.last.Load(); got != last+int64(time.Hour) {
		t.Fatalf("the clock went back to %v", time.Duration(got))
	}
	if got := a.since(last); got != time.Hour {
		t.Fatalf("since(a send before the last read) = %v, want the hour up to it", got)
	}
	b := &ackClock{epoch: time.Now()}
	start := int64(time.Since(b.epoch))
	time.Sleep(20 * time.Millisecond)
	if got := b.since(start); got < 20*time.Millisecond || got > 10*time.Second {
		t.Fatalf("since with no response read = %v, want the time since the send", got)
	}
}
