package dlq_test

import (
	"fmt"

	"github.com/kprod/kprod/dlq"
	"github.com/kprod/kprod/kafkaproducer"
)

// The default policy: the record's own faults go to the dead-letter topic,
// the cluster's go to the spool for replay, a caller's cancel returns.
func ExampleDefaultRoute() {
	for _, c := range kafkaproducer.Classes()[1:] {
		fmt.Printf("%-13s -> %s\n", c, dlq.DefaultRoute(c))
	}
	// Output:
	// retriable     -> spool
	// timeout       -> spool
	// canceled      -> fail
	// bad_input     -> dead_letter
	// authorization -> dead_letter
	// abortable     -> dead_letter
	// fatal         -> dead_letter
	// closed        -> spool
}
