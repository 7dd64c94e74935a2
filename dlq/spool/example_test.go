package spool_test

import (
	"context"
	"fmt"
	"os"

	"github.com/kprod/kprod/dlq/spool"
)

// A spool keeps records on disk until a drain has sent them.
func ExampleSpool_Drain() {
	dir, _ := os.MkdirTemp("", "spool-example-")
	defer os.RemoveAll(dir)
	s, err := spool.Open(dir+"/spool", spool.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ctx := context.Background()
	for i := range 3 {
		_ = s.Append(ctx, spool.Entry{Topic: "orders", Value: fmt.Appendf(nil, "order %d", i)})
	}
	fmt.Println("waiting:", s.Len(), s.Stats().PerTopic)
	st, err := s.Drain(ctx, 10, func(_ context.Context, es []spool.Entry) []error {
		for _, e := range es {
			fmt.Printf("send %s to %s\n", e.Value, e.Topic)
		}
		return make([]error, len(es)) // all acknowledged
	})
	fmt.Println("sent:", st.Sent, "left:", s.Len(), err)
	// Output:
	// waiting: 3 map[orders:3]
	// send order 0 to orders
	// send order 1 to orders
	// send order 2 to orders
	// sent: 3 left: 0 <nil>
}
