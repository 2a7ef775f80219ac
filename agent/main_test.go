package agent_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that an agent's Run leaves no goroutine behind: inputs,
// workers, runners, window tickers and the checkpoint flusher all end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
