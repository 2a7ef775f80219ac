package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/checkpoint"
	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// harness runs one file input through a real pipeline into a capturing output.
type harness struct {
	t      *testing.T
	cfg    *Config
	store  *checkpoint.Store
	stats  *pipeline.Stats
	out    *pipelinetest.Capture // set before start for a slow or blocked sink
	set    pipeline.OutputSettings
	memory int64
	log    *zap.Logger  // nil: none
	tweak  func(*Input) // set before start: test hooks on the input
	in     *Input
	cancel context.CancelFunc
	stop   func()
}

func newHarness(t *testing.T, dir string, mutate func(*Config)) *harness {
	t.Helper()
	cfg := defaults()
	cfg.Include = []string{filepath.Join(dir, "*.log")}
	cfg.ScanInterval = config.Dur(50 * time.Millisecond)
	cfg.PollInterval = config.Dur(5 * time.Millisecond)
	cfg.CloseRemoved = config.Dur(100 * time.Millisecond)
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	store, _, err := checkpoint.Open(filepath.Join(dir, "checkpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	set := pipeline.DefaultOutputSettings()
	set.Batch.Timeout = config.Dur(10 * time.Millisecond)
	return &harness{t: t, cfg: cfg, store: store, stats: &pipeline.Stats{}, set: set, memory: 4 << 20, out: &pipelinetest.Capture{}}
}

func (h *harness) start() {
	h.t.Helper()
	in, err := h.cfg.Build(pipeline.BuildContext{Name: "app", Checkpoints: h.store, Stats: h.stats, Logger: h.log})
	if err != nil {
		h.t.Fatal(err)
	}
	h.in = in.(*Input)
	if h.tweak != nil {
		h.tweak(h.in)
	}
	r := pipeline.NewRunner("cap", h.out, h.set, nil, h.stats)
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: h.memory, Stats: h.stats})
	abort, abortCancel := context.WithCancel(context.Background())
	r.Start(abort)
	p.Start(abort)
	st := p.NewStream("app", int(h.cfg.MaxLineBytes), nil, nil, []*pipeline.Runner{r})
	st.SetLines(h.cfg.Lines())
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := in.Run(ctx, st); err != nil {
			h.t.Error(err)
		}
	}()
	h.stop = func() {
		cancel()
		wg.Wait()
		p.Drain()
		if err := r.Stop(context.Background()); err != nil {
			h.t.Error(err)
		}
		abortCancel()
		if err := h.store.Flush(); err != nil {
			h.t.Error(err)
		}
	}
}

// waitLines waits until the output holds n lines (a wait for progress, not a
// speed assertion: the deadline only keeps a broken reader from hanging CI).
func (h *harness) waitLines(n int) []string {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.out.Len() < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("waited for %d lines, have %d", n, h.out.Len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return h.out.Lines()
}

func appendLines(t *testing.T, path, source string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(pipelinetest.Line(source, i))
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func TestReadsFollowsAndResumes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"a", "b", "c"} {
		appendLines(t, filepath.Join(dir, n+".log"), n, 0, 20000)
	}
	h := newHarness(t, dir, nil)
	h.start()
	h.waitLines(60000)
	// A partial line is not shipped until its newline arrives.
	f, _ := os.OpenFile(filepath.Join(dir, "a.log"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("a 000")
	time.Sleep(50 * time.Millisecond)
	if n := h.out.Len(); n != 60000 {
		t.Fatalf("partial line shipped: %d lines", n)
	}
	f.WriteString("20000\n")
	f.Close()
	appendLines(t, filepath.Join(dir, "a.log"), "a", 20001, 25000)
	h.waitLines(65000)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"a": 25000, "b": 20000, "c": 20000}); err != nil {
		t.Fatal(err)
	}

	// Restart: only lines appended since are read.
	appendLines(t, filepath.Join(dir, "b.log"), "b", 20000, 21000)
	h2 := newHarness(t, dir, nil)
	h2.start()
	lines := h2.waitLines(1000)
	time.Sleep(100 * time.Millisecond)
	h2.stop()
	lines = h2.out.Lines()
	if len(lines) != 1000 || lines[0] != strings.TrimSuffix(pipelinetest.Line("b", 20000), "\n") {
		t.Fatalf("after restart got %d lines, first %q", len(lines), lines[0])
	}
}

func TestStartAtEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "old", 0, 100)
	h := newHarness(t, dir, func(c *Config) { c.StartAt = "end" })
	h.start()
	time.Sleep(100 * time.Millisecond)
	appendLines(t, path, "a", 0, 50)
	// A file that appears later is read from its start.
	appendLines(t, filepath.Join(dir, "b.log"), "b", 0, 50)
	h.waitLines(100)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"a": 50, "b": 50}); err != nil {
		t.Fatal(err)
	}
}

func TestLongLineTruncated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 10)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	// 3 MiB on one line: larger than max_line_bytes and than a chunk.
	big := strings.Repeat("x", 3<<20)
	f.WriteString(big + "\n")
	f.Close()
	appendLines(t, path, "a", 10, 20)
	h := newHarness(t, dir, func(c *Config) { c.MaxLineBytes = 64 << 10 })
	h.start()
	lines := h.waitLines(21)
	h.stop()
	if len(lines) != 21 {
		t.Fatalf("%d lines", len(lines))
	}
	if len(lines[10]) != 64<<10 || lines[10] != big[:64<<10] {
		t.Errorf("truncated line has %d bytes", len(lines[10]))
	}
	rest := append(append([]string{}, lines[:10]...), lines[11:]...)
	if err := pipelinetest.CheckSequences(rest, map[string]int{"a": 20}); err != nil {
		t.Fatal(err)
	}
	if got := h.stats.LinesTruncated.Load(); got != 1 {
		t.Errorf("truncated counter = %d", got)
	}
}

func TestLongLineWithinChunkTruncated(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	f, _ := os.Create(path)
	fmt.Fprintf(f, "%s\nshort\n", strings.Repeat("y", 1000))
	f.Close()
	h := newHarness(t, dir, func(c *Config) { c.MaxLineBytes = 100 })
	h.start()
	lines := h.waitLines(2)
	h.stop()
	if lines[0] != strings.Repeat("y", 100) || lines[1] != "short" {
		t.Fatalf("lines = %q", lines)
	}
	if got := h.stats.LinesTruncated.Load(); got != 1 {
		t.Errorf("truncated counter = %d", got)
	}
}

func TestCopyTruncateRestartsAtZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 1000)
	h := newHarness(t, dir, nil)
	h.start()
	h.waitLines(1000)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	appendLines(t, path, "a", 1000, 1500)
	h.waitLines(1500)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"a": 1500}); err != nil {
		t.Fatal(err)
	}
}

func TestRenameRotationReadsBoth(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 5000)
	// The harness's 100 ms close_removed_after counts from the reader's last
	// data, and on a loaded machine delivering the first 5000 lines can take
	// longer than that: the renamed file would be closed before its late
	// lines are written. The default keeps it open as users get it.
	h := newHarness(t, dir, func(c *Config) { c.CloseRemoved = defaults().CloseRemoved })
	h.start()
	h.waitLines(5000)
	// The app writes to the old handle after the rename, then to a new file.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err := os.Rename(path, filepath.Join(dir, "a.log.1")); err != nil {
		t.Fatal(err)
	}
	for i := 5000; i < 6000; i++ {
		f.WriteString(pipelinetest.Line("a", i))
	}
	f.Close()
	appendLines(t, path, "a", 6000, 7000)
	h.waitLines(7000)
	h.stop()
	if err := pipelinetest.CheckSequences(h.out.Lines(), map[string]int{"a": 7000}); err != nil {
		t.Fatal(err)
	}
}

func TestCheckpointNotPastUndelivered(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 100)
	h := newHarness(t, dir, nil)
	block := make(chan struct{})
	h.out = &pipelinetest.Capture{Block: block}
	h.start()
	time.Sleep(200 * time.Millisecond)
	for _, k := range h.store.Keys("app/") {
		if e, _ := h.store.Get(k); e.Offset != 0 {
			t.Fatalf("checkpoint advanced to %d while the output was blocked", e.Offset)
		}
	}
	close(block)
	h.waitLines(100)
	h.stop()
	keys := h.store.Keys("app/")
	if len(keys) != 1 {
		t.Fatalf("keys = %v", keys)
	}
	if e, _ := h.store.Get(keys[0]); e.Offset != pipelinetest.Size("a", 100) {
		t.Fatalf("checkpoint = %d, want %d", e.Offset, pipelinetest.Size("a", 100))
	}
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := statID(fi)
	return id.ino
}

// A deleted file's inode taken by a new file: the new file is read from its
// start, not from the old file's checkpoint.
func TestInodeReuseReadsNewFileFromStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "old", 0, 3000)
	h := newHarness(t, dir, nil)
	h.start()
	h.waitLines(3000)
	ino := inodeOf(t, path)
	os.Remove(path)
	// Filesystems hand a freed inode to the next file; try a few times.
	reused := false
	for i := 0; i < 100 && !reused; i++ {
		f, err := os.Create(path) // empty until the inode matches: nothing to read
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if inodeOf(t, path) == ino {
			reused = true
			break
		}
		os.Remove(path)
		time.Sleep(20 * time.Millisecond) // the old reader frees the inode when it closes
	}
	if reused {
		appendLines(t, path, "new", 0, 1000)
	}
	if !reused {
		h.stop()
		t.Skip("this filesystem did not reuse the inode")
	}
	lines := h.waitLines(4000)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	lines = h.out.Lines()
	var old, fresh []string
	for _, l := range lines {
		if strings.HasPrefix(l, "new ") {
			fresh = append(fresh, l)
		} else {
			old = append(old, l)
		}
	}
	if err := pipelinetest.CheckSequences(old, map[string]int{"old": 3000}); err != nil {
		t.Fatal(err)
	}
	if err := pipelinetest.CheckSequences(fresh, map[string]int{"new": 1000}); err != nil {
		t.Fatal(err)
	}
}

// TestMaxHoldWhileOutputDown: with the output stalled the reader waits for
// memory, not between reads; a file deleted during that wait is still given
// up once max_hold has passed (its descriptor closed, its unread rest
// counted), rather than held open for as long as the outage lasts.
func TestMaxHoldWhileOutputDown(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	const lines = 400_000 // four times the memory budget
	appendLines(t, path, "a", 0, lines)
	h := newHarness(t, dir, func(c *Config) { c.MaxHold = config.Dur(200 * time.Millisecond) })
	h.memory = 1 << 20
	block := make(chan struct{})
	h.out = &pipelinetest.Capture{Block: block}
	h.start()
	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 1 && h.stats.InputBytes.Load() > 0 })
	time.Sleep(100 * time.Millisecond) // the reader is in its wait for memory now
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return h.stats.LostBytes("deleted").Load() > 0 })
	waitFor(t, func() bool { return h.stats.FilesOpen.Load() == 0 })
	close(block)
	read := h.stats.InputBytes.Load()
	h.waitLines(int(read / int64(len(pipelinetest.Line("a", 0)))))
	h.stop()
	lost := h.stats.LostBytes("deleted").Load()
	total := pipelinetest.Size("a", lines)
	if read+lost < total-4096 || read+lost > total {
		t.Fatalf("read %d + given up %d does not add up to the file's %d bytes", read, lost, total)
	}
	// What was read before giving up arrives whole and in order.
	got := h.out.Lines()
	if want := int(read / int64(len(pipelinetest.Line("a", 0)))); len(got) != want {
		t.Fatalf("%d lines delivered, %d were read", len(got), want)
	}
	for i, l := range got {
		if l != strings.TrimSuffix(pipelinetest.Line("a", i), "\n") {
			t.Fatalf("line %d is %q", i, l)
		}
	}
}

// A deleted file with unread data is given up after max_hold, and the bytes
// are counted.
func TestMaxHoldGivesUpAndCounts(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 400000) // 4.4 MB: four times the memory budget
	h := newHarness(t, dir, func(c *Config) { c.MaxHold = config.Dur(50 * time.Millisecond) })
	h.memory = 1 << 20
	// A slow sink keeps the reader from getting through the file.
	h.out = &pipelinetest.Capture{Delay: 10 * time.Millisecond}
	h.set.Queue.MaxEvents = 1
	h.set.Batch.MaxEvents = 1000
	h.start()
	time.Sleep(100 * time.Millisecond)
	os.Remove(path)
	deadline := time.Now().Add(10 * time.Second)
	for h.stats.LostBytes("deleted").Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	h.stop()
	lost := h.stats.LostBytes("deleted").Load()
	read := h.stats.InputBytes.Load()
	total := pipelinetest.Size("a", 400000)
	if lost == 0 {
		t.Fatalf("nothing counted as given up (read %d of %d bytes)", read, total)
	}
	// What was read plus what was given up is the file, give or take the
	// partial line carried at the moment of giving up.
	if read+lost < total-4096 || read+lost > total {
		t.Errorf("read %d + given up %d does not add up to the file's %d bytes", read, lost, total)
	}
}
