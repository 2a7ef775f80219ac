package agent_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/outputs/http"
)

// sink is an HTTP receiver that answers 503 while down and records the
// lines of the requests it accepts.
type sink struct {
	down  atomic.Bool
	mu    sync.Mutex
	lines []string
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if s.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
		if l != "" {
			s.lines = append(s.lines, l)
		}
	}
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

func appendLines(t *testing.T, path, name string, from, to int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := from; i < to; i++ {
		fmt.Fprintf(w, "%s %06d %s\n", name, i, strings.Repeat("y", 40))
	}
	w.Flush()
	f.Close()
}

// exactlyOnce checks that lines of name are 0..n-1, each once, in order.
func exactlyOnce(t *testing.T, lines []string, name string, n int) {
	t.Helper()
	next := 0
	for _, l := range lines {
		fs := strings.Fields(l)
		if len(fs) != 3 || fs[0] != name {
			continue
		}
		seq, _ := strconv.Atoi(fs[1])
		if seq != next {
			t.Fatalf("%s: line %d where %d was due (lost, duplicated or reordered)", name, seq, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%s: %d of %d lines", name, next, n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func outputStatus(st agent.Status, name string) (agent.OutputStatus, bool) {
	for _, o := range st.Outputs {
		if o.Name == name {
			return o, true
		}
	}
	return agent.OutputStatus{}, false
}

func inputStatus(st agent.Status, name string) (agent.InputStatus, bool) {
	for _, in := range st.Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return agent.InputStatus{}, false
}

// TestReloadKeepsUnchangedParts: a reload that adds an input and an output
// and changes another output leaves the unchanged input and output running:
// the same runner (its failure streak and queued events survive, although
// its receiver is down and a drain would have to wait for it), the same
// reader (its file stays open at its offset). The changed output is
// rebuilt. When the receiver recovers, every line arrives exactly once, in
// order, at every output.
func TestReloadKeepsUnchangedParts(t *testing.T) {
	down := &sink{}
	down.down.Store(true)
	hs := httptest.NewServer(down)
	defer hs.Close()

	dir := t.TempDir()
	appPath := filepath.Join(dir, "app.log")
	newPath := filepath.Join(dir, "new.log")
	const n = 4000
	appendLines(t, appPath, "app", 0, n)
	appendLines(t, newPath, "new", 0, 1000)
	archive1, archive2, extra := filepath.Join(dir, "archive-1.txt"), filepath.Join(dir, "archive-2.txt"), filepath.Join(dir, "extra.txt")
	cfgPath := filepath.Join(dir, "t.toml")
	render := func(v2 bool) string {
		doc := fmt.Sprintf(`
[agent]
data_dir = %q
shutdown_timeout = "5s"
[api]
listen = ""
[inputs.app]
type = "file"
include = [%q]
poll_interval = "20ms"
[outputs.remote]
type = "http"
inputs = ["app"]
url = %q
format = "raw"
compression = "none"
batch = { max_events = 500, timeout = "20ms" }
retry = { initial = "20ms", max = "100ms" }
`, filepath.Join(dir, "data"), appPath, hs.URL)
		archive := archive1
		if v2 {
			archive = archive2
		}
		doc += fmt.Sprintf(`
[outputs.archive]
type = "file"
inputs = ["app"]
path = %q
compression = "none"
batch = { timeout = "20ms" }
`, archive)
		if v2 {
			doc += fmt.Sprintf(`
[inputs.new]
type = "file"
include = [%q]
poll_interval = "20ms"
[outputs.extra]
type = "file"
inputs = ["new"]
path = %q
compression = "none"
batch = { timeout = "20ms" }
`, newPath, extra)
		}
		return doc
	}
	os.WriteFile(cfgPath, []byte(render(false)), 0o644)
	cfg, err := agent.LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := agent.NewSupervisor(cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), agent.SupervisorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	var stopOnce sync.Once
	var runErr error
	stop := func() {
		stopOnce.Do(func() {
			cancel()
			runErr = <-done
		})
	}
	defer stop()

	// The archive has everything; the remote output fails and holds what
	// it read in its queue, so the file is not committed past it.
	waitUntil(t, "the archive to catch up", func() bool {
		b, _ := os.ReadFile(archive1)
		return strings.Count(string(b), "\n") >= n
	})
	// Lines read while it fails wait in its queue (the runner holds the
	// first batch in its retry loop).
	appendLines(t, appPath, "app", n, n+1000)
	var before agent.Status
	waitUntil(t, "the remote output to fail with events queued", func() bool {
		before = sup.Status()
		o, _ := outputStatus(before, "remote")
		return o.FailingSince != nil && o.Retries > 0 && o.QueueEvents > 0
	})
	remote0, _ := outputStatus(before, "remote")
	archive0, _ := outputStatus(before, "archive")
	app0, _ := inputStatus(before, "app")
	if len(app0.Files) != 1 || app0.Files[0].Lag == 0 {
		t.Fatalf("app input before the reload: %+v (want its file open with lag behind the failing output)", app0)
	}

	os.WriteFile(cfgPath, []byte(render(true)), 0o644)
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	if err := sup.Reload(rctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after := sup.Status()
	if after.Reloads != 1 {
		t.Errorf("reloads = %d", after.Reloads)
	}
	remote1, _ := outputStatus(after, "remote")
	archive1s, _ := outputStatus(after, "archive")
	app1, _ := inputStatus(after, "app")
	if !remote1.Started.Equal(remote0.Started) || remote1.FailingSince == nil || !remote1.FailingSince.Equal(*remote0.FailingSince) {
		t.Errorf("the unchanged remote output was rebuilt: started %v -> %v, failing since %v -> %v",
			remote0.Started, remote1.Started, remote0.FailingSince, remote1.FailingSince)
	}
	if remote1.QueueEvents < remote0.QueueEvents {
		t.Errorf("the unchanged remote output's queue went from %d to %d events", remote0.QueueEvents, remote1.QueueEvents)
	}
	if !app1.Started.Equal(app0.Started) || len(app1.Files) != 1 || app1.Files[0].Path != appPath || app1.Files[0].Offset != app0.Files[0].Offset {
		t.Errorf("the unchanged app input was rebuilt or lost its file: %+v -> %+v", app0, app1)
	}
	if archive1s.Started.Equal(archive0.Started) {
		t.Errorf("the changed archive output was not rebuilt")
	}
	if _, ok := inputStatus(after, "new"); !ok {
		t.Errorf("the added input is not running")
	}

	// More lines through the switch, then the receiver recovers.
	appendLines(t, appPath, "app", n+1000, n+2000)
	waitUntil(t, "the added input to ship", func() bool {
		b, _ := os.ReadFile(extra)
		return strings.Count(string(b), "\n") >= 1000
	})
	down.down.Store(false)
	waitUntil(t, "the remote output to receive everything", func() bool { return len(down.got()) >= n+2000 })
	waitUntil(t, "the new archive to receive the appended lines", func() bool {
		b, _ := os.ReadFile(archive2)
		return strings.Count(string(b), "\n") >= 1000
	})
	stop()
	if runErr != nil {
		t.Fatal(runErr)
	}
	exactlyOnce(t, down.got(), "app", n+2000)
	var archived []string
	for _, p := range []string{archive1, archive2} {
		b, _ := os.ReadFile(p)
		archived = append(archived, strings.Split(string(b), "\n")...)
	}
	exactlyOnce(t, archived, "app", n+2000)
	b, _ := os.ReadFile(extra)
	exactlyOnce(t, strings.Split(string(b), "\n"), "new", 1000)
}

// TestReloadRemovesFailingOutput: the usual incident. An output's receiver
// is down, its small queue fills, and the blocked fan-out stalls the other
// output too. Removing the failing output by a reload unblocks everything
// in place: the input keeps running (same reader), the other output gets
// every line exactly once, the file commits to its end, and what the
// removed output still held is counted as dropped (output_removed).
func TestReloadRemovesFailingOutput(t *testing.T) {
	down := &sink{}
	down.down.Store(true)
	hs := httptest.NewServer(down)
	defer hs.Close()

	dir := t.TempDir()
	appPath := filepath.Join(dir, "app.log")
	const n = 20000
	appendLines(t, appPath, "app", 0, n)
	archive := filepath.Join(dir, "archive.txt")
	cfgPath := filepath.Join(dir, "t.toml")
	base := fmt.Sprintf(`
[agent]
data_dir = %q
shutdown_timeout = "30s"
[api]
listen = ""
[inputs.app]
type = "file"
include = [%q]
poll_interval = "20ms"
[outputs.archive]
type = "file"
inputs = ["app"]
path = %q
compression = "none"
batch = { timeout = "20ms" }
`, filepath.Join(dir, "data"), appPath, archive)
	remote := fmt.Sprintf(`
[outputs.remote]
type = "http"
inputs = ["app"]
url = %q
format = "raw"
compression = "none"
batch = { max_events = 200, timeout = "20ms" }
queue = { max_events = 1000 }
retry = { initial = "20ms", max = "100ms" }
`, hs.URL)
	os.WriteFile(cfgPath, []byte(base+remote), 0o644)
	cfg, err := agent.LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := agent.NewSupervisor(cfg, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), agent.SupervisorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	var stopOnce sync.Once
	var runErr error
	stop := func() { stopOnce.Do(func() { cancel(); runErr = <-done }) }
	defer stop()

	var before agent.Status
	waitUntil(t, "the remote queue to fill and stall the pipeline", func() bool {
		before = sup.Status()
		o, _ := outputStatus(before, "remote")
		return o.FailingSince != nil && o.QueueEvents >= 800
	})
	arch, _ := outputStatus(before, "archive")
	if arch.Delivered >= n {
		t.Fatalf("the archive got everything although the fan-out should be stalled; the test proves nothing")
	}
	app0, _ := inputStatus(before, "app")

	os.WriteFile(cfgPath, []byte(base), 0o644)
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	if err := sup.Reload(rctx); err != nil {
		t.Fatalf("reload: %v", err)
	}
	after := sup.Status()
	app1, _ := inputStatus(after, "app")
	if !app1.Started.Equal(app0.Started) {
		t.Errorf("the input was restarted; the reload should have applied in place")
	}
	if _, ok := outputStatus(after, "remote"); ok {
		t.Errorf("the removed output still runs")
	}
	appendLines(t, appPath, "app", n, n+1000)
	waitUntil(t, "the archive to get every line and the file to commit", func() bool {
		st := sup.Status()
		in, _ := inputStatus(st, "app")
		o, _ := outputStatus(st, "archive")
		return o.Delivered == n+1000 && len(in.Files) == 1 && in.Files[0].Lag == 0
	})
	st := sup.Status()
	if st.Dropped["output_removed"] == 0 {
		t.Errorf("nothing counted as output_removed: %v", st.Dropped)
	}
	stop()
	if runErr != nil {
		t.Fatal(runErr)
	}
	b, _ := os.ReadFile(archive)
	exactlyOnce(t, strings.Split(string(b), "\n"), "app", n+1000)
	if len(down.got()) != 0 {
		t.Errorf("the down receiver accepted lines")
	}
}
