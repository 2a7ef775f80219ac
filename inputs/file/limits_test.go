package file

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// copyFile copies src to dst the way logrotate's copytruncate does.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
}

// A copy that matches the globs is not read again: the reader had read
// everything, so the copy adds nothing and nothing is lost.
func TestCopyTruncateCopyMatchingGlobCaughtUp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 1000)
	h := newHarness(t, dir, func(c *Config) { c.Include = []string{filepath.Join(dir, "a.log*")} })
	h.start()
	h.waitLines(1000)
	copyFile(t, path, path+".1")
	time.Sleep(30 * time.Millisecond) // the scan sees the copy before the truncation
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, "a", 1000, 1500)
	h.waitLines(1500)
	time.Sleep(300 * time.Millisecond) // a duplicate would arrive now
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"a": 1500}); err != nil {
		t.Fatal(err)
	}
	if lost := h.stats.LostBytes("truncated").Load(); lost != 0 {
		t.Fatalf("counted %d bytes lost, but the copy held them", lost)
	}
}

// The reader is behind when the file is copied and truncated: the copy is
// read from where the reader stopped, so every line arrives once.
func TestCopyTruncateReaderBehindReadsRestFromCopy(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 200000) // 2.2 MB
	h := newHarness(t, dir, func(c *Config) { c.Include = []string{filepath.Join(dir, "a.log*")} })
	h.memory = 512 << 10 // the reader stops after a few chunks while the sink is blocked
	block := make(chan struct{})
	h.out.Block = block
	h.start()
	time.Sleep(200 * time.Millisecond)
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, "a", 200000, 201000)
	close(block)
	h.waitLines(201000)
	time.Sleep(300 * time.Millisecond)
	h.stop()
	lines := h.out.Lines()
	if err := pipelinetest.CheckSequences(sortedBySeq(lines), map[string]int{"a": 201000}); err != nil {
		t.Fatal(err)
	}
	if lost := h.stats.LostBytes("truncated").Load(); lost != 0 {
		t.Fatalf("counted %d bytes lost, but the copy held them", lost)
	}
}

// The same with the copy outside the globs (include = *.log, copy a.log.1):
// the rest is read from the copy once, found next to the truncated file.
func TestCopyTruncateCopyOutsideGlobReadsRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 200000)
	h := newHarness(t, dir, nil)
	h.memory = 512 << 10
	block := make(chan struct{})
	h.out.Block = block
	h.start()
	time.Sleep(200 * time.Millisecond)
	copyFile(t, path, path+".1")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, "a", 200000, 201000)
	close(block)
	h.waitLines(201000)
	time.Sleep(300 * time.Millisecond)
	h.stop()
	if err := pipelinetest.CheckSequences(sortedBySeq(h.out.Lines()), map[string]int{"a": 201000}); err != nil {
		t.Fatal(err)
	}
	if lost := h.stats.LostBytes("truncated").Load(); lost != 0 {
		t.Fatalf("counted %d bytes lost, but the copy held them", lost)
	}
}

// sortedBySeq orders lines of one source by sequence number: lines of the
// copy and of the truncated original interleave.
func sortedBySeq(lines []string) []string {
	out := append([]string(nil), lines...)
	idx := func(l string) string { return l[strings.LastIndexByte(l, ' ')+1:] }
	sort.SliceStable(out, func(i, j int) bool { return idx(out[i]) < idx(out[j]) })
	return out
}

// A truncation with no copy on disk counts what the reader had not reached.
func TestTruncateWithoutCopyCountsLoss(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 200000)
	h := newHarness(t, dir, nil)
	h.memory = 512 << 10
	block := make(chan struct{})
	h.out.Block = block
	h.start()
	time.Sleep(200 * time.Millisecond)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, "a", 200000, 201000)
	close(block)
	waitFor(t, func() bool { return h.stats.LostBytes("truncated").Load() > 0 })
	h.stop()
	lines := h.out.Lines()
	lost := h.stats.LostBytes("truncated").Load()
	// Every line is 11 bytes: delivered old lines + lost bytes/11 = 200000.
	old := 0
	for _, l := range lines {
		if l < "a 00200000" {
			old++
		}
	}
	if int64(old)+lost/11 != 200000 || lost%11 != 0 {
		t.Fatalf("delivered %d old lines and counted %d bytes lost; they should add up to 200000 lines", old, lost)
	}
}

// 60 files, 5 descriptors: every line of every file arrives, and the input
// never holds more than 5 files open.
func TestMaxOpenFiles(t *testing.T) {
	dir := t.TempDir()
	const files, lines = 60, 300
	want := map[string]int{}
	for i := range files {
		name := fmt.Sprintf("f%02d", i)
		appendLines(t, filepath.Join(dir, name+".log"), name, 0, lines/2)
		want[name] = lines
	}
	h := newHarness(t, dir, func(c *Config) { c.MaxOpenFiles = 5 })
	h.start()
	stop := make(chan struct{})
	peak := make(chan int64)
	// The sampler does not look while the test writes: a writer's
	// descriptor closed and its number reused between reading the link and
	// the flags would be counted as the reader's.
	var writing sync.Mutex
	go func() {
		var p int64
		for {
			select {
			case <-stop:
				peak <- p
				return
			default:
			}
			writing.Lock()
			p = max(p, h.stats.FilesOpen.Load(), int64(openAtOnceIn(t, dir)))
			writing.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	h.waitLines(files * lines / 2)
	writing.Lock()
	for i := range files {
		name := fmt.Sprintf("f%02d", i)
		appendLines(t, filepath.Join(dir, name+".log"), name, lines/2, lines)
	}
	writing.Unlock()
	h.waitLines(files * lines)
	close(stop)
	p := <-peak
	time.Sleep(100 * time.Millisecond)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), want); err != nil {
		t.Fatal(err)
	}
	if p > 5 {
		t.Fatalf("held %d files open, max_open_files is 5", p)
	}
	if p == 0 {
		t.Fatal("never saw a file open: the sampler is broken")
	}
}

// openIn counts this process's read-only descriptors on files in dir: the
// reader's, not the test writer's. A listing of /proc/self/fd is not a
// snapshot: one descriptor closed and another opened while it is read can
// both be listed, so this may count more than were ever open at once.
func openIn(t *testing.T, dir string) int { return len(readOnlyFDs(t, dir)) }

// openAtOnceIn counts the read-only descriptors on files in dir that two
// listings in a row both hold: every one of them was open in the moment
// between the listings, so unlike openIn this never overcounts (peaks
// measured with it are true peaks, if possibly missed ones).
func openAtOnceIn(t *testing.T, dir string) int {
	a, b := readOnlyFDs(t, dir), readOnlyFDs(t, dir)
	n := 0
	for fd, target := range a {
		if b[fd] == target {
			n++
		}
	}
	return n
}

// readOnlyFDs maps this process's read-only descriptors on files in dir
// to their paths.
func readOnlyFDs(t *testing.T, dir string) map[string]string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	fds := map[string]string{}
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || !strings.HasPrefix(l, dir+"/") {
			continue
		}
		info, err := os.ReadFile(filepath.Join("/proc/self/fdinfo", e.Name()))
		if err != nil {
			continue // closed since the listing
		}
		flags := -1
		for _, line := range strings.Split(string(info), "\n") {
			if _, err := fmt.Sscanf(line, "flags: %o", &flags); err == nil {
				break
			}
		}
		if flags >= 0 && flags&3 == os.O_RDONLY {
			fds[e.Name()] = l
		}
	}
	return fds
}

// close_inactive closes a quiet file; it is reopened when it grows and read
// on from where it stopped.
func TestCloseInactiveReopensOnGrowth(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 100)
	h := newHarness(t, dir, func(c *Config) { c.CloseInactive = config.Dur(100 * time.Millisecond) })
	h.start()
	h.waitLines(100)
	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 0 && openIn(t, dir) == 0 })
	appendLines(t, path, "a", 100, 250)
	h.waitLines(250)
	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 0 })
	appendLines(t, path, "a", 250, 300)
	h.waitLines(300)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"a": 300}); err != nil {
		t.Fatal(err)
	}
}

// ignore_older skips files that have not changed for that long and were
// never read; a file that grows again is read, from its start (it has no
// checkpoint, and its old lines were never shipped).
func TestIgnoreOlder(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old.log")
	appendLines(t, old, "old", 0, 10)
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	appendLines(t, filepath.Join(dir, "new.log"), "new", 0, 10)
	h := newHarness(t, dir, func(c *Config) { c.IgnoreOlder = config.Dur(time.Hour) })
	h.start()
	h.waitLines(10)
	time.Sleep(200 * time.Millisecond) // several scans
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"new": 10}); err != nil {
		h.stop()
		t.Fatalf("before old.log grew: %v", err)
	}
	appendLines(t, old, "old", 10, 15)
	h.waitLines(25)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"new": 10, "old": 15})
}

// The checkpoint of a file gone for checkpoint_ttl is forgotten; others stay.
func TestCheckpointTTL(t *testing.T) {
	dir := t.TempDir()
	gone := filepath.Join(dir, "gone.log")
	appendLines(t, gone, "gone", 0, 10)
	appendLines(t, filepath.Join(dir, "kept.log"), "kept", 0, 10)
	h := newHarness(t, dir, func(c *Config) {
		c.CheckpointTTL = config.Dur(200 * time.Millisecond)
		c.CloseRemoved = config.Dur(10 * time.Millisecond)
	})
	h.start()
	h.waitLines(20)
	waitFor(t, func() bool { return len(h.store.Keys("app/")) == 2 })
	os.Remove(gone)
	waitFor(t, func() bool { return len(h.store.Keys("app/")) == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := len(h.store.Keys("app/")); n != 1 {
		t.Fatalf("%d checkpoints; want only the live file's", n)
	}
	h.stop()
}

// A file reached by a symlink and by its own name (Kubernetes'
// /var/log/containers -> /var/log/pods) is read once.
func TestSymlinkedFileReadOnce(t *testing.T) {
	dir := t.TempDir()
	pods := filepath.Join(dir, "pods")
	os.Mkdir(pods, 0o755)
	target := filepath.Join(pods, "c.log")
	appendLines(t, target, "c", 0, 500)
	if err := os.Symlink(target, filepath.Join(dir, "c-link.log")); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, dir, func(c *Config) { c.Include = []string{filepath.Join(dir, "**", "*.log")} })
	h.start()
	h.waitLines(500)
	appendLines(t, target, "c", 500, 1000)
	h.waitLines(1000)
	time.Sleep(300 * time.Millisecond)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"c": 1000}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond (a wait for progress, not a speed assertion).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two file inputs in one process share one inotify instance, and it is
// closed when the last input stops.
func TestOneWatcherForAllInputs(t *testing.T) {
	before := inotifyFDs(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	appendLines(t, filepath.Join(dirA, "a.log"), "a", 0, 10)
	appendLines(t, filepath.Join(dirB, "b.log"), "b", 0, 10)
	ha := newHarness(t, dirA, nil)
	hb := newHarness(t, dirB, nil)
	ha.start()
	hb.start()
	ha.waitLines(10)
	hb.waitLines(10)
	if n := inotifyFDs(t) - before; n != 1 {
		t.Fatalf("%d inotify instances for two inputs, want 1", n)
	}
	// Both inputs go on reading through the shared watcher.
	appendLines(t, filepath.Join(dirA, "a.log"), "a", 10, 20)
	appendLines(t, filepath.Join(dirB, "b.log"), "b", 10, 20)
	ha.waitLines(20)
	hb.waitLines(20)
	ha.stop()
	if n := inotifyFDs(t) - before; n != 1 {
		t.Fatalf("%d inotify instances with one input left, want 1", n)
	}
	hb.stop()
	if n := inotifyFDs(t) - before; n != 0 {
		t.Fatalf("%d inotify instances left after every input stopped", n)
	}
	if err := pipelinetest.CheckSequences(ha.out.Lines(), map[string]int{"a": 20}); err != nil {
		t.Fatal(err)
	}
	if err := pipelinetest.CheckSequences(hb.out.Lines(), map[string]int{"b": 20}); err != nil {
		t.Fatal(err)
	}
}

func inotifyFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); l == "anon_inode:inotify" {
			n++
		}
	}
	return n
}

// One busy file does not starve another: a small file that appears while a
// large one is being read (through a slow sink) is delivered before the
// large one is done.
func TestBusyFileDoesNotStarveOthers(t *testing.T) {
	dir := t.TempDir()
	appendLines(t, filepath.Join(dir, "big.log"), "big", 0, 300000)
	h := newHarness(t, dir, nil)
	h.memory = 1 << 20
	h.set.Batch.MaxEvents = 2000
	h.out.Delay = 5 * time.Millisecond
	h.start()
	h.waitLines(10000)
	appendLines(t, filepath.Join(dir, "small.log"), "small", 0, 100)
	h.waitLines(300100)
	h.stop()
	lines := h.out.Lines()
	lastSmall, lastBig := -1, -1
	for i, l := range lines {
		if strings.HasPrefix(l, "small ") {
			lastSmall = i
		} else {
			lastBig = i
		}
	}
	if err := pipelinetest.CheckSequences(lines, map[string]int{"big": 300000, "small": 100}); err != nil {
		t.Fatal(err)
	}
	if lastSmall > lastBig {
		t.Fatalf("the small file's last line came at %d, after the big file's last at %d: starved", lastSmall, lastBig)
	}
}

// Files share a full memory budget: three equally large files behind a slow
// sink, read through a budget that holds about two chunks, advance together
// (the budget serves its waiters in turn), so halfway through each file has
// delivered at least a third of what the one furthest ahead has. A chunk is
// ~12,000 lines here, so shares move in steps that size; when waiters raced
// for each release, one file often got four times another's share.
func TestFilesShareAFullBudget(t *testing.T) {
	dir := t.TempDir()
	const lines = 100_000
	names := []string{"a", "b", "c"}
	for _, n := range names {
		appendLines(t, filepath.Join(dir, n+".log"), n, 0, lines)
	}
	h := newHarness(t, dir, nil)
	h.memory = 1 << 20
	h.set.Batch.MaxEvents = 2000
	h.out.Delay = time.Millisecond
	h.start()
	half := h.waitLines(len(names) * lines / 2)
	per := map[string]int{}
	for _, l := range half {
		per[l[:strings.IndexByte(l, ' ')]]++
	}
	h.waitLines(len(names) * lines)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"a": lines, "b": lines, "c": lines})
	most := max(per["a"], per["b"], per["c"])
	for _, n := range names {
		if per[n] < most/3 {
			t.Fatalf("halfway through, delivered per file %v: %s fell behind", per, n)
		}
	}
	t.Logf("halfway through, delivered per file: %v", per)
}

// A file created empty and renamed out of the globs soon after it was
// written is still read: it is opened when found, empty or not, so the
// rename cannot hide it (only events trigger scans here).
func TestEmptyNewFileOpenedAtOnce(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "g0", 0, 1000)
	h := newHarness(t, dir, func(c *Config) { c.ScanInterval = config.Dur(time.Hour) })
	h.start()
	h.waitLines(1000)
	for g := 1; g <= 3; g++ {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, g)); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		time.Sleep(100 * time.Millisecond) // the create event's scan finds it empty
		appendLines(t, path, fmt.Sprintf("g%d", g), 0, 1000)
		time.Sleep(20 * time.Millisecond)
	}
	h.waitLines(4000)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"g0": 1000, "g1": 1000, "g2": 1000, "g3": 1000}); err != nil {
		t.Fatal(err)
	}
}

// TestWaitingFileGoneIsCounted: with both descriptors on files that still
// have unread data (the output is stalled), a third file waits for one. Deleted while it waits, it can no longer be read: its bytes are
// counted as lost with reason "unopened" and logged, not forgotten.
func TestWaitingFileGoneIsCounted(t *testing.T) {
	dir := t.TempDir()
	const aLines = 100_000 // far more than the budget lets the reader take
	appendLines(t, filepath.Join(dir, "a.log"), "a", 0, aLines)
	appendLines(t, filepath.Join(dir, "c.log"), "c", 0, aLines)
	h := newHarness(t, dir, func(c *Config) { c.MaxOpenFiles = 2 })
	block := make(chan struct{})
	h.out = &pipelinetest.Capture{Block: block}
	h.memory = 1 << 20
	h.start()
	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 2 })

	b := filepath.Join(dir, "b.log")
	appendLines(t, b, "b", 0, 1000)
	fi, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * h.cfg.ScanInterval.D()) // scans see b and make it wait
	if n := h.stats.FilesOpen.Load(); n != 2 {
		t.Fatalf("%d files open with max_open_files = 2", n)
	}
	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.stats.LostBytes("unopened").Load() > 0 })
	if lost := h.stats.LostBytes("unopened").Load(); lost != fi.Size() {
		t.Fatalf("counted %d bytes lost, b.log had %d", lost, fi.Size())
	}
	close(block)
	h.waitLines(2 * aLines)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"a": aLines, "c": aLines})
}
