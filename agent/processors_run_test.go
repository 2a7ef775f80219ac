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
)

// TestAgentFiltersAndRoutes: the real agent reads a logfmt file, drops the
// debug lines (input filter), and routes by content: "errors" (JSON) takes
// error and fatal lines, "all" (raw, with processors that add and rename
// fields on its own copy) takes every event with a seq, "stats" takes only
// the aggregate events. Each line reaches exactly its outputs, once, in
// order; the raw output writes the original lines although its processors
// changed fields; the JSON output does not see the other output's
// changes; the aggregate counts match what was fed; and the checkpoint
// covers the whole file, filtered lines included.
func TestAgentFiltersAndRoutes(t *testing.T) {
	dir := t.TempDir()
	levels := []string{"debug", "info", "warn", "error", "fatal"}
	var in bytes.Buffer
	var wantAll, wantErr []string
	const n = 5000
	for i := range n {
		lvl := levels[i%5]
		line := fmt.Sprintf("seq=%d level=%s route=/r%d ms=%d", i, lvl, i%3, i%100)
		fmt.Fprintln(&in, line)
		if lvl == "debug" {
			continue
		}
		wantAll = append(wantAll, line)
		if lvl == "error" || lvl == "fatal" {
			wantErr = append(wantErr, fmt.Sprintf("%d %s", i, lvl))
		}
	}
	os.WriteFile(filepath.Join(dir, "app.log"), in.Bytes(), 0o644)
	allPath, errPath, statsPath := filepath.Join(dir, "all.txt"), filepath.Join(dir, "errors.json"), filepath.Join(dir, "stats.json")
	doc := fmt.Sprintf(`
[agent]
data_dir = %q
[inputs.app]
type = "file"
include = [%q]
parser = "logfmt"

[[inputs.app.processors]]
type = "filter"
field = "level"
equals = "debug"
action = "drop"

[[inputs.app.processors]]
type = "aggregate"
name = "lines"
group_by = ["route"]
field = "ms"
width = "1h"

[outputs.all]
type = "file"
inputs = ["app"]
when = { field = "seq", match = "." }
path = %q
format = "raw"
compression = "none"
batch = { timeout = "10ms", max_events = 97 }
processors = [
  { type = "rename", fields = { level = "severity" } },
  { type = "add_fields", fields = { team = "ops" } },
]

[outputs.errors]
type = "file"
inputs = ["app"]
when = { field = "level", match = "^(error|fatal)$" }
path = %q
format = "json"
compression = "none"
batch = { timeout = "10ms", max_events = 31 }

[outputs.stats]
type = "file"
inputs = ["app"]
when = { field = "aggregate", equals = "lines" }
path = %q
format = "json"
compression = "none"
`, filepath.Join(dir, "data"), filepath.Join(dir, "*.log"), allPath, errPath, statsPath)
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
	deadline := time.Now().Add(20 * time.Second)
	for {
		all, _ := os.ReadFile(allPath)
		errs, _ := os.ReadFile(errPath)
		if bytes.Count(all, []byte("\n")) >= len(wantAll) && bytes.Count(errs, []byte("\n")) >= len(wantErr) {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("shipped %d and %d lines, want %d and %d", bytes.Count(all, []byte("\n")), bytes.Count(errs, []byte("\n")), len(wantAll), len(wantErr))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	all, _ := os.ReadFile(allPath)
	if got := strings.Split(strings.TrimSuffix(string(all), "\n"), "\n"); strings.Join(got, "\n") != strings.Join(wantAll, "\n") {
		t.Fatalf("all: %d lines, want %d (raw, original, in order); first %q", len(got), len(wantAll), got[:min(3, len(got))])
	}
	errs, _ := os.ReadFile(errPath)
	var gotErr []string
	for _, l := range strings.Split(strings.TrimSuffix(string(errs), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("errors: %v: %s", err, l)
		}
		if _, renamed := m["severity"]; renamed || m["team"] != nil {
			t.Fatalf("errors output sees the all output's processors: %s", l)
		}
		gotErr = append(gotErr, fmt.Sprintf("%v %v", m["seq"], m["level"]))
	}
	if strings.Join(gotErr, ",") != strings.Join(wantErr, ",") {
		t.Fatalf("errors: %d events, want %d, in order", len(gotErr), len(wantErr))
	}

	// One aggregate per route, emitted at shutdown, over the lines the
	// filter kept: count, sum, avg, min and max of ms computed here.
	type agg struct{ count, sum, min, max float64 }
	want := map[string]*agg{}
	for i := range n {
		if i%5 == 0 {
			continue // debug
		}
		r := fmt.Sprintf("/r%d", i%3)
		v := float64(i % 100)
		g := want[r]
		if g == nil {
			g = &agg{min: v, max: v}
			want[r] = g
		}
		g.count++
		g.sum += v
		g.min, g.max = min(g.min, v), max(g.max, v)
	}
	stats, _ := os.ReadFile(statsPath)
	lines := strings.Split(strings.TrimSuffix(string(stats), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("stats: %d events, want %d: %s", len(lines), len(want), stats)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		g := want[fmt.Sprint(m["route"])]
		if g == nil || m["count"] != g.count || m["sum"] != g.sum || m["avg"] != g.sum/g.count || m["min"] != g.min || m["max"] != g.max {
			t.Fatalf("stats event %s; want %+v", l, g)
		}
	}
	if got := len(a.Series()); got != 3*5 {
		t.Fatalf("%d series, want 3 routes x count/sum/avg/min/max", got)
	}
	if d := a.Stats().DroppedByReason()["filter"]; d != n/5 {
		t.Fatalf("filter drops %d, want %d", d, n/5)
	}
	cp, _ := os.ReadFile(filepath.Join(dir, "data", "checkpoints.json"))
	if !bytes.Contains(cp, []byte(fmt.Sprintf(`"offset": %d`, in.Len()))) && !bytes.Contains(cp, []byte(fmt.Sprintf(`"offset":%d`, in.Len()))) {
		t.Errorf("checkpoint does not commit the whole file (%d bytes): %s", in.Len(), cp)
	}
}
