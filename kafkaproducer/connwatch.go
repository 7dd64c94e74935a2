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
// reasons no retry fixes. On the first such failure since the last good
// connection it fails every buffered record with the cause, from a
// goroutine it owns (hooks must not block).
type connWatch struct {
	p         *Producer
	last      atomic.Pointer[ConnError]
	running   atomic.Bool
	wg        sync.WaitGroup
	initFails atomic.Int32 // connections dropped by the broker during SASL, in a row
}

// saslDropsToFail is how many connections in a row a broker may drop
// during SASL before kprod calls it an authentication failure. Kafka
// answers bad credentials with SASL_AUTHENTICATION_FAILED, which fails at
// once; some brokers (kfake among them) just hang up, which a restarting
// broker can also do once or twice.
const saslDropsToFail = 3

var _ kgo.HookBrokerConnect = (*connWatch)(nil)

func (w *connWatch) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	if err == nil {
		w.last.Store(nil)
		w.initFails.Store(0)
		return
	}
	// conn is set when the TCP (and TLS) connection worked and the
	// broker hung up during ApiVersions or SASL.
	if conn != nil && w.p.cfg.SASL != nil && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		if n := w.initFails.Add(1); n >= saslDropsToFail {
			err = fmt.Errorf("%w: the broker closed %d connections in a row during SASL %v (%w): check the credentials", ErrAuthFailed, n, w.p.cfg.SASL, err)
		}
	}
	if Classify(err) != ClassAuthorization {
		return
	}
	ce := &ConnError{Broker: net.JoinHostPort(meta.Host, fmt.Sprint(meta.Port)), Err: err}
	w.last.Store(ce)
	if w.p.closing.Load() || !w.running.CompareAndSwap(false, true) {
		return
	}
	w.p.log.Error("broker connection refused for a reason retries cannot fix; failing buffered records",
		zap.String("broker", ce.Broker), zap.Stringer("sasl", w.p.cfg.SASL), zap.Stringer("tls", w.p.cfg.TLS), zap.Error(err))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer w.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.p.cl.AbortBufferedRecords(ctx)
	}()
}
