package file

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// tally counts, per source, the sequence numbers lost (in 0..want-1 but
// never seen) and seen more than once, for the report every edge-case test
// logs next to its exact check.
func tally(lines []string, want map[string]int) (lost, dup int) {
	seen := map[string]map[int]int{}
	for _, l := range lines {
		src, seq, err := pipelinetest.ParseLine(l)
		if err != nil {
			continue
		}
		if seen[src] == nil {
			seen[src] = map[int]int{}
		}
		seen[src][seq]++
	}
	for src, n := range want {
		for i := range n {
			switch c := seen[src][i]; {
			case c == 0:
				lost++
			case c > 1:
				dup += c - 1
			}
		}
	}
	return lost, dup
}

func checkAll(t *testing.T, lines []string, want map[string]int) {
	t.Helper()
	lost, dup := tally(lines, want)
	t.Logf("delivered %d lines: lost %d, duplicated %d", len(lines), lost, dup)
	if err := pipelinetest.CheckSequences(lines, want); err != nil {
		t.Fatal(err)
	}
}

// A last line without its newline is shipped once its file is rotated away
// (and quiet), never while the file keeps its name.
func TestUnterminatedLastLineShippedAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 999)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.TrimSuffix(pipelinetest.Line("a", 999), "\n"))
	f.Close()
	// A deleted file's unterminated last line too.
	del := filepath.Join(dir, "d.log")
	appendLines(t, del, "d", 0, 9)
	f, _ = os.OpenFile(del, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(strings.TrimSuffix(pipelinetest.Line("d", 9), "\n"))
	f.Close()

	h := newHarness(t, dir, nil)
	h.start()
	h.waitLines(999 + 9)
	time.Sleep(300 * time.Millisecond) // past close_removed_after: the file still has its name
	if n := h.out.Len(); n != 999+9 {
		t.Fatalf("a partial line of a file that keeps its name was shipped: %d lines", n)
	}
	if err := os.Remove(del); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, filepath.Join(dir, "a.1")); err != nil { // out of the glob
		t.Fatal(err)
	}
	lines := h.waitLines(1000 + 10)
	time.Sleep(200 * time.Millisecond)
	h.stop()
	lines = h.out.Lines()
	checkAll(t, lines, map[string]int{"a": 1000, "d": 10})
	if n := h.stats.UnterminatedLines.Load(); n != 2 {
		t.Fatalf("UnterminatedLines = %d, want 2", n)
	}
}

// CRLF endings are stripped by default and kept with keep_cr; invalid UTF-8
// is passed or replaced, and counted either way.
func TestCRLFAndInvalidUTF8(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantEnd string // what the binary line looks like
	}{
		{"defaults", nil, "bad\xff\xfe"},
		{"replace keep_cr", func(c *Config) { c.InvalidUTF8 = "replace"; c.KeepCR = true }, "bad\uFFFD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var b strings.Builder
			const n = 500
			for i := range n {
				l := strings.TrimSuffix(pipelinetest.Line("w", i), "\n")
				if i%50 == 7 {
					// binary garbage in the middle of a line, then the seq
					l = "w bad\xff\xfe " + fmt.Sprintf("%08d", i)
				}
				b.WriteString(l + "\r\n")
			}
			os.WriteFile(filepath.Join(dir, "w.log"), []byte(b.String()), 0o644)
			h := newHarness(t, dir, tc.mutate)
			h.start()
			h.waitLines(n)
			h.stop()
			lines := h.out.Lines()
			keepCR := tc.mutate != nil
			var clean []string
			for i, l := range lines {
				if strings.HasSuffix(l, "\r") != keepCR {
					t.Fatalf("line %d %q: keep_cr = %v", i, l, keepCR)
				}
				l = strings.TrimSuffix(l, "\r")
				if strings.Contains(l, "bad") {
					want := "w " + tc.wantEnd + " "
					if !strings.HasPrefix(l, want) {
						t.Fatalf("line %d = %q, want prefix %q", i, l, want)
					}
					l = "w " + l[len(want):]
				}
				clean = append(clean, l)
			}
			checkAll(t, clean, map[string]int{"w": n})
			if got := h.stats.InvalidUTF8Lines.Load(); got != n/50 {
				t.Fatalf("InvalidUTF8Lines = %d, want %d", got, n/50)
			}
		})
	}
}

// A followed file replaced by a directory of the same name: nothing
// crashes, what the file held is delivered, and a file that takes the name
// back later is read.
func TestFileReplacedByDirectory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 500)
	h := newHarness(t, dir, nil)
	h.start()
	h.waitLines(500)
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	// A file inside the directory does not match a.log's glob (*.log in dir).
	appendLines(t, filepath.Join(path, "inner.log"), "inner", 0, 5)
	time.Sleep(300 * time.Millisecond)
	os.RemoveAll(path)
	appendLines(t, path, "b", 0, 300)
	h.waitLines(800)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"a": 500, "b": 300})
}

// An include glob under a directory that does not exist yet picks up files
// once the directory appears.
func TestIncludeDirectoryAppearsLater(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "later", "app")
	h := newHarness(t, dir, func(c *Config) { c.Include = []string{filepath.Join(sub, "*.log")} })
	h.start()
	time.Sleep(150 * time.Millisecond)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	appendLines(t, filepath.Join(sub, "x.log"), "x", 0, 1000)
	h.waitLines(1000)
	appendLines(t, filepath.Join(sub, "x.log"), "x", 1000, 2000)
	h.waitLines(2000)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"x": 2000})
}

// A file the agent may not read is logged once and tried again every scan;
// once it becomes readable every line is delivered. The reading happens as
// nobody (the tests run as root, which permission bits do not stop), by
// running this test's process image again with that user's credentials.
func TestPermissionDeniedLoggedOnceThenRead(t *testing.T) {
	if os.Getenv("TAILSHIP_TEST_AS_NOBODY") == "" {
		if os.Geteuid() != 0 {
			t.Skip("needs root to run a child as nobody")
		}
		dir, err := os.MkdirTemp("", "tailship-perm-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o777)
		// The test binary's own directory is root's alone: run a copy.
		self, err := os.ReadFile(must(os.Executable()))
		if err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(dir, "file.test")
		if err := os.WriteFile(exe, self, 0o755); err != nil {
			t.Fatal(err)
		}
		logs := filepath.Join(dir, "logs")
		os.Mkdir(logs, 0o777)
		os.Chmod(logs, 0o777)
		cmd := execAsNobody(exe, "-test.run=^TestPermissionDeniedLoggedOnceThenRead$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "TAILSHIP_TEST_AS_NOBODY="+logs, "TMPDIR="+logs)
		out, err := cmd.CombinedOutput()
		t.Logf("as nobody:\n%s", out)
		if err != nil {
			t.Fatalf("child as nobody: %v", err)
		}
		if !strings.Contains(string(out), "--- PASS: TestPermissionDeniedLoggedOnceThenRead") {
			t.Fatal("the child did not run the test")
		}
		return
	}
	dir := os.Getenv("TAILSHIP_TEST_AS_NOBODY")
	if os.Geteuid() == 0 {
		t.Fatal("child still runs as root")
	}
	// The files belong to nobody (we made them), so permission bits bind.
	ok := filepath.Join(dir, "ok.log")
	locked := filepath.Join(dir, "locked.log")
	appendLines(t, ok, "ok", 0, 200)
	appendLines(t, locked, "locked", 0, 300)
	if err := os.Chmod(locked, 0o000); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	h := newHarness(t, dir, nil)
	h.log = zap.New(core)
	h.start()
	h.waitLines(200)
	time.Sleep(400 * time.Millisecond) // several scans
	if n := h.out.Len(); n != 200 {
		t.Fatalf("%d lines from an unreadable file", n-200)
	}
	denied := logs.FilterMessage("cannot open file; trying again every scan_interval").All()
	if len(denied) != 1 {
		t.Fatalf("permission denied logged %d times, want once", len(denied))
	}
	if e := denied[0].ContextMap()["error"]; !strings.Contains(fmt.Sprint(e), "permission denied") {
		t.Fatalf("logged error %v", e)
	}
	os.Chmod(locked, 0o644)
	h.waitLines(500)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"ok": 200, "locked": 300})
	if len(logs.FilterMessage("file can be opened now").All()) != 1 {
		t.Fatal("recovery not logged")
	}
}

// 10,000 files matched by one glob: every line arrives and the descriptors
// held stay within max_open_files.
func TestTenThousandFiles(t *testing.T) {
	if raceEnabled {
		t.Skip("10,000 files take minutes under the race detector; .ci/run runs this test without -race")
	}
	dir := t.TempDir()
	const files, lines, maxOpen = 10000, 3, 128
	want := map[string]int{}
	for i := range files {
		name := fmt.Sprintf("f%05d", i)
		appendLines(t, filepath.Join(dir, name+".log"), name, 0, lines)
		want[name] = lines
	}
	h := newHarness(t, dir, func(c *Config) {
		c.MaxOpenFiles = maxOpen
		// Files read to their end close at once and make room for the next.
		c.CloseInactive = config.Dur(time.Millisecond)
		c.ScanInterval = config.Dur(200 * time.Millisecond)
	})
	h.memory = 64 << 20
	h.start()
	var peak int64
	deadline := time.Now().Add(50 * time.Second)
	for h.out.Len() < files*lines {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d lines, have %d", files*lines, h.out.Len())
		}
		peak = max(peak, h.stats.FilesOpen.Load(), int64(openAtOnceIn(t, dir)))
		time.Sleep(25 * time.Millisecond) // a lighter sampler leaves the cores to the input
	}
	h.stop()
	t.Logf("peak descriptors %d (max_open_files %d)", peak, maxOpen)
	checkAll(t, h.out.Lines(), want)
	if peak > maxOpen {
		t.Fatalf("held %d files open, max_open_files is %d", peak, maxOpen)
	}
	if peak == 0 {
		t.Fatal("never saw a file open: the sampler is broken")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// execAsNobody runs exe as uid/gid 65534.
func execAsNobody(exe string, args ...string) *exec.Cmd {
	cmd := exec.Command(exe, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return cmd
}

// A rotated file that still matches the globs, ends mid-line and sits quiet
// past close_inactive keeps its reader, so its last line is shipped when
// the file is finally deleted.
func TestUnterminatedLineSurvivesCloseInactive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	appendLines(t, path, "a", 0, 99)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(strings.TrimSuffix(pipelinetest.Line("a", 99), "\n"))
	f.Close()
	h := newHarness(t, dir, func(c *Config) {
		c.Include = []string{filepath.Join(dir, "*.log*")}
		c.CloseInactive = config.Dur(50 * time.Millisecond)
	})
	h.start()
	h.waitLines(99)
	os.Rename(path, path+".1") // still in the globs
	time.Sleep(500 * time.Millisecond)
	if n := h.out.Len(); n != 99 {
		t.Fatalf("%d lines before the rotated file was deleted", n)
	}
	os.Remove(path + ".1")
	h.waitLines(100)
	time.Sleep(100 * time.Millisecond)
	h.stop()
	checkAll(t, h.out.Lines(), map[string]int{"a": 100})
}

// Two distinct files with the same content (replicas writing the same
// output, fixtures copied on purpose): with detect_copies = false the
// second is not taken for a copytruncate copy of the first and is read
// from its start, so every line arrives once per file.
func TestIdenticalFilesWithoutCopyDetection(t *testing.T) {
	dir := t.TempDir()
	const lines = 300
	appendLines(t, filepath.Join(dir, "a.log"), "x", 0, lines)
	h := newHarness(t, dir, func(c *Config) { c.DetectCopies = false })
	h.start()
	h.waitLines(lines)
	appendLines(t, filepath.Join(dir, "b.log"), "x", 0, lines)
	h.waitLines(2 * lines)
	time.Sleep(200 * time.Millisecond) // room for a duplicate to show
	h.stop()
	seen := map[string]int{}
	for _, l := range h.out.Lines() {
		seen[l]++
	}
	for i := range lines {
		if n := seen[strings.TrimSuffix(pipelinetest.Line("x", i), "\n")]; n != 2 {
			t.Fatalf("line %d arrived %d times, want once per file", i, n)
		}
	}
	if got := h.out.Len(); got != 2*lines {
		t.Fatalf("%d lines delivered, want %d", got, 2*lines)
	}
}
