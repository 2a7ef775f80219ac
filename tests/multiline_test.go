package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const multilineConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "50ms"

[api]
listen = ""

[inputs.app]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
multiline = { start_pattern = '^\d{4}-\d{2}-\d{2} ', timeout = "300ms" }

[outputs.json]
type = "file"
inputs = ["app"]
path = "%[1]s/out/app.ndjson"
format = "json"
compression = "none"
batch = { max_events = 200, timeout = "20ms" }
`

// appRecord is record seq of file tag: a dated line, and for every
// fourth record an indented trace of 1 to 12 more lines.
func appRecord(tag string, seq int) string {
	r := fmt.Sprintf("2024-05-01 12:00:00 ERROR %s %09d something failed", tag, seq)
	if seq%4 == 0 {
		for k := range 1 + seq%12 {
			r += fmt.Sprintf("\n\tat com.example.C%d.m%d(C.java:%d)", seq, k, k)
		}
	}
	return r
}

func appendRecords(t *testing.T, path, tag string, from, to int) {
	t.Helper()
	var b strings.Builder
	for seq := from; seq < to; seq++ {
		b.WriteString(appRecord(tag, seq) + "\n")
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

// TestMultilineSIGKILL: the agent is killed twice while it ships
// multiline records from two files; after the last restart every record
// has arrived, and every event is a whole record: a checkpoint never
// stopped inside one, so no restart shipped the tail of a record as a
// record of its own. Records shipped before a kill may come again
// (at-least-once): each file's sequence then restarts earlier and goes on
// in order.
func TestMultilineSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, multilineConfig)
	tags := []string{"m0", "m1"}
	total := 0
	write := func(to int) {
		for _, tag := range tags {
			appendRecords(t, filepath.Join(dir, "logs", tag+".log"), tag, total, to)
		}
		total = to
	}
	out := filepath.Join(dir, "out", "app.ndjson*")
	waitRecords := func(a *agentProc) (seen, dup int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			lines, err := readOutput(out, "none")
			if err == nil {
				seen, dup, err := checkRecords(lines, tags, total)
				if err != nil {
					t.Fatal(err)
				}
				if seen == len(tags)*total {
					return seen, dup
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("not every record arrived; log:\n%s", a.log)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	kill := func(a *agentProc) {
		a.cmd.Process.Signal(syscall.SIGKILL)
		a.cmd.Wait()
	}

	// Quiet files: the last record of each is shipped after the timeout
	// and the checkpoint reaches the end, so a kill then repeats nothing.
	write(1000)
	a := startAgent(t, cfg)
	waitRecords(a)
	time.Sleep(800 * time.Millisecond) // multiline timeout + checkpoint_interval, with room
	kill(a)
	a = startAgent(t, cfg)
	time.Sleep(800 * time.Millisecond)
	if _, dup := waitRecords(a); dup != 0 {
		t.Fatalf("%d records shipped again after a kill with everything committed", dup)
	}

	// Kills while records are in flight.
	write(3000)
	waitOutput(t, a, out, "none", 3000)
	kill(a)
	write(5000)
	a = startAgent(t, cfg)
	waitOutput(t, a, out, "none", 8000)
	write(6000) // while it runs, then killed
	time.Sleep(30 * time.Millisecond)
	kill(a)
	a = startAgent(t, cfg)
	seen, dup := waitRecords(a)
	t.Logf("%d records, %d shipped again after the kills", seen, dup)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}
}

// checkRecords returns how many distinct records arrived and how many
// again, and an error for a broken or misordered record.
func checkRecords(lines []string, tags []string, total int) (seen, dup int, err error) {
	got := map[string][]int{}
	for _, tag := range tags {
		got[tag] = make([]int, total)
	}
	last := map[string]int{}
	for i, l := range lines {
		var ev struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			return 0, 0, fmt.Errorf("line %d is not JSON (%v): %s", i, err, l)
		}
		f := strings.Fields(ev.Message)
		if len(f) < 5 {
			return 0, 0, fmt.Errorf("line %d: not a record (a record's tail shipped alone?): %q", i, ev.Message)
		}
		tag := f[3]
		seq, err := strconv.Atoi(f[4])
		counts, ok := got[tag]
		if err != nil || !ok || seq < 0 || seq >= total {
			return 0, 0, fmt.Errorf("line %d: unexpected record %q", i, ev.Message)
		}
		if want := appRecord(tag, seq); ev.Message != want {
			return 0, 0, fmt.Errorf("line %d: record %s %d is not whole:\ngot  %q\nwant %q", i, tag, seq, ev.Message, want)
		}
		if prev, ok := last[tag]; ok && seq != prev+1 && seq > prev {
			return 0, 0, fmt.Errorf("line %d: %s record %d after %d: a record was skipped", i, tag, seq, prev)
		}
		last[tag] = seq
		if counts[seq]++; counts[seq] == 1 {
			seen++
		} else {
			dup++
		}
	}
	return seen, dup, nil
}
