package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

const edgeConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
close_removed_after = "300ms"
invalid_utf8 = "replace"

[outputs.raw]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/raw.log"
batch = { max_events = 500, timeout = "50ms" }
`

// The binary with invalid_utf8 = "replace": CRLF endings are stripped,
// binary garbage (invalid UTF-8, NUL, control bytes) is replaced or passed
// as UTF-8 and counted, a file's unterminated last line is shipped once the
// file is rotated out of the globs; every sequence number arrives once, in
// order.
func TestEdgeInputsThroughBinary(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, edgeConfig)
	const n = 3000
	var crlf, garbage strings.Builder
	for i := range n {
		crlf.WriteString(strings.TrimSuffix(seqLine("crlf", i), "\n") + "\r\n")
		l := seqLine("bin", i)
		if i%10 == 3 {
			// garbage in the padding field, which the tally ignores
			l = fmt.Sprintf("bin %09d xx\xff\xfe\x00\x01\xc3(%s\n", i, strings.Repeat("x", 30))
		}
		garbage.WriteString(l)
	}
	os.WriteFile(filepath.Join(dir, "logs", "crlf.log"), []byte(crlf.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "logs", "bin.log"), []byte(garbage.String()), 0o644)
	last := filepath.Join(dir, "logs", "tail.log")
	appendSeq(t, last, "tail", 0, n-1)
	f, _ := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(strings.TrimSuffix(seqLine("tail", n-1), "\n"))
	f.Close()

	a := startAgent(t, cfg)
	out := filepath.Join(dir, "out", "raw.log")
	waitOutput(t, a, out, "none", 3*n-1)
	time.Sleep(time.Second) // past close_removed_after: the file keeps its name, the line waits
	if lines, _ := readOutput(out, "none"); len(lines) != 3*n-1 {
		t.Fatalf("%d lines: the unterminated line of a file that keeps its name was shipped", len(lines))
	}
	os.Rename(last, filepath.Join(dir, "logs", "tail.1")) // out of the globs
	waitOutput(t, a, out, "none", 3*n)
	time.Sleep(300 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	lines, err := readOutput(out, "none")
	if err != nil {
		t.Fatal(err)
	}
	replaced := 0
	for _, l := range lines {
		if strings.HasSuffix(l, "\r") {
			t.Fatalf("CR kept: %q", l)
		}
		if strings.Contains(l, "\uFFFD") {
			replaced++
		}
		if !strings.HasPrefix(l, "bin") {
			continue
		}
		if !utf8.ValidString(l) {
			t.Fatalf("invalid UTF-8 shipped with invalid_utf8 = replace: %q", l)
		}
	}
	if replaced != n/10 {
		t.Errorf("%d lines with U+FFFD, want %d", replaced, n/10)
	}
	// The shutdown line counts them (console format: JSON fields).
	if log := a.log.String(); !strings.Contains(log, fmt.Sprintf(`"lines_invalid_utf8": %d`, n/10)) || !strings.Contains(log, `"lines_unterminated": 1`) {
		t.Errorf("counts missing from the shutdown log:\n%s", log[max(0, len(log)-2000):])
	}
	lost, dup, err := tally(lines, map[string]int{"crlf": n, "bin": n, "tail": n}, inOrder)
	t.Logf("edge inputs through the binary: %d lines, lost %d, duplicated %d, %d with invalid UTF-8 replaced", len(lines), lost, dup, replaced)
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d, err %v", lost, dup, err)
	}
}

const fieldPathConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
parser = "logfmt"
parse = { keep_raw = true }

[outputs.split]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/by/%%{svc}/app.log.zst"
compression = "zstd"
batch = { max_events = 300, timeout = "50ms" }
dead_letter_path = "%[1]s/data/refused.jsonl"
`

// The binary with path = ".../%{svc}/app.log.zst": each service's lines go
// to its own file, in order; values that would leave the directory are
// refused to the dead-letter file; no file appears outside; every sequence
// number is in exactly one place.
func TestFieldPathThroughBinary(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, fieldPathConfig)
	services := []string{"web", "api", "../../../escaped", "a/b", "..", "db"}
	bad := map[string]bool{"../../../escaped": true, "a/b": true, "..": true}
	const n = 6000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "svc=%s seq=%d\n", services[i%len(services)], i)
	}
	os.WriteFile(filepath.Join(dir, "logs", "app.log"), []byte(b.String()), 0o644)
	a := startAgent(t, cfg)
	refused := filepath.Join(dir, "data", "refused.jsonl")
	want := n * 3 / len(services)
	deadline := time.Now().Add(60 * time.Second)
	for {
		dl, _ := os.ReadFile(refused)
		if strings.Count(string(dl), "\n") >= n-want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dead-letter file has %d lines; log:\n%s", strings.Count(string(dl), "\n"), a.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, svc := range []string{"web", "api", "db"} {
		waitOutput(t, a, filepath.Join(dir, "out", "by", svc, "app.log.zst"), "zstd", n/len(services))
	}
	time.Sleep(300 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	seen := make([]int, n)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || !strings.HasPrefix(p, filepath.Join(dir, "out")+"/") {
			return err
		}
		if !strings.HasPrefix(p, filepath.Join(dir, "out", "by")+"/") {
			t.Errorf("file outside the output directory: %s", p)
			return nil
		}
		lines, err := readOutput(p, "zstd")
		if err != nil {
			t.Fatal(err)
		}
		svc, last := filepath.Base(filepath.Dir(p)), -1
		for _, l := range lines {
			var s string
			var seq int
			if _, err := fmt.Sscanf(strings.Replace(l, "svc=", "", 1), "%s seq=%d", &s, &seq); err != nil || s != svc || seq <= last || seq >= n {
				t.Fatalf("%s: line %q out of place", p, l)
			}
			last = seq
			seen[seq]++
		}
		return nil
	})
	dl, _ := os.ReadFile(refused)
	for _, l := range strings.Split(strings.TrimSpace(string(dl)), "\n") {
		var rec struct{ Line, Reason, Error string }
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("dead-letter line %q: %v", l, err)
		}
		var s string
		var seq int
		fmt.Sscanf(strings.Replace(rec.Line, "svc=", "", 1), "%s seq=%d", &s, &seq)
		if !bad[s] || !strings.Contains(rec.Error+rec.Reason, "would leave the output directory") {
			t.Fatalf("dead-lettered %q (%s %s)", rec.Line, rec.Reason, rec.Error)
		}
		seen[seq]++
	}
	lost, dup := 0, 0
	for _, c := range seen {
		if c == 0 {
			lost++
		}
		if c > 1 {
			dup += c - 1
		}
	}
	t.Logf("field paths through the binary: %d events, %d refused to the dead-letter file, lost %d, duplicated %d", n, n-want, lost, dup)
	if lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d", lost, dup)
	}
}
