package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
)

// TestLoggerSampledJSON: the agent's own log is JSON by default and
// sampled, so one message repeated in a tight loop (a failing output) logs
// its first lines and then a trickle, not every repeat.
func TestLoggerSampledJSON(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.log")
	log, err := agent.NewLogger(agent.AgentConfig{LogLevel: "info", LogFormat: "json", LogFile: path})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		log.Warn("output write failed; retrying", zap.Int("attempt", i))
	}
	log.Info("another message")
	log.Sync()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	repeats := 0
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "output write failed; retrying" {
			repeats++
		}
	}
	// 10 at first, then every 100th within the second: at most 10 + 50.
	if repeats < 10 || repeats > 60 {
		t.Errorf("%d of 5000 repeated messages logged, want 10..60", repeats)
	}
	if !strings.Contains(string(b), "another message") {
		t.Errorf("a different message was sampled away")
	}
}

// TestLoggerConsole: log_format = "console" is for people: one
// tab-separated line per entry (time, upper-case level, caller, message,
// then the fields as one JSON object), not JSON; the level and the
// sampling apply as they do to JSON.
func TestLoggerConsole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	log, err := agent.NewLogger(agent.AgentConfig{LogLevel: "info", LogFormat: "console", LogFile: path})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("below the level")
	log.Info("output failing", zap.String("output", "central"), zap.Error(errors.New("connection refused")))
	for i := range 5000 {
		log.Warn("output write failed; retrying", zap.Int("attempt", i))
	}
	log.Sync()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if strings.Contains(string(b), "below the level") {
		t.Errorf("a debug entry was logged at level info")
	}
	first := strings.Split(lines[0], "\t")
	if len(first) != 5 {
		t.Fatalf("first line %q: %d tab-separated columns, want time, level, caller, message, fields", lines[0], len(first))
	}
	if json.Valid([]byte(lines[0])) {
		t.Errorf("console line %q is JSON", lines[0])
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", first[0]); err != nil {
		t.Errorf("time column %q: %v", first[0], err)
	}
	if first[1] != "INFO" || !strings.HasSuffix(strings.Split(first[2], ":")[0], "logging_test.go") || first[3] != "output failing" {
		t.Errorf("columns %q, want INFO, this file as caller, the message", first[1:4])
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(first[4]), &fields); err != nil || fields["output"] != "central" || fields["error"] != "connection refused" {
		t.Errorf("fields column %q (%v), want output and error", first[4], err)
	}
	repeats := 0
	for _, l := range lines[1:] {
		if c := strings.Split(l, "\t"); len(c) >= 4 && c[1] == "WARN" && c[3] == "output write failed; retrying" {
			repeats++
		}
	}
	if repeats < 10 || repeats > 60 || repeats != len(lines)-1 {
		t.Errorf("%d of 5000 repeats logged in %d lines, want 10..60 and nothing else", repeats, len(lines)-1)
	}
}

// TestAgentSkipsItsOwnLogFile: agent.log_file inside an input's globs is
// never read, even though the glob matches it; the other files are.
func TestAgentSkipsItsOwnLogFile(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	own := filepath.Join(logs, "tailship.log")
	var app bytes.Buffer
	for i := range 500 {
		fmt.Fprintf(&app, "app %04d\n", i)
	}
	os.WriteFile(filepath.Join(logs, "app.log"), app.Bytes(), 0o644)
	out := filepath.Join(dir, "out.txt")
	doc := fmt.Sprintf(`
[agent]
data_dir = %q
log_file = %q
log_level = "debug"
[inputs.all]
type = "file"
include = [%q]
poll_interval = "20ms"
scan_interval = "50ms"
[outputs.out]
type = "file"
inputs = ["all"]
path = %q
compression = "none"
batch = { timeout = "10ms" }
`, filepath.Join(dir, "data"), own, filepath.Join(logs, "*.log"), out)
	cfg, err := agent.Load("t.toml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	log, err := agent.NewLogger(cfg.Agent)
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if bytes.Count(b, []byte("\n")) >= 500 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("only %d lines shipped", bytes.Count(b, []byte("\n")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Several scans with the agent's log growing (debug level logs
	// each scan's findings and the run's start).
	time.Sleep(300 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	log.Sync()
	own0, _ := os.ReadFile(own)
	if len(own0) == 0 {
		t.Fatalf("the agent's log file is empty; the test proves nothing")
	}
	b, _ := os.ReadFile(out)
	if got := string(b); got != app.String() {
		t.Errorf("output is not exactly app.log (%d bytes, want %d); the agent's own log was read?", len(got), app.Len())
	}
	if st := a.Stats(); st.InputLines.Load() != 500 {
		t.Errorf("input_lines = %d, want 500", st.InputLines.Load())
	}
}
