package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// finiteConfig is a test input that emits lines lines and returns once
// they are committed: a finite input (pipeline.Finite), like stdin.
type finiteConfig struct {
	pipeline.InputSettings
	Lines int `toml:"lines"`
}

func (c *finiteConfig) Validate() error { return nil }
func (c *finiteConfig) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	return &finiteInput{name: bc.Name, lines: c.Lines}, nil
}

type finiteInput struct {
	name  string
	lines int
}

func (in *finiteInput) Finite() bool { return true }

func (in *finiteInput) Run(ctx context.Context, e pipeline.Emitter) error {
	f := pipelinetest.NewFeeder(e, in.name)
	if err := f.Emit(ctx, in.lines); err != nil {
		return nil
	}
	_, end := f.Emitted()
	for f.Committed() < end {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func init() {
	pipeline.RegisterInput("finite-test", func() pipeline.InputConfig {
		return &finiteConfig{InputSettings: pipeline.DefaultInputSettings()}
	})
}

func runFinite(t *testing.T, extraInput string) (returned bool, out string) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	doc := fmt.Sprintf(`
[agent]
data_dir = %q
[inputs.one]
type = "finite-test"
lines = 300
[inputs.two]
type = "finite-test"
lines = 200
%s
[outputs.out]
type = "file"
inputs = ["one", "two"]
path = %q
compression = "none"
batch = { timeout = "10ms" }
`, filepath.Join(dir, "data"), strings.ReplaceAll(extraInput, "DIR", dir), path)
	cfg, err := agent.Load("t.toml", []byte(doc), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		returned = true
	case <-time.After(3 * time.Second):
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	return returned, string(b)
}

// TestFiniteInputsEndTheAgent: when every input is finite and has ended,
// Run returns nil by itself with everything delivered; with a file input
// next to them, it keeps running until stopped.
func TestFiniteInputsEndTheAgent(t *testing.T) {
	returned, out := runFinite(t, "")
	if !returned {
		t.Fatal("Run kept running after every finite input ended")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if err := pipelinetest.CheckSequences(lines, map[string]int{"one": 300, "two": 200}); err != nil {
		t.Fatal(err)
	}
	returned, _ = runFinite(t, "[inputs.files]\ntype = \"file\"\ninclude = [\"DIR/*.log-none\"]\n")
	if returned {
		t.Fatal("Run returned while a file input was still running")
	}
}
