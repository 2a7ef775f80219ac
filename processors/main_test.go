package processors

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the pipelines the tests and benchmarks start leave
// no goroutine behind (the aggregate window tickers included).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
