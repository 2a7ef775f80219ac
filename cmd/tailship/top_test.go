package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/api"
)

// runShipping runs an agent with its API on a free port, shipping a file of
// n lines to a file output, until the test ends. It returns the API address
// and the shipped file's path once everything is acknowledged.
func runShipping(t *testing.T, n int) (addr, logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "shipped-app.log")
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	os.WriteFile(logPath, b.Bytes(), 0o644)
	cfgPath := filepath.Join(dir, "t.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[agent]
data_dir = %q
[api]
listen = "127.0.0.1:0"
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
`, filepath.Join(dir, "data"), logPath, filepath.Join(dir, "out.txt"))), 0o644)
	cfg, err := agent.LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(cfg.API, zap.NewNop())
	sup, err := agent.NewSupervisor(cfg, zap.NewNop(), agent.SupervisorOptions{ObserveLatency: srv.ObserveLatency})
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach(sup)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close(context.Background())
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := sup.Status()
		if len(st.Outputs) == 1 && st.Outputs[0].Delivered == int64(n) && len(st.Inputs[0].Files) == 1 && st.Inputs[0].Files[0].Lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("file not shipped: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return srv.Addr(), logPath
}

// TestTopRendersUnderPTY: `tailship top` on a real pseudo-terminal draws a
// screen (clear and home) with a table that has the shipped file's path,
// its size and lag, and the output with its delivered count and queue.
func TestTopRendersUnderPTY(t *testing.T) {
	addr, logPath := runShipping(t, 2000)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 200}); err != nil {
		t.Fatal(err)
	}
	screen := make(chan []byte, 1)
	go func() {
		var b bytes.Buffer
		io.Copy(&b, ptmx) // ends with EIO once the terminal side is closed
		screen <- b.Bytes()
	}()
	var stderr bytes.Buffer
	code := run([]string{"top", "--addr", addr, "--once"}, tty, &stderr)
	tty.Close()
	out := string(<-screen)
	if code != exitOK {
		t.Fatalf("top exited %d: %s", code, stderr.String())
	}
	if !strings.Contains(out, "\x1b[H\x1b[2J") {
		t.Errorf("top did not redraw in place on a terminal:\n%q", out)
	}
	text := strings.ReplaceAll(out, "\r", "")
	rowRE := regexp.MustCompile(`(?m)^app +` + regexp.QuoteMeta(logPath) + ` +23\.4KiB +23\.4KiB +0B *$`)
	if !rowRE.MatchString(text) {
		t.Errorf("no row for %s with size, offset and lag 0 in:\n%s", logPath, text)
	}
	if !regexp.MustCompile(`(?m)^INPUT +FILE +SIZE +OFFSET +LAG *$`).MatchString(text) {
		t.Errorf("no file table header in:\n%s", text)
	}
	if !regexp.MustCompile(`(?m)^archive +file +- +2000 +0/20000 +0% +0 +0 +0 +- *$`).MatchString(text) {
		t.Errorf("no output row for archive with 2000 delivered in:\n%s", text)
	}
	if !strings.Contains(text, " ready") {
		t.Errorf("readiness not shown:\n%s", text)
	}
}

// TestTopPlainWhenNotATerminal: into a pipe or file, top writes plain
// snapshots without terminal control sequences.
func TestTopPlainWhenNotATerminal(t *testing.T) {
	addr, logPath := runShipping(t, 100)
	code, out, errOut := runCLI("top", "--addr", addr, "--once")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("escape sequences in plain output: %q", out)
	}
	if !strings.Contains(out, logPath) || !strings.Contains(out, "archive") {
		t.Errorf("plain output lacks the file or the output:\n%s", out)
	}
	// Without --addr, top reads api.listen from the config.
	cfgPath := filepath.Join(t.TempDir(), "top.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[agent]\ndata_dir = %q\n[api]\nlisten = %q\n", filepath.Join(filepath.Dir(cfgPath), "data"), addr)), 0o644)
	code, out, errOut = runCLI("top", "--config", cfgPath, "--once")
	if code != exitOK || !strings.Contains(out, logPath) {
		t.Errorf("top --config: exit %d, output %q, stderr %q", code, out, errOut)
	}
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("[agent]\ndata_dir = %q\n[api]\nlisten = \"\"\n", filepath.Join(filepath.Dir(cfgPath), "data"))), 0o644)
	if code, _, errOut = runCLI("top", "--config", cfgPath, "--once"); code != exitConfig || !strings.Contains(errOut, "disables the API") {
		t.Errorf("top with the API disabled: exit %d, stderr %q", code, errOut)
	}
	code, out, _ = runCLI("top", "--addr", "127.0.0.1:1", "--once")
	if code != exitRuntime || !strings.Contains(out, "http://127.0.0.1:1/status") {
		t.Errorf("top against nothing: exit %d (want %d), output %q (want the address it tried)", code, exitRuntime, out)
	}
}

// TestMain checks that no test leaves goroutines behind: the agents and
// API servers the top tests start, and top's own polling.
// TestTopRatesAndErrors: from two snapshots a second apart, the EVENTS/S
// column is each output's delivered difference per second and the header
// the lines per second; a failing output's LAST ERROR column says for how
// long and the first line of its error. With one snapshot there is no rate.
func TestTopRatesAndErrors(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	failing := time.Now().Add(-90 * time.Second)
	snap := func(at time.Time, lines, central, archive int64) *api.StatusDoc {
		d := &api.StatusDoc{Time: at, Readiness: api.Readiness{Ready: false, Reason: []string{"output central failing for 1m30s"}}}
		d.Config = "/etc/tailship/tailship.toml"
		d.InputLines = lines
		d.Outputs = []agent.OutputStatus{
			{Name: "central", Type: "http", Delivered: central, QueueEvents: 500, QueueMaxEvents: 1000, Retries: 7,
				FailingSince: &failing, LastError: "POST http://collector:8080/ingest: connection refused\nretrying"},
			{Name: "archive", Type: "file", Delivered: archive, QueueMaxEvents: 1000},
		}
		return d
	}
	prev, cur := snap(at, 5000, 1000, 4000), snap(at.Add(time.Second), 5300, 1250, 4300)

	columns := func(screen string) map[string][]string {
		rows := map[string][]string{}
		for _, l := range strings.Split(screen, "\n") {
			c := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(l), -1)
			if len(c) == 10 {
				rows[c[0]] = c
			}
		}
		if h := rows["OUTPUT"]; h == nil || h[2] != "EVENTS/S" || h[9] != "LAST ERROR" {
			t.Fatalf("no output table with EVENTS/S and LAST ERROR columns in\n%s", screen)
		}
		return rows
	}

	var b bytes.Buffer
	renderTop(&b, cur, prev, 0)
	screen := b.String()
	rows := columns(screen)
	if got := rows["central"][2]; got != "250" {
		t.Errorf("central EVENTS/S %q, want 250\n%s", got, screen)
	}
	if got := rows["archive"][2]; got != "300" {
		t.Errorf("archive EVENTS/S %q, want 300\n%s", got, screen)
	}
	if got, want := rows["central"][9], "failing 1m30s: POST http://collector:8080/ingest: connection refused ..."; got != want {
		t.Errorf("central LAST ERROR %q, want %q", got, want)
	}
	if got := rows["archive"][9]; got != "-" {
		t.Errorf("archive LAST ERROR %q, want - (healthy)", got)
	}
	if c := rows["central"]; c[4] != "500/1000" || c[5] != "50%" || c[6] != "7" {
		t.Errorf("central queue, fill, retries %q, want 500/1000 50%% 7", c[4:7])
	}
	if !strings.Contains(screen, "lines 5300 (300/s)") || !strings.Contains(screen, "NOT READY: output central failing for 1m30s") {
		t.Errorf("header lacks the line rate or readiness:\n%s", screen)
	}

	b.Reset()
	renderTop(&b, cur, nil, 0)
	if got := columns(b.String())["central"][2]; got != "-" {
		t.Errorf("first screen EVENTS/S %q, want - (no earlier snapshot)", got)
	}
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
