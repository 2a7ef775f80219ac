package file

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/tailship/tailship/config"
)

// A subdirectory that appears under a wildcard directory component is
// watched as it appears: with scan_interval = 1h only events can find the
// file created in it, and it is created after the scan that the mkdir
// caused, so that scan cannot find it either.
func TestNewSubdirectoryFoundByEvents(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	os.MkdirAll(filepath.Join(dir, "svc", "web"), 0o755)
	appendLines(t, filepath.Join(dir, "a", "app.log"), "a", 0, 10)
	h := newHarness(t, dir, func(c *Config) {
		c.Include = []string{
			filepath.Join(dir, "*", "app.log"),
			filepath.Join(dir, "svc", "{web,api}", "[0-9]?", "x.log"),
		}
		c.ScanInterval = config.Dur(time.Hour)
	})
	h.start()
	h.waitLines(10) // the first scan ran, so did the first sync
	for _, d := range []string{"b", filepath.Join("svc", "api"), filepath.Join("svc", "api", "07")} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // past the scan the mkdir asked for
	}
	appendLines(t, filepath.Join(dir, "b", "app.log"), "b", 0, 1000)
	appendLines(t, filepath.Join(dir, "svc", "api", "07", "x.log"), "x", 0, 1000)
	h.waitLines(2010)
	appendLines(t, filepath.Join(dir, "b", "app.log"), "b", 1000, 2000)
	h.waitLines(3010)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"a": 10, "b": 2000, "x": 1000})
}

// An include glob whose directory does not exist yet: the directories on
// the way to it are watched as they appear, so with scan_interval = 1h the
// file created in it once it exists is still found.
func TestIncludeDirectoryAppearsLaterFoundByEvents(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "later", "app")
	h := newHarness(t, dir, func(c *Config) {
		c.Include = []string{filepath.Join(sub, "*.log")}
		c.ScanInterval = config.Dur(time.Hour)
	})
	h.start()
	time.Sleep(150 * time.Millisecond) // the first scan and sync ran
	for _, d := range []string{filepath.Join(dir, "later"), sub} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // past the scan the mkdir asked for
	}
	appendLines(t, filepath.Join(sub, "x.log"), "x", 0, 1000)
	h.waitLines(1000)
	appendLines(t, filepath.Join(sub, "x.log"), "x", 1000, 2000)
	h.waitLines(2000)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"x": 2000})
}

// Without any file events (NFS, or inotify unavailable) files in new
// subdirectories are found by the rescan, and followed by the poll.
func TestDiscoveryWithoutEvents(t *testing.T) {
	dir := t.TempDir()
	h := newHarness(t, dir, func(c *Config) {
		c.Include = []string{filepath.Join(dir, "*", "app.log")}
		c.ScanInterval = config.Dur(100 * time.Millisecond)
	})
	h.tweak = func(in *Input) { in.testWatcher = func() *watcher { return nil } }
	h.start()
	time.Sleep(150 * time.Millisecond)
	os.Mkdir(filepath.Join(dir, "b"), 0o755)
	time.Sleep(150 * time.Millisecond)
	appendLines(t, filepath.Join(dir, "b", "app.log"), "b", 0, 1000)
	h.waitLines(1000)
	appendLines(t, filepath.Join(dir, "b", "app.log"), "b", 1000, 2000)
	h.waitLines(2000)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"b": 2000})
}

// An error from the watcher (an inotify queue overflow: events were lost)
// makes the input rescan at once. The watcher here delivers no events, and
// scan_interval is 1h, so only the error can make the new file be found.
func TestWatcherErrorForcesRescan(t *testing.T) {
	dir := t.TempDir()
	appendLines(t, filepath.Join(dir, "a.log"), "a", 0, 10)
	h := newHarness(t, dir, func(c *Config) { c.ScanInterval = config.Dur(time.Hour) })
	wa := &watcher{ev: make(chan fsnotify.Event), errs: make(chan error, 1), detached: true}
	h.tweak = func(in *Input) { in.testWatcher = func() *watcher { return wa } }
	h.start()
	h.waitLines(10)
	appendLines(t, filepath.Join(dir, "b.log"), "b", 0, 100)
	time.Sleep(300 * time.Millisecond)
	if n := h.out.Len(); n != 10 {
		h.stop()
		t.Fatalf("%d lines before the error; the new file was found without a scan", n)
	}
	wa.fail(fsnotify.ErrEventOverflow)
	h.waitLines(110)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"a": 10, "b": 100})
}
