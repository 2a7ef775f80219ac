package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/outputs/file"
)

// TestAgentRunsParser: `parser = "json"` in the config reaches the worker
// pool. A file of JSON lines (a few malformed) is shipped to a JSON file
// output; every line arrives, in order, with its fields typed, and the
// malformed ones raw with parse_error, counted.
func TestAgentRunsParser(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	const n = 1000
	for i := range n {
		if i%250 == 7 {
			fmt.Fprintf(&in, "{\"seq\":%d, oops\n", i)
			continue
		}
		fmt.Fprintf(&in, "{\"seq\":%d,\"level\":\"info\",\"ok\":true,\"time\":\"2026-11-22T10:00:00Z\"}\n", i)
	}
	os.WriteFile(filepath.Join(dir, "app.log"), in.Bytes(), 0o644)
	out := filepath.Join(dir, "out.json")
	doc := fmt.Sprintf(`
[agent]
data_dir = %q
[inputs.app]
type = "file"
include = [%q]
parser = "json"
parse = { timestamp = { field = "time", layout = "2006-01-02T15:04:05Z07:00" } }
[outputs.out]
type = "file"
inputs = ["app"]
path = %q
format = "json"
compression = "none"
batch = { timeout = "10ms" }
`, filepath.Join(dir, "data"), filepath.Join(dir, "*.log"), out)
	cfg, err := agent.Load("t.toml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if bytes.Count(b, []byte("\n")) >= n {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("only %d lines shipped", bytes.Count(b, []byte("\n")))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out)
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, l)
		}
		if i%250 == 7 {
			if _, ok := m["parse_error"]; !ok || m["message"] != fmt.Sprintf(`{"seq":%d, oops`, i) {
				t.Fatalf("line %d: want a raw line with parse_error, got %s", i, l)
			}
			continue
		}
		if m["seq"] != float64(i) || m["level"] != "info" || m["ok"] != true {
			t.Fatalf("line %d: %s", i, l)
		}
	}
	if got := a.Stats().ParseErrors.Load(); got != 4 {
		t.Errorf("ParseErrors = %d, want 4", got)
	}
}
