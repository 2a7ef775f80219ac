package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// TestAgentJoinsCRIPartials: a container log whose long lines the runtime
// split into P pieces, big enough to span many reads, is shipped by the
// real agent with every line whole, in order, and committed to its end.
func TestAgentJoinsCRIPartials(t *testing.T) {
	dir := t.TempDir()
	var in bytes.Buffer
	var want []string
	const n = 3000
	piece := strings.Repeat("x", 300)
	for i := range n {
		ts := "2026-11-22T10:00:00.000000001Z"
		pieces := i % 4 // 0 to 3 P pieces before the F line
		for range pieces {
			fmt.Fprintf(&in, "%s stdout P %s\n", ts, piece)
		}
		fmt.Fprintf(&in, "%s stdout F end-%d\n", ts, i)
		want = append(want, fmt.Sprintf("%s stdout F %send-%d", ts, strings.Repeat(piece, pieces), i))
	}
	os.WriteFile(filepath.Join(dir, "pod.log"), in.Bytes(), 0o644)
	out := filepath.Join(dir, "shipped.txt") // not matched by the input glob
	doc := fmt.Sprintf(`
[agent]
data_dir = %q
[inputs.pods]
type = "file"
include = [%q]
parser = "cri"
[outputs.out]
type = "file"
inputs = ["pods"]
path = %q
format = "raw"
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
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(got) != n {
		for i := range 8 {
			t.Logf("%.100q", got[i])
		}
		t.Fatalf("%d lines, want %d", len(got), n)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d:\n got %.80q...\nwant %.80q...", i, got[i], want[i])
		}
	}
	if e := a.Stats().ParseErrors.Load(); e != 0 {
		t.Errorf("%d parse errors", e)
	}
	// Every byte was committed: the checkpoint file names the file's size.
	cp, _ := os.ReadFile(filepath.Join(dir, "data", "checkpoints.json"))
	if !bytes.Contains(cp, []byte(fmt.Sprintf(`"offset": %d`, in.Len()))) && !bytes.Contains(cp, []byte(fmt.Sprintf(`"offset":%d`, in.Len()))) {
		t.Errorf("checkpoint does not commit the whole file (%d bytes): %s", in.Len(), cp)
	}
}
