package sr_test

import (
	"context"
	"fmt"

	"github.com/kprod/kprod/serde/avro"
	kprodsr "github.com/kprod/kprod/serde/sr"
	franzsr "github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

func ExampleNewSerializer() {
	reg := srfake.New() // an in-process registry; use your registry's URL
	defer reg.Close()
	cl, _ := franzsr.NewClient(franzsr.URLs(reg.URL()))

	type order struct {
		ID string `avro:"id"`
	}
	orders, err := avro.NewSerializer[order](`{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"}]}`, nil)
	if err != nil {
		panic(err)
	}
	values, err := kprodsr.NewSerializer(cl, false, orders.Format())
	if err != nil {
		panic(err)
	}
	if err := values.Warm(context.Background(), "orders"); err != nil {
		panic(err)
	}
	id, _ := values.ID("orders")
	b, _ := values.Serialize("orders", order{ID: "o-1"}, nil)
	fmt.Printf("subject %s, id %d\n", values.Subject("orders"), id)
	fmt.Printf("% x\n", b) // magic 0, id 1, then Avro
	// Output:
	// subject orders-value, id 1
	// 00 00 00 00 01 06 6f 2d 31
}
