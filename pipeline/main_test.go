package pipeline

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain checks, for the internal and the external tests of the package,
// that no goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// settle is how long a test waits to be confident that something that must
// not happen (an unblocking) did not happen. It only makes such tests weaker
// on a slow machine, never flaky.
const settle = 50 * time.Millisecond

// within fails the test unless ch yields within a generous bound.
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: did not happen within 5s", what)
		panic("unreachable")
	}
}

// stays fails the test if ch yields within settle.
func stays[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s: happened (%v) but should still be blocked", what, v)
	case <-time.After(settle):
	}
}
