// Package pgxoutbox connects package outbox to pgx (github.com/jackc/pgx/v5)
// where database/sql does not reach: Tx adds rows through a pgx.Tx, and
// Listener wakes a relay with PostgreSQL LISTEN/NOTIFY as soon as rows are
// committed, instead of waiting for its next poll.
//
//	err := tbl.Add(ctx, pgxoutbox.Tx(tx), rec)           // tx is a pgx.Tx
//
//	l := pgxoutbox.NewListener(connString, tbl)
//	defer l.Close()
//	relay, err := outbox.NewRelay(outbox.RelayConfig{..., Wakeup: l.Wait})
//
// A Listener is safe for concurrent use, but one Wait at a time is what a
// relay makes; Tx's adapter is as safe as the pgx.Tx it wraps (which is not).
package pgxoutbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/kprod/kprod/outbox"
)

// Execer is the part of pgx.Tx (and pgx.Conn, pgxpool.Pool) Tx needs.
type Execer interface {
	Exec(ctx context.Context, sql string, arguments ...any) (pgconn.CommandTag, error)
}

// Tx adapts a pgx transaction (or anything with pgx's Exec) to
// outbox.Execer, for Table.Add and outbox.AddTyped.
func Tx(tx Execer) outbox.Execer { return execer{tx} }

type execer struct{ tx Execer }

func (e execer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	tag, err := e.tx.Exec(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return result(tag.RowsAffected()), nil
}

type result int64

func (r result) LastInsertId() (int64, error) {
	return 0, errors.New("pgxoutbox: LastInsertId is not supported")
}
func (r result) RowsAffected() (int64, error) { return int64(r), nil }

// Listener holds one pgx connection that LISTENs on the channel
// Table.Migrate's trigger notifies (the table's name without its schema).
// It connects on the first Wait and reconnects after an error.
type Listener struct {
	connString string
	channel    string

	mu      sync.Mutex
	conn    *pgx.Conn // used by one Wait at a time, never under mu
	waiting bool
	closed  bool
	cancel  context.CancelFunc // ends the running Wait
}

// NewListener returns a Listener for t on the database at connString (a
// pgx connection string or URL). It does not connect yet.
func NewListener(connString string, t outbox.Table) *Listener {
	name := t.Name
	if name == "" {
		name = outbox.DefaultTable
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return &Listener{connString: connString, channel: name}
}

var errClosed = errors.New("pgxoutbox: listener closed")

// Wait blocks until a notification arrives (nil), ctx ends (ctx's error)
// or the connection fails (its error; the next Wait reconnects). Right
// after (re)connecting it returns nil at once, since rows may have been
// committed before LISTEN took effect. Use it as
// outbox.RelayConfig.Wakeup; one Wait runs at a time.
func (l *Listener) Wait(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	l.mu.Lock()
	if l.closed || l.waiting {
		l.mu.Unlock()
		if l.closed {
			return errClosed
		}
		return errors.New("pgxoutbox: Wait is already running")
	}
	l.waiting, l.cancel = true, cancel
	conn := l.conn
	l.mu.Unlock()

	err := l.wait(ctx, &conn)

	l.mu.Lock()
	l.waiting, l.cancel = false, nil
	if l.closed && conn != nil {
		_ = conn.Close(context.Background())
		conn = nil
	}
	l.conn = conn
	l.mu.Unlock()
	return err
}

// wait connects if *conn is nil, else waits for a notification; it sets
// *conn to nil when the connection is broken.
func (l *Listener) wait(ctx context.Context, conn **pgx.Conn) error {
	if *conn == nil {
		c, err := pgx.Connect(ctx, l.connString)
		if err != nil {
			return fmt.Errorf("pgxoutbox: connect: %w", err)
		}
		if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
			_ = c.Close(context.Background())
			return fmt.Errorf("pgxoutbox: listen: %w", err)
		}
		*conn = c
		return nil
	}
	_, err := (*conn).WaitForNotification(ctx)
	if err != nil && ctx.Err() == nil {
		_ = (*conn).Close(context.Background())
		*conn = nil
		return fmt.Errorf("pgxoutbox: wait: %w", err)
	}
	if err != nil && (*conn).IsClosed() {
		*conn = nil
	}
	return err
}

// Close ends a running Wait and closes the connection; later Waits fail.
func (l *Listener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.waiting {
		l.cancel() // Wait closes the connection as it returns
		return nil
	}
	if l.conn != nil {
		err := l.conn.Close(context.Background())
		l.conn = nil
		return err
	}
	return nil
}
