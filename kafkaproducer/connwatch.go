package kafkaproducer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"
)

// ConnError reports that the producer cannot authenticate or establish
// TLS with a broker: wrong credentials, an untrusted certificate, a
// plaintext client at a TLS listener. Retrying does not fix it, so kprod
// fails the buffered records with it (ClassAuthorization) instead of
// letting them wait for the delivery timeout.
type ConnError struct {
	Broker string // host:port
	Err    error
}

func (e *ConnError) Error() string {
	return fmt.Sprintf("kprod: cannot connect to broker %s: %v", e.Broker, e.Err)
}

func (e *ConnError) Unwrap() error { return e.Err }

// connWatch is a franz-go hook that notices connections failing for
// reasons no retry fixes. When every broker it has heard from is failing
// that way (wrong credentials, an untrusted certificate, plaintext at a
// TLS listener), no record can be delivered, so it fails the buffered
// records with the cause at once, from a goroutine it owns (hooks must not
// block). One bad broker among good ones fails nothing: records for it
// wait for the delivery timeout like any outage.
type connWatch struct {
	p    *Producer
	last atomic.Pointer[ConnError]
	// lastDial is the latest failed connection attempt of any kind,
	// until one succeeds: what a caller who stopped waiting is told.
	lastDial atomic.Pointer[ConnError]

	mu      sync.Mutex
	state   map[string]bool // broker -> failing for a reason retries cannot fix
	drops   map[string]int  // broker -> connections dropped during SASL in a row
	running bool
	stopped bool
	wg      sync.WaitGroup
}

// saslDropsToFail is how many connections in a row a broker may drop
// during SASL before kprod calls it an authentication failure. Kafka
// answers bad credentials with SASL_AUTHENTICATION_FAILED, which fails at
// once; some brokers (kfake among them) just hang up, which a restarting
// broker can also do once or twice.
const saslDropsToFail = 3

var _ kgo.HookBrokerConnect = (*connWatch)(nil)

func (w *connWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	broker := net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port))
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == nil {
		w.state, w.drops = map[string]bool{}, map[string]int{}
	}
	if err == nil {
		w.state[broker], w.drops[broker] = false, 0
		w.last.Store(nil)
		w.lastDial.Store(nil)
		return
	}
	w.lastDial.Store(&ConnError{Broker: broker, Err: err})
	// conn is set when the TCP (and TLS) connection worked and the
	// broker hung up during ApiVersions or SASL.
	if conn != nil && w.p.cfg.SASL != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		w.drops[broker]++
		if n := w.drops[broker]; n >= saslDropsToFail {
			err = fmt.Errorf("%w: the broker closed %d connections in a row during SASL %v (%w): check the credentials", ErrAuthFailed, n, w.p.cfg.SASL, err)
		}
	}
	if Classify(err) != ClassAuthorization {
		return
	}
	w.state[broker] = true
	for _, failing := range w.state {
		if !failing {
			return // another broker still takes our connections
		}
	}
	ce := &ConnError{Broker: broker, Err: err}
	w.last.Store(ce)
	if w.stopped || w.running {
		return
	}
	w.running = true
	w.p.log.Error("no broker accepts this producer's connections, for a reason retries cannot fix; failing buffered records",
		zap.String("broker", broker), zap.Stringer("sasl", w.p.cfg.SASL), zap.Stringer("tls", w.p.cfg.TLS), zap.Error(err))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		// No deadline: franz-go documents that quitting this wait
		// early can leave the client inconsistent. Close ends it by
		// closing the client, which fails what is left.
		_ = w.p.cl.AbortBufferedRecords(context.Background())
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()
}

// stop keeps new aborts from starting and waits for a running one; call
// after closing the client.
func (w *connWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.wg.Wait()
}
