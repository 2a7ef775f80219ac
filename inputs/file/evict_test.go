package file

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// readerOf returns the input's reader of path, or nil.
func (h *harness) readerOf(path string) *reader {
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	for _, r := range h.in.readers {
		if r.currentPath() == path {
			return r
		}
	}
	return nil
}

// With max_open_files = 2, one file idle at its end and one with unread
// data (the output is stalled, so its reader waits for memory mid-file),
// files that wait for a descriptor get the idle file's: the idle reader is
// asked to close, the one with unread data never is, though it found its
// data after being at its end (it was opened empty).
func TestEvictsIdleFileNotUnreadOne(t *testing.T) {
	dir := t.TempDir()
	idle, big, waiting, waiting2 := filepath.Join(dir, "idle.log"), filepath.Join(dir, "big.log"), filepath.Join(dir, "waiting.log"), filepath.Join(dir, "waiting2.log")
	const bigLines = 1_000_000 // 13 MB: far more than the 1 MiB budget and the queue let the reader take
	appendLines(t, idle, "idle", 0, 100)
	h := newHarness(t, dir, func(c *Config) { c.MaxOpenFiles = 2 })
	block := make(chan struct{})
	h.out = &pipelinetest.Capture{Block: block}
	h.memory = 1 << 20
	h.start()
	var ri, rb *reader
	waitFor(t, func() bool { ri = h.readerOf(idle); return ri != nil && ri.atEOF.Load() })
	appendLines(t, big, "big", 0, bigLines)
	waitFor(t, func() bool { rb = h.readerOf(big); return rb != nil && rb.seenSize.Load() > 0 })
	time.Sleep(4 * h.cfg.ScanInterval.D()) // big.log's reader now waits for memory

	// Two files wait, so two readers would be evicted if two looked idle.
	appendLines(t, waiting, "waiting", 0, 1000)
	appendLines(t, waiting2, "waiting2", 0, 1000)
	waitFor(t, func() bool { return ri.evict.Load() })
	for range 20 { // several scans, each with the waiting file blocked
		if rb.evict.Load() {
			t.Fatal("the reader with unread data was asked to close")
		}
		if n := h.stats.FilesOpen.Load(); n > 2 {
			t.Fatalf("%d files open with max_open_files = 2", n)
		}
		time.Sleep(h.cfg.ScanInterval.D() / 2)
	}
	if h.readerOf(big) != rb {
		t.Fatal("big.log's reader was replaced while it had unread data")
	}
	close(block)
	h.waitLines(100 + bigLines + 2000)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"idle": 100, "big": bigLines, "waiting": 1000, "waiting2": 1000})
}
