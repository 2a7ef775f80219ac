package stdin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// run feeds r through a real pipeline into out and returns Run's result
// and what out held at the moment Run returned.
func run(t *testing.T, ctx context.Context, r *os.File, out *pipelinetest.Capture) (error, []string) {
	t.Helper()
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	in, err := cfg.Build(pipeline.BuildContext{Name: "stdin"})
	if err != nil {
		t.Fatal(err)
	}
	in.(*Input).f = r
	set := pipeline.DefaultOutputSettings()
	set.Batch.Timeout = config.Dur(10 * time.Millisecond)
	set.Batch.MaxEvents = 300
	set.Retry.Initial = config.Dur(5 * time.Millisecond)
	set.Retry.Max = config.Dur(20 * time.Millisecond)
	stats := &pipeline.Stats{}
	runner := pipeline.NewRunner("cap", out, set, nil, stats)
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 8 << 20, Stats: stats})
	abort, cancel := context.WithCancel(context.Background())
	defer cancel()
	runner.Start(abort)
	p.Start(abort)
	st := p.NewStream("stdin", int(cfg.MaxLineBytes), nil, nil, []*pipeline.Runner{runner})
	runErr := in.Run(ctx, st)
	got := out.Lines()
	p.Drain()
	if err := runner.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	return runErr, got
}

// TestEOFAfterDelivery: every line written to the pipe, the last one
// without a newline, is delivered once and in order before Run returns,
// although the output fails its first attempts at every few batches.
func TestEOFAfterDelivery(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const n = 20000
	go func() {
		var b strings.Builder
		for i := range n {
			b.WriteString(pipelinetest.Line("stdin", i))
		}
		s := strings.TrimSuffix(b.String(), "\n") // the last line lacks its newline
		for len(s) > 0 {
			k := min(len(s), 7777) // uneven writes: lines split across reads
			if _, err := w.WriteString(s[:k]); err != nil {
				break
			}
			s = s[k:]
		}
		w.Close()
	}()
	var failures atomic.Int64
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		if attempt < 3 && failures.Add(1)%4 == 1 {
			return errors.New("receiver down")
		}
		return nil
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runErr, got := run(t, ctx, r, out)
	if runErr != nil {
		t.Fatalf("Run: %v", runErr)
	}
	if ctx.Err() != nil {
		t.Fatal("Run returned only because the test's deadline passed")
	}
	if failures.Load() == 0 {
		t.Fatal("the output never failed; the test proves nothing about retries")
	}
	if err := pipelinetest.CheckSequences(got, map[string]int{"stdin": n}); err != nil {
		t.Fatalf("at the time Run returned: %v", err)
	}
}

// TestStopWhileReading: a pipe that stays open does not keep Run from
// returning when ctx ends, and what was read is delivered.
func TestStopWhileReading(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for i := range 10 {
		fmt.Fprint(w, pipelinetest.Line("stdin", i))
	}
	out := &pipelinetest.Capture{}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for out.Len() < 10 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	done := make(chan error, 1)
	var got []string
	go func() {
		var err error
		err, got = run(t, ctx, r, out)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after ctx ended while a read was blocked")
	}
	if err := pipelinetest.CheckSequences(got, map[string]int{"stdin": 10}); err != nil {
		t.Fatal(err)
	}
}
