package file

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that Run leaves no goroutine behind: readers, the
// watcher and the scan loop all end with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
