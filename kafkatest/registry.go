package kafkatest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// startRegistry runs franz-go's fake schema registry on a loopback port
// until the test ends, and returns its URL.
func startRegistry(t testing.TB) string {
	r := srfake.New()
	t.Cleanup(r.Close)
	return r.URL()
}
