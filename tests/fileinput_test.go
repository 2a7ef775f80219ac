package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// copytruncate at 100,000 lines/s: logrotate's way, a copy (app.log.N, which
// matches the glob) and then a truncation, racing a writer that does not
// pause. Lines written between the end of the copy and the truncation are
// in neither file; those are the only lines that may be lost. Every line
// that is on disk at the end must arrive, and none twice.
//
// Run twice: with the copies matching the globs (app.log*), and with only
// the live name in the globs (app.log), where the copy is found next to it.
func TestCopyTruncateAt100kLinesPerSecond(t *testing.T) {
	t.Parallel()
	for _, glob := range []string{"app.log*", "app.log"} {
		t.Run(glob, func(t *testing.T) {
			t.Parallel()
			copyTruncateRun(t, glob)
		})
	}
}

func copyTruncateRun(t *testing.T, glob string) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, replaceGlob(rotationConfig, glob))
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	live := filepath.Join(logs, "app.log")
	a := startAgent(t, cfg)
	time.Sleep(300 * time.Millisecond)

	const total, rate, every = 1000000, 100000, 50000
	var written atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the app
		defer wg.Done()
		f, err := os.OpenFile(live, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 256<<10)
		start := time.Now()
		for i := range total {
			bw.WriteString(seqLine("app", i))
			if (i+1)%100 == 0 {
				bw.Flush()
				written.Store(int64(i + 1))
				if ahead := time.Duration(float64(i+1)/rate*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		bw.Flush()
		written.Store(total)
	}()
	go func() { // logrotate with copytruncate
		defer wg.Done()
		for n := 1; ; n++ {
			for written.Load() < int64(n*every) {
				if written.Load() == total {
					return
				}
				time.Sleep(time.Millisecond)
			}
			if err := copyTruncate(live, fmt.Sprintf("%s.%d", live, n)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()

	onDisk := map[int]bool{}
	paths, _ := filepath.Glob(live + "*")
	for _, p := range paths {
		for _, seq := range completeSeqs(t, p) {
			onDisk[seq] = true
		}
	}
	neither := total - len(onDisk)
	waitOutputCovers(t, a, filepath.Join(dir, "out", "out.log*"), onDisk)
	time.Sleep(time.Second) // a duplicate would arrive now
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	lines, err := readOutput(filepath.Join(dir, "out", "out.log*"), "none")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]int{}
	for _, l := range lines {
		_, seq, err := parseSeq(l)
		if err != nil {
			t.Fatal(err)
		}
		got[seq]++
	}
	dup, missingOnDisk := 0, 0
	for _, n := range got {
		dup += n - 1
	}
	for seq := range onDisk {
		if got[seq] == 0 {
			missingOnDisk++
		}
	}
	lost := total - len(got)
	t.Logf("copytruncate: %d written, %d in neither file on disk, %d lost, %d duplicated, %d copies; agent: %s",
		total, neither, lost, dup, len(paths)-1, stoppedLine(a))
	if missingOnDisk != 0 || dup != 0 || lost > neither {
		t.Fatalf("%d lines on disk never arrived, %d duplicated, %d lost but only %d were in neither file; log:\n%s",
			missingOnDisk, dup, lost, neither, a.log)
	}
}

// copyTruncate copies path to dst, then truncates path, as logrotate does.
func copyTruncate(path, dst string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Truncate(path, 0)
}

// completeSeqs returns the sequence numbers of the complete lines in path.
func completeSeqs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return nil
	}
	var out []int
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if _, seq, err := parseSeq(l); err == nil {
			out = append(out, seq)
		}
	}
	return out
}

func parseSeq(l string) (string, int, error) {
	f := strings.Fields(l)
	if len(f) < 2 {
		return "", 0, fmt.Errorf("malformed line %q", l)
	}
	n, err := strconv.Atoi(f[1])
	return f[0], n, err
}

// waitOutputCovers waits until every sequence number in want has arrived.
func waitOutputCovers(t *testing.T, p *agentProc, pattern string, want map[int]bool) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	missing := len(want)
	for time.Now().Before(deadline) {
		lines, err := readOutput(pattern, "none")
		if err == nil {
			got := map[int]bool{}
			for _, l := range lines {
				if _, seq, err := parseSeq(l); err == nil {
					got[seq] = true
				}
			}
			missing = 0
			for seq := range want {
				if !got[seq] {
					missing++
				}
			}
			if missing == 0 {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%d lines on disk never arrived; log:\n%s", missing, p.log)
}

var stoppedRE = regexp.MustCompile(`(?m)^.*"?stopped"?.*$`)

// stoppedLine is the agent's last log line, with its counters.
func stoppedLine(p *agentProc) string {
	return stoppedRE.FindString(p.log.String())
}

const manyFilesConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
checkpoint_interval = "200ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "500ms"
poll_interval = "100ms"
max_open_files = 100

[outputs.out]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/out.log"
batch = { max_events = 5000, timeout = "100ms" }
`

// 2,000 files with max_open_files = 100: every line of every file arrives,
// and the agent never holds more than 100 of them open (sampled from
// /proc/<pid>/fd while it works).
func TestTwoThousandFilesHundredDescriptors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	const files, lines = 2000, 100
	want := map[string]int{}
	for i := range files {
		name := fmt.Sprintf("f%04d", i)
		appendSeq(t, filepath.Join(logs, name+".log"), name, 0, lines/2)
		want[name] = lines
	}
	cfg := writeConfig(t, dir, manyFilesConfig)
	a := startAgent(t, cfg)
	stop := make(chan struct{})
	peak := make(chan int)
	go func() {
		p := 0
		for {
			select {
			case <-stop:
				peak <- p
				return
			default:
			}
			p = max(p, fdsUnder(a.cmd.Process.Pid, logs))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	waitOutput(t, a, filepath.Join(dir, "out", "out.log*"), "none", files*lines/2)
	for i := range files { // every file grows again, closed or not
		name := fmt.Sprintf("f%04d", i)
		appendSeq(t, filepath.Join(logs, name+".log"), name, lines/2, lines)
	}
	waitOutput(t, a, filepath.Join(dir, "out", "out.log*"), "none", files*lines)
	close(stop)
	maxOpen := <-peak
	time.Sleep(time.Second)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	out, err := readOutput(filepath.Join(dir, "out", "out.log*"), "none")
	if err != nil {
		t.Fatal(err)
	}
	lost, dup, err := tally(out, want, inOrder)
	t.Logf("2000 files: %d lines received, lost %d, duplicated %d, at most %d files open at once", len(out), lost, dup, maxOpen)
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d, err %v; log:\n%s", lost, dup, err, a.log)
	}
	if maxOpen > 100 || maxOpen == 0 {
		t.Fatalf("saw %d log files open at once; max_open_files is 100", maxOpen)
	}
}

// fdsUnder counts the descriptors process pid holds on files under dir.
func fdsUnder(pid int, dir string) int {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(l, dir+"/") {
			n++
		}
	}
	return n
}

const longLineConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
max_line_bytes = "64KiB"

[outputs.out]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/out.log"
batch = { timeout = "100ms" }
`

// A 256 MiB line with max_line_bytes = 64KiB: its first 64 KiB are
// delivered as one line, the cut is counted, the lines around it arrive
// whole, and the agent's memory never holds the line (peak RSS stays far
// below its size).
func TestLineLongerThanMaxLineBytes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	path := filepath.Join(logs, "big.log")
	appendSeq(t, path, "big", 0, 1000)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	block := bytes.Repeat([]byte("y"), 1<<20)
	f.WriteString("long ")
	for range 256 {
		f.Write(block)
	}
	f.WriteString("\n")
	f.Close()
	appendSeq(t, path, "big", 1000, 2000)

	cfg := writeConfig(t, dir, longLineConfig)
	a := startAgent(t, cfg)
	waitOutput(t, a, filepath.Join(dir, "out", "out.log*"), "none", 2001)
	peak := peakRSS(a.cmd.Process.Pid)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	out, err := readOutput(filepath.Join(dir, "out", "out.log*"), "none")
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	var long []string
	for _, l := range out {
		if strings.HasPrefix(l, "long ") {
			long = append(long, l)
		} else {
			rest = append(rest, l)
		}
	}
	lost, dup, err := tally(rest, map[string]int{"big": 2000}, inOrder)
	t.Logf("long line: %d lines, the long one cut to %d bytes, peak RSS %d MiB; agent: %s", len(out), lenOr0(long), peak>>20, stoppedLine(a))
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d, err %v", lost, dup, err)
	}
	if len(long) != 1 || len(long[0]) != 64<<10 {
		t.Fatalf("want the long line once, cut to 65536 bytes; got %d long lines (first %d bytes)", len(long), lenOr0(long))
	}
	if !regexp.MustCompile(`"lines_truncated": 1\b`).MatchString(stoppedLine(a)) {
		t.Fatalf("the cut was not counted: %s", stoppedLine(a))
	}
	if peak == 0 || peak > 128<<20 {
		t.Fatalf("peak RSS %d MiB while the line is 256 MiB: memory not bounded (or not measured)", peak>>20)
	}
}

func lenOr0(s []string) int {
	if len(s) == 0 {
		return 0
	}
	return len(s[0])
}

// peakRSS reads the process's high-water resident set (VmHWM) in bytes.
func peakRSS(pid int) int64 { return procStatus(pid, "VmHWM:") }

// procStatus reads a size line of /proc/<pid>/status ("VmHWM:") in bytes.
func procStatus(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

const reuseConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
close_removed_after = "50ms"

[outputs.out]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/out.log"
batch = { timeout = "50ms" }
`

// recreateWithInode deletes path and creates it again until the new file
// gets inode ino (filesystems hand a freed inode to the next file). It
// reports whether that happened.
func recreateWithInode(t *testing.T, path string, ino uint64) bool {
	t.Helper()
	os.Remove(path)
	for range 200 {
		f, err := os.Create(path) // empty until the inode matches: nothing to read
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if inode(t, path) == ino {
			return true
		}
		os.Remove(path)
		time.Sleep(10 * time.Millisecond) // the agent frees the inode when it closes the old file
	}
	return false
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// Inode reuse, while the agent runs and while it is down: a file deleted and
// replaced by another that gets the same inode (and grows past the old
// checkpoint) is read from its start, not from the old file's offset.
func TestInodeReuseReadFromStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	path := filepath.Join(logs, "app.log")
	appendSeq(t, path, "first", 0, 3000)
	ino := inode(t, path)
	cfg := writeConfig(t, dir, reuseConfig)
	out := filepath.Join(dir, "out", "out.log*")
	a := startAgent(t, cfg)
	waitOutput(t, a, out, "none", 3000)
	if !recreateWithInode(t, path, ino) {
		a.stop(syscall.SIGTERM)
		t.Skip("this filesystem did not reuse the inode")
	}
	appendSeq(t, path, "second", 0, 5000)
	waitOutput(t, a, out, "none", 8000)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	// Down: the file is replaced again, by more than the checkpoint covers.
	if !recreateWithInode(t, path, ino) {
		t.Skip("this filesystem did not reuse the inode")
	}
	appendSeq(t, path, "third", 0, 6000)
	a = startAgent(t, cfg)
	waitOutput(t, a, out, "none", 14000)
	time.Sleep(500 * time.Millisecond) // a duplicate would arrive now
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	lines, err := readOutput(out, "none")
	if err != nil {
		t.Fatal(err)
	}
	lost, dup, err := tally(lines, map[string]int{"first": 3000, "second": 5000, "third": 6000}, inOrder)
	t.Logf("inode reuse: %d lines, lost %d, duplicated %d", len(lines), lost, dup)
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d, err %v; log:\n%s", lost, dup, err, a.log)
	}
}
