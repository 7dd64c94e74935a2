package outbox

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"time"

	"github.com/kprod/kprod/kafkaproducer"
	"go.uber.org/zap"
)

// RelayConfig configures a Relay. Every zero field takes the default
// named; Table, DB and Producer are required.
type RelayConfig struct {
	// Table is the outbox to relay, as migrated with Table.Migrate.
	Table Table
	// DB is the database holding it. The relay runs its queries through
	// it (one connection at a time, plus one for the lease); it does not
	// close it.
	DB *sql.DB
	// Producer publishes the rows. The relay does not close it. Its
	// Config.DeliveryTimeout must be set (every preset sets it): it
	// bounds how long one batch, and so Run's return after its ctx
	// ends, can take.
	Producer *kafkaproducer.Producer

	// Owner names this relay in the lease row and in logs. Zero means
	// "<hostname>-<pid>-<random>". Two relays must never share one.
	Owner string
	// BatchSize is the most rows read and sent at once. Zero means 1000.
	BatchSize int
	// PollInterval is how long an idle relay waits before looking for
	// new rows when Wakeup has not woken it. Zero means 20ms without
	// Wakeup (SQLite: polling is the only signal) and 1s with it.
	PollInterval time.Duration
	// Wakeup, when set, blocks until rows may have been added (or ctx
	// ends) and returns nil; the relay then looks at once. An error
	// is logged and Wakeup called again after a second.
	// pgxoutbox.Listener's Wait does this with PostgreSQL LISTEN on the
	// channel Migrate's trigger notifies. It runs on a goroutine of its
	// own that Run starts and waits for.
	Wakeup func(ctx context.Context) error
	// LeaseTTL is how long a relay stays leader without renewing its
	// lease; a crashed leader is replaced after at most this long plus a
	// second. The lease is renewed every LeaseTTL/3; standby relays try
	// to take it every LeaseTTL/3 or every second, whichever is sooner
	// (a leader stopped through Run's ctx releases it, so its successor
	// starts within a second). Zero means 10s; at least 300ms.
	LeaseTTL time.Duration
	// Backoff is the wait after a failed batch or database error before
	// the next try. Zero means 100ms initial, 5s max.
	Backoff kafkaproducer.Backoff
	// StatsInterval is how often the leader counts the rows waiting
	// (Observer.OnBacklog). Zero means 5s; negative disables it.
	StatsInterval time.Duration

	// Observer receives counts for metrics; nil means none. Metrics (see
	// NewMetrics) is one.
	Observer Observer `kprod:"-"`
	// Logger receives leadership changes, failed batches and dead
	// letters. Zero means the producer's Config.Logger.
	Logger *zap.Logger `kprod:"-"`
	// Now is the clock for lag figures. Zero means time.Now. Leases are
	// timed by the database's clock.
	Now func() time.Time `kprod:"-"`
}

func (c *RelayConfig) defaults() error {
	if err := c.Table.validate(); err != nil {
		return err
	}
	if c.DB == nil {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.DB", Reason: "required: the *sql.DB holding the outbox"}
	}
	if c.Producer == nil {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.Producer", Reason: "required: the producer that publishes the rows"}
	}
	if c.Producer.Config().DeliveryTimeout <= 0 {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.Producer / Config.DeliveryTimeout", Reason: "the relay needs a producer with a DeliveryTimeout (every preset sets one), or a Kafka outage could hold a batch, and Run, forever"}
	}
	if c.Owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.BatchSize < 0 || c.BatchSize > 100_000 {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.BatchSize", Reason: "must be 1 to 100,000"}
	}
	if c.PollInterval == 0 {
		c.PollInterval = 20 * time.Millisecond
		if c.Wakeup != nil {
			c.PollInterval = time.Second
		}
	}
	if c.PollInterval < 0 {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.PollInterval", Reason: "must not be negative"}
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 10 * time.Second
	}
	if c.LeaseTTL < 300*time.Millisecond {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.LeaseTTL", Reason: "must be at least 300ms (it is renewed every LeaseTTL/3)"}
	}
	if c.Backoff.Initial <= 0 {
		c.Backoff.Initial = 100 * time.Millisecond
	}
	if c.Backoff.Max <= 0 {
		c.Backoff.Max = 5 * time.Second
	}
	if c.Backoff.Max < c.Backoff.Initial {
		return &kafkaproducer.ConfigError{Field: "RelayConfig.Backoff.Max / Backoff.Initial", Reason: "Max must not be less than Initial"}
	}
	if c.StatsInterval == 0 {
		c.StatsInterval = 5 * time.Second
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	if c.Logger == nil {
		c.Logger = c.Producer.Config().Logger
		if c.Logger == nil {
			c.Logger = zap.NewNop()
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}
