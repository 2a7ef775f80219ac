package agent_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The agent starts inputs, workers, runners and the checkpoint flusher;
// every one of them must be gone when Run returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
