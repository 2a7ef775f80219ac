package checkpoint

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Run's flusher ends with its context.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
