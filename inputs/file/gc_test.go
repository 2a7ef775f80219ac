package file

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// The checkpoint of a file closed as inactive long ago survives the file
// missing a few scans (renamed out of the globs and back): checkpoint_ttl
// counts from when the file went missing, not from the entry's last update.
// Missing for longer than checkpoint_ttl, it is collected, and not before.
func TestCheckpointKeptWhileFileMissesScans(t *testing.T) {
	dir := t.TempDir()
	path, away := filepath.Join(dir, "a.log"), filepath.Join(dir, "a.log.away")
	appendLines(t, path, "a", 0, 100)
	const ttl = 600 * time.Millisecond
	h := newHarness(t, dir, func(c *Config) {
		c.CloseInactive = config.Dur(50 * time.Millisecond)
		c.CheckpointTTL = config.Dur(ttl)
	})
	h.start()
	h.waitLines(100)
	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 0 })
	keys := h.store.Keys("app/")
	if len(keys) != 1 {
		t.Fatalf("checkpoints %v, want one", keys)
	}
	// Last updated long ago, as for a file that has been quiet for days.
	e, _ := h.store.Get(keys[0])
	e.Updated = time.Now().Add(-time.Hour)
	h.store.Set(keys[0], e)

	must(0, os.Rename(path, away))
	time.Sleep(ttl / 3) // several scans, and GCs, miss it
	must(0, os.Rename(away, path))
	time.Sleep(100 * time.Millisecond)
	if _, ok := h.store.Get(keys[0]); !ok {
		t.Fatal("checkpoint collected after the file missed a few scans")
	}
	appendLines(t, path, "a", 100, 150)
	h.waitLines(150)
	time.Sleep(150 * time.Millisecond)
	checkAll(t, h.out.Lines(), map[string]int{"a": 150}) // no line read twice

	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 0 })
	must(0, os.Rename(path, away))
	gone := time.Now()
	waitFor(t, func() bool { _, ok := h.store.Get(keys[0]); return !ok })
	if d := time.Since(gone); d < ttl {
		t.Fatalf("checkpoint collected %v after the file went missing, checkpoint_ttl is %v", d, ttl)
	}
	h.stop()
}

// A closed file whose content is replaced by other content of exactly the
// same length (what a new file on the reused inode of a closed one looks
// like to the scan) is reopened, though its size did not change, and with
// its different head read from its start.
func TestClosedFileSameSizeNewContentRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "old", 0, 100)
	h := newHarness(t, dir, func(c *Config) { c.CloseInactive = config.Dur(50 * time.Millisecond) })
	h.start()
	h.waitLines(100)
	waitFor(t, func() bool {
		keys := h.store.Keys("app/")
		if len(keys) != 1 || h.stats.FilesOpen.Load() != 0 {
			return false
		}
		e, _ := h.store.Get(keys[0])
		return e.Size > 0 // closed as inactive
	})
	ino := inodeOf(t, path)
	time.Sleep(20 * time.Millisecond) // a later modification time, past the clock's tick
	f := must(os.OpenFile(path, os.O_WRONLY, 0))
	var b []byte
	for i := range 100 {
		b = append(b, pipelinetest.Line("new", i)...)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if fi := must(os.Stat(path)); fi.Size() != int64(len(b)) || inodeOf(t, path) != ino {
		t.Fatalf("size %d, want %d on the same inode", fi.Size(), len(b))
	}
	h.waitLines(200)
	time.Sleep(150 * time.Millisecond)
	h.stop()
	var old, fresh []string
	for _, l := range h.out.Lines() {
		if strings.HasPrefix(l, "new ") {
			fresh = append(fresh, l)
		} else {
			old = append(old, l)
		}
	}
	checkAll(t, old, map[string]int{"old": 100})
	checkAll(t, fresh, map[string]int{"new": 100})
}
