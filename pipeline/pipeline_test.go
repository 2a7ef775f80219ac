package pipeline_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestWholePipeline: 4 workers, 3 sources of 100k sequence-numbered lines,
// a fast output and a slow, flaky one, a memory budget small enough to make
// the readers wait. Every output gets every line exactly once and in order
// per source, and every source commits its full length.
func TestWholePipeline(t *testing.T) {
	lines := 100_000
	if testing.Short() {
		lines = 10_000
	}
	fast := &pipelinetest.Capture{}
	var batches atomic.Int64
	slow := &pipelinetest.Capture{
		Delay: 100 * time.Microsecond,
		Fail: func(attempt int, b *pipeline.Batch) error {
			if attempt == 1 && batches.Add(1)%4 == 0 {
				return errors.New("flaky")
			}
			if attempt == 2 && batches.Load()%12 == 0 {
				return pipeline.Throttle(errors.New("slow down"), 2*time.Millisecond)
			}
			return nil
		},
	}
	r := newRig(t, rigOptions{workers: 4, memory: 1 << 20},
		outSpec{"fast", fast, settings(func(s *pipeline.OutputSettings) {
			s.Batch.MaxEvents = 1000
			s.Batch.Timeout.UnmarshalText([]byte("5ms"))
		})},
		outSpec{"slow", slow, settings(func(s *pipeline.OutputSettings) {
			s.Batch.MaxEvents = 700
			s.Batch.MaxBytes = 5000
			s.Queue.MaxEvents = 3000
			s.Batch.Timeout.UnmarshalText([]byte("20ms"))
		})},
	)
	in := &pipelinetest.StaticInput{Sources: []string{"alpha", "beta", "gamma"}, Lines: lines, ChunkLines: 500}
	start := time.Now()
	r.runInput(in)
	r.stop()
	t.Logf("%d lines through 2 outputs in %v; slow output: %d batches, %d retries",
		3*lines, time.Since(start), slow.Batches(), r.runners[1].Out.Retries.Load())

	for _, out := range []*pipelinetest.Capture{fast, slow} {
		got := out.Lines()
		if len(got) != 3*lines {
			t.Errorf("output got %d lines, want %d", len(got), 3*lines)
		}
		if err := pipelinetest.CheckSequences(got, in.Want()); err != nil {
			t.Error(err)
		}
	}
	checkCommitted(t, in)
	if r.runners[1].Out.Retries.Load() == 0 {
		t.Error("the flaky output was never retried")
	}
	if n := r.stats.InputLines.Load(); n != int64(3*lines) {
		t.Errorf("InputLines %d", n)
	}
	if d := r.stats.DroppedByReason(); len(d) != 0 {
		t.Errorf("drops %v", d)
	}
	if u := r.p.Budget().Used(); u != 0 {
		t.Errorf("budget still charged %d", u)
	}
	for _, run := range r.runners {
		if e, b := run.Queue().Depth(); e != 0 || b != 0 {
			t.Errorf("%s: queue holds %d events, %d bytes", run.Name, e, b)
		}
	}
}

// TestBudgetBoundsMemory: with a stalled output, what is charged (line
// buffers and their events) stays within the limit and the readers wait
// instead of buffering.
func TestBudgetBoundsMemory(t *testing.T) {
	const limit = 64 << 10
	block := make(chan struct{})
	out := &pipelinetest.Capture{Block: block}
	r := newRig(t, rigOptions{workers: 2, memory: limit}, outSpec{"cap", out, settings(nil)})
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 20_000, ChunkLines: 300} // 300*12 B: 4 KiB class
	done := make(chan error, 1)
	go func() { done <- in.Run(context.Background(), r.stream) }()
	// Each chunk is charged its 4 KiB buffer and its 300 events: the budget
	// is full once a further chunk does not fit.
	eventually(t, "the budget to fill", func() bool { return r.p.Budget().Used() > limit/2 })
	time.Sleep(settle)
	if u := r.p.Budget().Used(); u > limit {
		t.Fatalf("budget charged %d beyond its limit %d", u, limit)
	}
	select {
	case err := <-done:
		t.Fatalf("input finished (%v) although the output is stalled and the budget is small", err)
	default:
	}
	// The input is held in one long wait: backpressure counts it while it
	// lasts, not only once it ends (an outage would read as 0 otherwise).
	bp0 := r.stream.Backpressure()
	const pause = 100 * time.Millisecond
	time.Sleep(pause)
	if bp := r.stream.Backpressure(); bp-bp0 < pause {
		t.Fatalf("backpressure went from %v to %v over %v of waiting", bp0, bp, pause)
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.stop()
	if err := pipelinetest.CheckSequences(out.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	checkCommitted(t, in)
}
