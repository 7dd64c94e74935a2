package kafkatest

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// inProcess is a kfake cluster in the test process. It persists to a
// temporary data dir so that Stop and Restart keep the data, and it
// wraps every connection in a gate so Pause can freeze it.
type inProcess struct {
	ports []int
	dir   string
	opts  []kfake.Opt // given at every start
	gate  *gate

	mu sync.Mutex
	c  *kfake.Cluster // nil while stopped
}

func startInProcess(t testing.TB, cfg *config, sec *security) (*inProcess, error) {
	ip := &inProcess{dir: t.TempDir(), gate: newGate()}
	ip.opts = append([]kfake.Opt{kfake.NumBrokers(cfg.brokers)}, sec.kfakeOpts()...)
	if cfg.autoCreate {
		ip.opts = append(ip.opts, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(int(cfg.partitions)))
	}
	c, err := ip.newCluster()
	if err != nil {
		return nil, fmt.Errorf("start kfake: %w", err)
	}
	for _, a := range c.ListenAddrs() {
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		ip.ports = append(ip.ports, port)
	}
	ip.c = c
	return ip, nil
}

func (ip *inProcess) newCluster() (*kfake.Cluster, error) {
	opts := append(slices.Clone(ip.opts),
		kfake.DataDir(ip.dir),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			ln, err := net.Listen(network, addr)
			if err != nil {
				return nil, err
			}
			return &gatedListener{Listener: ln, g: ip.gate}, nil
		}),
	)
	if len(ip.ports) > 0 {
		opts = append(opts, kfake.Ports(ip.ports...))
	}
	return kfake.NewCluster(opts...)
}

func (ip *inProcess) brokers() []string {
	addrs := make([]string, len(ip.ports))
	for i, p := range ip.ports {
		addrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return addrs
}

func (ip *inProcess) stop(context.Context) error {
	ip.mu.Lock()
	c := ip.c
	ip.c = nil
	ip.mu.Unlock()
	if c != nil {
		c.Close() // persists to the data dir
	}
	return nil
}

func (ip *inProcess) start(context.Context) error {
	c, err := ip.newCluster() // topics come back from the data dir
	if err != nil {
		return fmt.Errorf("restart kfake on ports %v: %w", ip.ports, err)
	}
	ip.mu.Lock()
	ip.c = c
	ip.mu.Unlock()
	return nil
}

func (ip *inProcess) pause(context.Context) error   { ip.gate.close(); return nil }
func (ip *inProcess) unpause(context.Context) error { ip.gate.open(); return nil }

func (ip *inProcess) close(ctx context.Context) error {
	ip.gate.open() // a paused cluster would otherwise hold its connections
	return ip.stop(ctx)
}

// gate blocks reads and writes of every gated connection while closed.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // closed while traffic may flow
}

func newGate() *gate {
	ch := make(chan struct{})
	close(ch)
	return &gate{ch: ch}
}

func (g *gate) wait() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ch
}

func (g *gate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
		g.ch = make(chan struct{})
	default: // already closed
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
}

type gatedListener struct {
	net.Listener
	g *gate
}

func (l *gatedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &gatedConn{Conn: c, g: l.g, done: make(chan struct{})}, nil
}

// gatedConn holds data read from or written to the client while its gate
// is closed, so a paused broker answers nothing but keeps connections
// open. Close releases any held call.
type gatedConn struct {
	net.Conn
	g        *gate
	done     chan struct{}
	doneOnce sync.Once
}

func (c *gatedConn) hold() error {
	select {
	case <-c.g.wait():
		return nil
	case <-c.done:
		return net.ErrClosed
	}
}

func (c *gatedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if herr := c.hold(); herr != nil && err == nil {
		err = herr
	}
	return n, err
}

func (c *gatedConn) Write(b []byte) (int, error) {
	if err := c.hold(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

func (c *gatedConn) Close() error {
	c.doneOnce.Do(func() { close(c.done) })
	return c.Conn.Close()
}
