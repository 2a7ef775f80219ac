package codec

import (
	"testing"

	"go.uber.org/goleak"
)

// Encoders are built with concurrency 1 so that none leaves a goroutine
// behind between batches or after it is dropped.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
