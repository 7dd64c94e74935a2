// Command orders is an order service using a transactional outbox: each
// order row and its OrderPlaced event are written in one database
// transaction, and a relay publishes the events to Kafka.
//
//	go run ./examples/orders                                   # from outbox/: SQLite + embedded kfake
//	go run ./examples/orders --brokers host:9092               # a real cluster
//	go run ./examples/orders --pg postgres://user@host/db      # PostgreSQL instead of SQLite
//
// It places orders (one in ten is rejected and its transaction rolled
// back) while a relay runs in a child process, kills that relay with
// SIGKILL halfway, places the rest while no relay runs, starts a new
// relay, and then reads the topic back: every committed order's event
// is there (a duplicate only with a record ID already seen), no rejected
// order's event is, and each customer's events are in order. It exits 0
// when that holds. With no --brokers it starts kfake in-process; with no
// --pg the database is a SQLite file in a temporary directory, so it needs
// neither Kafka nor a database installed. It creates its topic with
// topics.Ensure.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
	"github.com/kprod/kprod/outbox"
	"github.com/kprod/kprod/outbox/pgxoutbox"
	"github.com/kprod/kprod/presets"
	"github.com/kprod/kprod/topics"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

const topic = "orders.events"

// OrderPlaced is the event each committed order publishes.
type OrderPlaced struct {
	OrderID  int    `json:"order_id"`
	Customer string `json:"customer"`
	Seq      int    `json:"seq"` // the customer's nth order
	Total    int    `json:"total_cents"`
}

func main() {
	brokers := flag.String("brokers", "", "comma-separated bootstrap brokers; empty starts an in-process kfake cluster")
	pg := flag.String("pg", "", "PostgreSQL URL; empty uses a SQLite file in a temporary directory")
	dbPath := flag.String("db", "", "SQLite file (default: in a temporary directory)")
	orders := flag.Int("orders", 2000, "orders to place")
	child := flag.Bool("relay-child", false, "run only a relay (the example starts itself this way)")
	flag.Parse()
	var err error
	if *child {
		err = runRelayChild(*brokers, *pg, *dbPath)
	} else {
		err = run(*brokers, *pg, *dbPath, *orders)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// store is the service's database: its own orders table and the outbox.
type store struct {
	db  *sql.DB
	tbl outbox.Table
	pg  string
}

func openStore(pg, path string) (*store, error) {
	if pg != "" {
		db, err := sql.Open("pgx", pg)
		if err != nil {
			return nil, err
		}
		return &store{db: db, tbl: outbox.Table{Name: "orders_outbox", Dialect: outbox.Postgres}, pg: pg}, nil
	}
	// WAL lets the relay read while the service writes; _txlock=immediate
	// makes every transaction take the write lock first, so two never
	// deadlock upgrading a read lock.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	return &store{db: db, tbl: outbox.Table{Name: "orders_outbox", Dialect: outbox.SQLite}}, nil
}

func (s *store) ph(i int) string {
	if s.tbl.Dialect == outbox.Postgres {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

func newProducer(addrs []string) (*kafkaproducer.Producer, error) {
	cfg := presets.Reliable()
	cfg.Brokers = addrs
	cfg.ClientID = "orders-outbox-relay"
	return kafkaproducer.New(cfg)
}

func run(brokers, pg, dbPath string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("start embedded kfake: %w", err)
		}
		defer c.Close()
		addrs = c.ListenAddrs()
		fmt.Printf("embedded kfake cluster at %s\n", strings.Join(addrs, ","))
	}
	if pg == "" && dbPath == "" {
		dir, err := os.MkdirTemp("", "orders-outbox")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "orders.db")
	}
	s, err := openStore(pg, dbPath)
	if err != nil {
		return err
	}
	defer s.db.Close()
	if err := s.tbl.Migrate(ctx, s.db); err != nil {
		return err
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS orders", // a fresh run each time
		"CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, seq INTEGER NOT NULL, total_cents INTEGER NOT NULL)",
		"DELETE FROM " + s.tbl.Name,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return err
		}
	}

	p, err := newProducer(addrs)
	if err != nil {
		return err
	}
	defer func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = p.Close(cctx)
	}()
	if _, err := topics.Ensure(ctx, p.Client(), []topics.Topic{{Name: topic, Partitions: 3}}); err != nil {
		return err
	}
	events, err := kafkaproducer.NewTyped[string, OrderPlaced](p, kafkaproducer.StringSerializer{}, kafkaproducer.JSON[OrderPlaced]())
	if err != nil {
		return err
	}

	// Relay 1 in its own process, so it can really be killed.
	relay1, err := startChild(addrs, pg, dbPath)
	if err != nil {
		return err
	}
	defer func() {
		if relay1.ProcessState == nil {
			_ = relay1.Process.Kill()
			_, _ = relay1.Process.Wait()
		}
	}()
	fmt.Printf("relay 1 running (pid %d)\n", relay1.Process.Pid)

	seqs := map[string]int{}
	placed, rejected := 0, 0
	for i := 1; i <= n; i++ {
		if i == n/2 {
			_ = relay1.Process.Signal(syscall.SIGKILL)
			_, _ = relay1.Process.Wait()
			fmt.Printf("relay 1 killed with SIGKILL after %d orders; %d events waiting in the outbox\n", i-1, count(ctx, s))
		}
		ok, err := placeOrder(ctx, s, events, i, seqs)
		if err != nil {
			return err
		}
		if ok {
			placed++
		} else {
			rejected++
		}
	}
	waiting := count(ctx, s)
	fmt.Printf("%d orders placed, %d rejected (rolled back); %d events waiting with no relay running\n", placed, rejected, waiting)

	// Relay 2 in this process: it takes the lease once relay 1's expires.
	relay2, err := outbox.NewRelay(outbox.RelayConfig{Table: s.tbl, DB: s.db, Producer: p, LeaseTTL: 2 * time.Second})
	if err != nil {
		return err
	}
	rctx, stopRelay := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay2.Run(rctx) }()
	start := time.Now()
	for count(ctx, s) > 0 {
		if ctx.Err() != nil {
			stopRelay()
			<-done
			return fmt.Errorf("outbox not drained: %w", ctx.Err())
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopRelay()
	if err := <-done; err != nil {
		return err
	}
	fmt.Printf("relay 2 took over and drained the outbox in %v\n", time.Since(start).Round(100*time.Millisecond))
	return check(ctx, s, addrs, placed)
}

// placeOrder inserts an order and its event in one transaction. One
// order in ten is rejected after both writes and rolled back: its event
// must never reach Kafka.
func placeOrder(ctx context.Context, s *store, events *kafkaproducer.Typed[string, OrderPlaced], id int, seqs map[string]int) (bool, error) {
	customer := fmt.Sprintf("customer-%d", id%17)
	ev := OrderPlaced{OrderID: id, Customer: customer, Seq: seqs[customer] + 1, Total: 100 * (id%50 + 1)}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if _, err := tx.ExecContext(ctx, "INSERT INTO orders (id, customer, seq, total_cents) VALUES ("+s.ph(1)+","+s.ph(2)+","+s.ph(3)+","+s.ph(4)+")",
		id, customer, ev.Seq, ev.Total); err != nil {
		return false, err
	}
	if err := outbox.AddTyped(ctx, s.tbl, tx, events, kafkaproducer.TypedRecord[string, OrderPlaced]{Topic: topic, Key: customer, Value: ev}); err != nil {
		return false, err
	}
	if id%10 == 0 {
		return false, tx.Rollback() // rejected: out of stock
	}
	if err := tx.Commit(); err != nil {
		return false, err
	}
	seqs[customer] = ev.Seq
	return true, nil
}

func count(ctx context.Context, s *store) int {
	var n int
	_ = s.db.QueryRowContext(ctx, "SELECT count(*) FROM "+s.tbl.Name).Scan(&n)
	return n
}

// check reads the topic back and compares it with the orders table.
func check(ctx context.Context, s *store, addrs []string, placed int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	seen := map[string]bool{}
	last := map[string]int{}
	read, dups := 0, 0
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for len(seen) < placed && rctx.Err() == nil {
		var perr error
		cl.PollFetches(rctx).EachRecord(func(r *kgo.Record) {
			read++
			id := recordID(r)
			if seen[id] {
				dups++ // a relay killed mid-batch sends it again: same ID
				return
			}
			seen[id] = true
			var ev OrderPlaced
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				perr = err
				return
			}
			if ev.OrderID%10 == 0 {
				perr = fmt.Errorf("order %d was rolled back but its event was published", ev.OrderID)
			}
			if ev.Seq != last[ev.Customer]+1 {
				perr = fmt.Errorf("%s: order seq %d after %d", ev.Customer, ev.Seq, last[ev.Customer])
			}
			last[ev.Customer] = ev.Seq
		})
		if perr != nil {
			return perr
		}
	}
	var rows int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM orders").Scan(&rows); err != nil {
		return err
	}
	fmt.Printf("read %d events: %d distinct, %d duplicates dropped by record ID; orders table: %d rows\n", read, len(seen), dups, rows)
	if len(seen) != placed || rows != placed {
		return errors.New("events and orders differ")
	}
	fmt.Println("every committed order has its event, in order per customer; no rejected order has one")
	return nil
}

func recordID(r *kgo.Record) string {
	for _, h := range r.Headers {
		if h.Key == dlq.DefaultRecordIDHeader {
			return string(h.Value)
		}
	}
	return ""
}

func startChild(addrs []string, pg, dbPath string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-relay-child", "-brokers", strings.Join(addrs, ","), "-pg", pg, "-db", dbPath)
	cmd.Stderr = os.Stderr
	return cmd, cmd.Start()
}

// runRelayChild is relay 1: it relays until SIGTERM (or SIGKILL).
func runRelayChild(brokers, pg, dbPath string) error {
	s, err := openStore(pg, dbPath)
	if err != nil {
		return err
	}
	defer s.db.Close()
	p, err := newProducer(strings.Split(brokers, ","))
	if err != nil {
		return err
	}
	defer p.Close(context.Background()) //nolint:errcheck
	cfg := outbox.RelayConfig{Table: s.tbl, DB: s.db, Producer: p, LeaseTTL: 2 * time.Second}
	if pg != "" {
		l := pgxoutbox.NewListener(pg, s.tbl)
		defer l.Close()
		cfg.Wakeup = l.Wait
	}
	r, err := outbox.NewRelay(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return r.Run(ctx)
}
