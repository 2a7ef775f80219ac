package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// reloadStatus is the part of /status the reload test reads.
type reloadStatus struct {
	Reloads        int    `json:"reloads"`
	ReloadFailures int    `json:"reload_failures"`
	LastReloadErr  string `json:"last_reload_error"`
	Running        bool   `json:"running"`
	Inputs         []struct {
		Name string `json:"name"`
	} `json:"inputs"`
	Outputs []struct {
		Name string `json:"name"`
	} `json:"outputs"`
}

func getStatus(addr string) (reloadStatus, error) {
	var st reloadStatus
	resp, err := http.Get("http://" + addr + "/status")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// waitStatus polls /status until cond holds.
func waitStatus(t *testing.T, p *agentProc, addr, what string, cond func(reloadStatus) bool) reloadStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var st reloadStatus
	var err error
	for time.Now().Before(deadline) {
		st, err = getStatus(addr)
		if err == nil && cond(st) {
			return st
		}
		if p.cmd.ProcessState != nil {
			t.Fatalf("agent exited while waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: last status %+v, err %v", what, st, err)
	return st
}

// reloadConfig renders one version of the config. outPath is the output's
// file; withB adds input b routed to it.
func reloadConfig(dir, addr, outPath string, withB bool, batch int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = %[2]q

[inputs.a]
type = "file"
include = ["%[1]s/logs/a/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
`, dir, addr)
	inputs := `["a"]`
	if withB {
		fmt.Fprintf(&b, `
[inputs.b]
type = "file"
include = ["%[1]s/logs/b/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
`, dir)
		inputs = `["a", "b"]`
	}
	fmt.Fprintf(&b, `
[outputs.o1]
type = "file"
inputs = %s
path = %q
compression = "none"
batch = { max_events = %d, timeout = "50ms" }
`, inputs, outPath, batch)
	return b.String()
}

// seqWriter appends "<name> <seq> xxx" lines to path in small bursts until
// stopped, like an application logging through every reload.
type seqWriter struct {
	t     *testing.T
	path  string
	name  string
	mu    sync.Mutex
	n     int
	stop  chan struct{}
	done  chan struct{}
	burst int
}

func startWriter(t *testing.T, path, name string) *seqWriter {
	w := &seqWriter{t: t, path: path, name: name, stop: make(chan struct{}), done: make(chan struct{}), burst: 200}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			w.mu.Lock()
			appendSeq(t, w.path, w.name, w.n, w.n+w.burst)
			w.n += w.burst
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *seqWriter) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *seqWriter) finish() int {
	close(w.stop)
	<-w.done
	return w.n
}

// readPlain reads uncompressed output files in the order given.
func readPlain(paths ...string) []string {
	var lines []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines
}

func countOf(lines []string, name string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, name+" ") {
			n++
		}
	}
	return n
}

func maxSeq(lines []string, name string) int {
	m := -1
	for _, l := range lines {
		fs := strings.Fields(l)
		if len(fs) == 3 && fs[0] == name {
			if s, err := strconv.Atoi(fs[1]); err == nil && s > m {
				m = s
			}
		}
	}
	return m
}

// TestReloadKeepsEveryLine drives one agent through SIGHUP reloads while an
// application keeps writing: an input is added, the output is changed (new
// path and batch size), the input is removed (these three in place), an
// invalid config is refused, and an [agent] change restarts the pipeline. At the far end every line of the continuous writer arrives
// exactly once, in order, across all reloads; the added input's lines
// arrive once each; the removed input stops at a clean prefix.
func TestReloadKeepsEveryLine(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"logs/a", "logs/b", "out", "data"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	addr := freePort(t)
	cfg := filepath.Join(dir, "tailship.toml")
	out1 := filepath.Join(dir, "out", "o1.log")
	out2 := filepath.Join(dir, "out", "o1-v3.log")
	write := func(doc string) {
		if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(reloadConfig(dir, addr, out1, false, 1000))

	const bLines = 20000
	appendSeq(t, filepath.Join(dir, "logs", "b", "b.log"), "b", 0, bLines)

	a := startAgent(t, cfg)
	waitStatus(t, a, addr, "the agent to run", func(s reloadStatus) bool { return s.Running })
	wa := startWriter(t, filepath.Join(dir, "logs", "a", "a.log"), "a")
	defer func() {
		select {
		case <-wa.done:
		default:
			wa.finish()
		}
	}()
	waitOutput(t, a, out1, "none", 2000)
	if n := countOf(readPlain(out1), "b"); n != 0 {
		t.Fatalf("input b shipped %d lines before it was configured", n)
	}

	// 1. Add input b.
	write(reloadConfig(dir, addr, out1, true, 1000))
	a.cmd.Process.Signal(syscall.SIGHUP)
	waitStatus(t, a, addr, "reload 1 (input b added)", func(s reloadStatus) bool { return s.Reloads == 1 && s.Running && len(s.Inputs) == 2 })
	deadline := time.Now().Add(60 * time.Second)
	for countOf(readPlain(out1), "b") < bLines {
		if time.Now().After(deadline) {
			t.Fatalf("input b: %d of %d lines after it was added", countOf(readPlain(out1), "b"), bLines)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 2. Change the output: a new path and batch size. Lines go to the
	// new file from the switch on.
	write(reloadConfig(dir, addr, out2, true, 300))
	a.cmd.Process.Signal(syscall.SIGHUP)
	waitStatus(t, a, addr, "reload 2 (output changed)", func(s reloadStatus) bool { return s.Reloads == 2 && s.Running })
	before := countOf(readPlain(out2), "a")
	deadline = time.Now().Add(60 * time.Second)
	for countOf(readPlain(out2), "a") < before+2000 {
		if time.Now().After(deadline) {
			t.Fatalf("the changed output did not receive new lines")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 3. Remove input b, with lines it has not read yet: what it read is
	// delivered before it stops; nothing after that is read.
	// Reload while b is busy with them, so some are in flight.
	appendSeq(t, filepath.Join(dir, "logs", "b", "b.log"), "b", bLines, bLines+50000)
	deadline = time.Now().Add(60 * time.Second)
	for countOf(readPlain(out2), "b") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("input b did not start on its new lines")
		}
		time.Sleep(5 * time.Millisecond)
	}
	write(reloadConfig(dir, addr, out2, false, 300))
	a.cmd.Process.Signal(syscall.SIGHUP)
	waitStatus(t, a, addr, "reload 3 (input b removed)", func(s reloadStatus) bool { return s.Reloads == 3 && s.Running && len(s.Inputs) == 1 })
	bAfterRemoval := countOf(readPlain(out1, out2), "b")
	t.Logf("input b removed after %d of %d lines", bAfterRemoval, bLines+50000)
	appendSeq(t, filepath.Join(dir, "logs", "b", "b.log"), "b", bLines+50000, bLines+51000)

	// 4. An invalid config is refused; the running one goes on.
	write(reloadConfig(dir, addr, out2, false, 300) + "\n[outputs.broken]\ntype = \"file\"\ninputs = [\"nope\"]\n")
	a.cmd.Process.Signal(syscall.SIGHUP)
	st := waitStatus(t, a, addr, "the invalid config refused", func(s reloadStatus) bool { return s.ReloadFailures == 1 })
	if st.Reloads != 3 || !st.Running || len(st.Outputs) != 1 {
		t.Errorf("after the invalid config: %+v, want the previous config still running", st)
	}
	if !strings.Contains(st.LastReloadErr, "outputs.broken") {
		t.Errorf("last reload error %q does not name the bad key", st.LastReloadErr)
	}
	mark := wa.written()
	deadline = time.Now().Add(60 * time.Second)
	for maxSeq(readPlain(out2), "a") < mark {
		if time.Now().After(deadline) {
			t.Fatalf("lines written after the refused reload did not arrive")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// 5. A change to [agent] cannot be applied in place: the pipeline is
	// drained and started again from the checkpoints, still while a writes.
	write(strings.Replace(reloadConfig(dir, addr, out2, false, 300), `checkpoint_interval = "100ms"`, `checkpoint_interval = "150ms"`, 1))
	a.cmd.Process.Signal(syscall.SIGHUP)
	waitStatus(t, a, addr, "reload 4 (a full restart)", func(s reloadStatus) bool { return s.Reloads == 4 && s.Running })
	mark = wa.written()
	deadline = time.Now().Add(60 * time.Second)
	for maxSeq(readPlain(out2), "a") < mark {
		if time.Now().After(deadline) {
			t.Fatalf("lines written after the full restart did not arrive")
		}
		time.Sleep(50 * time.Millisecond)
	}

	total := wa.finish()
	time.Sleep(300 * time.Millisecond) // let the poll see the last burst; SIGTERM delivers it
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}
	log := a.log.String()
	if !strings.Contains(log, "reload refused") {
		t.Errorf("the agent's log does not report the refused reload")
	}
	// None of these changes [agent]: all three are applied in place, and
	// input a, unchanged throughout, kept running.
	if n := strings.Count(log, "config applied in place"); n != 3 {
		t.Errorf("%d reloads applied in place, want 3; log:\n%s", n, log)
	}
	if n := strings.Count(log, "restarting the pipeline"); n != 1 {
		t.Errorf("%d full restarts, want 1 (the [agent] change)", n)
	}

	lines := readPlain(out1, out2)
	var aLines, bShipped []string
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "a "):
			aLines = append(aLines, l)
		case strings.HasPrefix(l, "b "):
			bShipped = append(bShipped, l)
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
	lost, dup, err := tally(aLines, map[string]int{"a": total}, inOrder)
	if err != nil || lost != 0 || dup != 0 {
		t.Errorf("continuous input a over 4 reloads and a refused one: %d lines, lost %d, duplicated %d, err %v", total, lost, dup, err)
	}
	// b: every line up to where it stopped, exactly once and in order, and
	// nothing written after it was removed.
	nb := maxSeq(bShipped, "b") + 1
	lost, dup, err = tally(bShipped, map[string]int{"b": nb}, inOrder)
	if err != nil || lost != 0 || dup != 0 || nb < bLines {
		t.Errorf("input b: shipped up to %d, lost %d, duplicated %d, err %v", nb, lost, dup, err)
	}
	if nb != bAfterRemoval || nb > bLines+50000 {
		t.Errorf("input b shipped %d lines after it was removed (had %d at removal)", nb-bAfterRemoval, bAfterRemoval)
	}
	if n := countOf(readPlain(out2), "a"); n == 0 || countOf(readPlain(out1), "a") == 0 {
		t.Errorf("the output change did not split the lines between the old and new path")
	}
	t.Logf("a: %d lines over 4 reloads, 0 lost, 0 duplicated; b: %d lines, stopped at removal", total, nb)
}
