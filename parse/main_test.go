package parse_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The tests run real pools and the joiner's timers; none may outlive them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
