package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// crashConfig is baseConfig with one gzip output, for the crash tests.
const crashConfig = `
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

[outputs.gz]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/logs.gz"
compression = "gzip"
batch = { max_events = 500, timeout = "50ms" }
retry = { initial = "50ms", max = "200ms" }

[outputs.zst]
type = "file"
inputs = ["logs"]
path = "%[1]s/out/logs.zst"
compression = "zstd"
batch = { max_events = 700, timeout = "50ms" }
retry = { initial = "50ms", max = "200ms" }
`

// A checkpoint file that is cut short, garbage, of an unknown version or
// with impossible offsets is logged, kept aside, and the agent starts from
// the safe side: it reads the files again (duplicates, which at-least-once
// allows), and loses nothing.
func TestCorruptCheckpointsRereadNotSkip(t *testing.T) {
	for name, corrupt := range map[string]func(b []byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"garbage":   func([]byte) []byte { return []byte("\x00\xff\x13 not a checkpoint file") },
		"version":   func(b []byte) []byte { return []byte(strings.Replace(string(b), `"version": 1`, `"version": 7`, 1)) },
		"negative": func(b []byte) []byte {
			return []byte(strings.Replace(string(b), `"offset": `, `"offset": -`, 1))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeConfig(t, dir, crashConfig)
			want := map[string]int{"c0": 3000, "c1": 3000}
			for f, n := range want {
				appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, 0, n)
			}
			out := filepath.Join(dir, "out", "logs.gz*")
			a := startAgent(t, cfg)
			waitOutput(t, a, out, "gzip", 6000)
			if code := a.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("exit %d; log:\n%s", code, a.log)
			}
			cp := filepath.Join(dir, "data", "checkpoints.json")
			b, err := os.ReadFile(cp)
			if err != nil {
				t.Fatal(err)
			}
			bad := corrupt(b)
			if string(bad) == string(b) {
				t.Fatal("corruption changed nothing")
			}
			os.WriteFile(cp, bad, 0o644)
			for f := range want {
				appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, want[f], want[f]+1000)
				want[f] += 1000
			}
			a = startAgent(t, cfg)
			// Everything again (re-read from the start) plus the new lines.
			waitOutput(t, a, out, "gzip", 6000+8000)
			time.Sleep(300 * time.Millisecond)
			if code := a.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("exit %d; log:\n%s", code, a.log)
			}
			log := a.log.String()
			if !strings.Contains(log, "checkpoints reset") || !strings.Contains(log, "kept as") {
				t.Errorf("corruption not logged; log:\n%s", log)
			}
			aside, _ := filepath.Glob(cp + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("broken file not kept aside: %v", aside)
			}
			if kept, _ := os.ReadFile(aside[0]); string(kept) != string(bad) {
				t.Fatal("the file kept aside is not the broken one")
			}
			lines, err := readOutput(out, "gzip")
			if err != nil {
				t.Fatal(err)
			}
			lost, dup, err := tally(lines, want, restartsOK)
			t.Logf("%s checkpoints: %d lines, lost %d, duplicated %d (the re-read of the first 6000, expected)", name, len(lines), lost, dup)
			if err != nil || lost != 0 || dup != 6000 {
				t.Fatalf("lost %d, duplicated %d (want 6000: read again, not skipped), err %v", lost, dup, err)
			}
		})
	}
}

// mountTmpfs mounts a tmpfs of size at dir, or skips: it needs root and a
// sandbox that allows mounts. .ci/run probes that and sets
// TAILSHIP_REQUIRE_TMPFS=1 where mounts work, which turns the skip into a
// failure.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("cannot mount a tmpfs for the disk-full test (%v: %s)", err, strings.TrimSpace(string(out)))
		if os.Getenv("TAILSHIP_REQUIRE_TMPFS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg + "; skipped")
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fill writes a file until the file system is full and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return p
			}
			t.Fatal(err)
		}
	}
}

// waitLog waits for a log line that holds every one of what.
func waitLog(t *testing.T, a *agentProc, what ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	has := func() bool {
		for _, l := range strings.Split(a.log.String(), "\n") {
			all := true
			for _, w := range what {
				all = all && strings.Contains(l, w)
			}
			if all {
				return true
			}
		}
		return false
	}
	for !has() {
		if time.Now().After(deadline) || a.cmd.ProcessState != nil {
			t.Fatalf("no %q in the log:\n%s", what, a.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A full data_dir and then a full output disk: both are retried and
// reported, the agent keeps running, the checkpoint file on disk stays the
// last good one, and once space is back every line arrives, in order, in a
// gzip file that decompresses whole (no torn member left by a failed write).
func TestDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, crashConfig)
	mountTmpfs(t, filepath.Join(dir, "data"), "1m")
	mountTmpfs(t, filepath.Join(dir, "out"), "2m")
	want := map[string]int{"d0": 2000, "d1": 2000}
	add := func(n int) {
		for f := range want {
			appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, want[f], want[f]+n)
			want[f] += n
		}
	}
	for f := range want {
		appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, 0, want[f])
	}
	out := filepath.Join(dir, "out", "logs.gz*")
	zst := filepath.Join(dir, "out", "logs.zst*")
	a := startAgent(t, cfg)
	waitOutput(t, a, out, "gzip", 4000)
	waitOutput(t, a, zst, "zstd", 4000)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	cp := filepath.Join(dir, "data", "checkpoints.json")
	good, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}

	// Phase 1: data_dir full. Lines ship; their checkpoints cannot be
	// written, which is reported and retried; the old file stays intact.
	dataFiller := fill(t, filepath.Join(dir, "data"))
	add(3000)
	a = startAgent(t, cfg)
	waitOutput(t, a, out, "gzip", 10000)
	waitLog(t, a, "checkpoint write failed; will retry", "no space left on device")
	if now, _ := os.ReadFile(cp); string(now) != string(good) {
		t.Fatalf("checkpoint file changed while the disk was full:\n%s", now)
	}
	if left, _ := filepath.Glob(cp + ".tmp-*"); len(left) != 0 {
		t.Fatalf("temporary checkpoint files left on the full disk: %v", left)
	}
	os.Remove(dataFiller)
	// Space is back: the next flush succeeds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		if now, _ := os.ReadFile(cp); string(now) != string(good) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("checkpoints not written after space came back")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Phase 2: the output's disk full. Batches fail and are retried; no
	// line is lost, and the file holds no torn gzip member.
	outFiller := fill(t, filepath.Join(dir, "out"))
	before, err := readOutput(out, "gzip")
	if err != nil {
		t.Fatal(err)
	}
	add(3000)
	waitLog(t, a, "write "+filepath.Join(dir, "out", "logs.gz"), "no space left on device")
	waitLog(t, a, "write "+filepath.Join(dir, "out", "logs.zst"), "no space left on device")
	time.Sleep(time.Second) // several failed attempts
	if got, err := readOutput(out, "gzip"); err != nil || len(got) != len(before) {
		t.Fatalf("while the output disk is full: %d lines (was %d), err %v", len(got), len(before), err)
	}
	if _, err := readOutput(zst, "zstd"); err != nil {
		t.Fatalf("zstd output torn while the disk is full: %v", err)
	}
	if a.cmd.ProcessState != nil {
		t.Fatalf("agent exited on a full disk; log:\n%s", a.log)
	}
	os.Remove(outFiller)
	waitOutput(t, a, out, "gzip", 16000)
	waitOutput(t, a, zst, "zstd", 16000)
	time.Sleep(300 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	// A restart reads nothing again: the acknowledged state reached disk.
	a = startAgent(t, cfg)
	time.Sleep(1500 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, a.log)
	}
	for _, o := range []struct{ pattern, comp string }{{out, "gzip"}, {zst, "zstd"}} {
		lines, err := readOutput(o.pattern, o.comp)
		if err != nil {
			t.Fatalf("%s output does not decompress whole: %v", o.comp, err)
		}
		lost, dup, err := tally(lines, want, inOrder)
		t.Logf("disk full (data_dir, then output), %s: %d lines, lost %d, duplicated %d", o.comp, len(lines), lost, dup)
		if err != nil || lost != 0 || dup != 0 {
			t.Fatalf("%s: lost %d, duplicated %d, err %v", o.comp, lost, dup, err)
		}
	}
}
