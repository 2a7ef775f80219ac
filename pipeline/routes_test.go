package pipeline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestSetRoutesSwitchesOutputs: a running stream re-routed from output a to
// output b (a live reload that replaces an output) hands every chunk to
// exactly one of them: a has the lines handed out before the switch, b the
// rest, in order, and the stream's in-flight count returns to 0 with everything
// committed.
func TestSetRoutesSwitchesOutputs(t *testing.T) {
	capA, capB := &pipelinetest.Capture{}, &pipelinetest.Capture{}
	set := settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 100 })
	p := pipeline.New(pipeline.Options{Workers: 2})
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	ra := pipeline.NewRunner("a", capA, set, nil, nil)
	rb := pipeline.NewRunner("b", capB, set, nil, nil)
	ra.Start(abortCtx)
	rb.Start(abortCtx)
	p.Start(abortCtx)
	st := p.NewStream("in", 0, nil, nil, []*pipeline.Runner{ra})
	f := pipelinetest.NewFeeder(st, "f")
	ctx := context.Background()
	for range 50 {
		if err := f.Emit(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := st.SetRoutes(rctx, []*pipeline.Runner{rb}); err != nil {
		t.Fatal(err)
	}
	// a gets nothing new now; Stop delivers its queue.
	if err := ra.Stop(rctx); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if err := f.Emit(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	p.Drain()
	if err := rb.Stop(rctx); err != nil {
		t.Fatal(err)
	}
	if n := st.InFlight(); n != 0 {
		t.Errorf("stream in flight = %d after everything was delivered", n)
	}
	_, emitted := f.Emitted()
	if f.Committed() != emitted {
		t.Errorf("committed %d of %d bytes", f.Committed(), emitted)
	}
	// Chunks still in the worker pool at the switch go to b: the split
	// is where fan-out was, not where the input was.
	if capA.Len() == 0 || capA.Len() > 5000 || capB.Len() < 5000 {
		t.Errorf("a got %d lines, b %d: want a a prefix of the first 5000, b the rest", capA.Len(), capB.Len())
	}
	all := append(capA.Lines(), capB.Lines()...)
	if err := pipelinetest.CheckSequences(all, map[string]int{"f": 10000}); err != nil {
		t.Error(err)
	}
}

// TestDiscardSettlesAFailingOutput: a runner whose output keeps failing
// holds its chunks unacknowledged; Discard makes it drop them, counted as
// output_removed, so the source commits everything and Stop returns.
func TestDiscardSettlesAFailingOutput(t *testing.T) {
	failing := &pipelinetest.Capture{Fail: func(int, *pipeline.Batch) error { return errors.New("receiver down") }}
	stats := &pipeline.Stats{}
	p := pipeline.New(pipeline.Options{Workers: 2, Stats: stats})
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	r := pipeline.NewRunner("gone", failing, settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 100 }), nil, stats)
	r.Start(abortCtx)
	p.Start(abortCtx)
	st := p.NewStream("in", 0, nil, nil, []*pipeline.Runner{r})
	f := pipelinetest.NewFeeder(st, "f")
	ctx := context.Background()
	for range 20 {
		if err := f.Emit(ctx, 100); err != nil {
			t.Fatal(err)
		}
	}
	p.Drain()
	deadline := time.Now().Add(10 * time.Second)
	for r.Out.Retries.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the output never failed")
		}
		time.Sleep(time.Millisecond)
	}
	if f.Committed() != 0 {
		t.Fatalf("committed %d while the only output fails", f.Committed())
	}
	r.Discard()
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.Stop(sctx); err != nil {
		t.Fatalf("Stop after Discard: %v", err)
	}
	_, emitted := f.Emitted()
	if f.Committed() != emitted || st.InFlight() != 0 {
		t.Errorf("committed %d of %d, %d chunks in flight", f.Committed(), emitted, st.InFlight())
	}
	if got := stats.DroppedByReason()["output_removed"]; got != 2000 || r.Out.Dropped.Load() != 2000 {
		t.Errorf("dropped output_removed = %d, runner dropped %d, want 2000", got, r.Out.Dropped.Load())
	}
	if failing.Len() != 0 {
		t.Errorf("the failing output recorded %d lines", failing.Len())
	}
}
