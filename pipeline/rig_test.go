package pipeline_test

import (
	"context"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// settle: see the internal tests.
const settle = 50 * time.Millisecond

// settings returns valid output settings for tests: quick retries, and a
// batch timeout long enough that batches close only on their limits or at
// Stop, so batch sizes are deterministic.
func settings(mod func(s *pipeline.OutputSettings)) pipeline.OutputSettings {
	s := pipeline.DefaultOutputSettings()
	s.Inputs = []string{"in"}
	s.Batch.Timeout = config.Dur(time.Hour)
	s.Retry.Initial = config.Dur(time.Millisecond)
	s.Retry.Max = config.Dur(5 * time.Millisecond)
	if mod != nil {
		mod(&s)
	}
	return s
}

type outSpec struct {
	name string
	out  pipeline.Output
	set  pipeline.OutputSettings
}

// rig is a started pipeline with one stream ("in") routed to some outputs.
type rig struct {
	t       *testing.T
	p       *pipeline.Pipeline
	stats   *pipeline.Stats
	runners []*pipeline.Runner
	stream  *pipeline.Stream
	ctx     context.Context // for inputs
	abort   context.CancelFunc
	stopped bool
}

type rigOptions struct {
	workers int
	memory  int64
	maxLine int
	procs   []pipeline.Processor
	// routes are outputs' conditions and processors (Runner.Route), by
	// output name.
	routes map[string]route
}

type route struct {
	when  *pipeline.Condition
	procs []pipeline.Processor
}

func newRig(t *testing.T, o rigOptions, outs ...outSpec) *rig {
	t.Helper()
	stats := &pipeline.Stats{}
	p := pipeline.New(pipeline.Options{Workers: o.workers, MemoryLimit: o.memory, Stats: stats})
	abortCtx, abort := context.WithCancel(context.Background())
	r := &rig{t: t, p: p, stats: stats, ctx: context.Background(), abort: abort}
	for _, spec := range outs {
		if err := spec.set.Validate(); err != nil {
			t.Fatalf("output %s: invalid test settings: %v", spec.name, err)
		}
		run := pipeline.NewRunner(spec.name, spec.out, spec.set, nil, stats)
		if rt, ok := o.routes[spec.name]; ok {
			if err := run.Route(rt.when, rt.procs); err != nil {
				t.Fatal(err)
			}
		}
		run.Start(abortCtx)
		r.runners = append(r.runners, run)
	}
	p.Start(abortCtx)
	r.stream = p.NewStream("in", o.maxLine, nil, o.procs, r.runners)
	t.Cleanup(func() {
		if !r.stopped {
			// A failed test: force everything down so goleak reports
			// the real problem rather than this test's goroutines.
			abort()
			p.Drain()
			for _, run := range r.runners {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = run.Stop(ctx)
				cancel()
			}
		}
	})
	return r
}

// stop is the orderly shutdown: inputs have returned, so drain the pool,
// then stop every runner, which delivers what is queued.
func (r *rig) stop() {
	r.t.Helper()
	r.stopped = true
	r.p.Drain()
	for _, run := range r.runners {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := run.Stop(ctx); err != nil {
			r.t.Errorf("Stop(%s): %v", run.Name, err)
		}
		cancel()
	}
	r.abort()
}

// run emits every line of in and stops the rig.
func (r *rig) runInput(in *pipelinetest.StaticInput) {
	r.t.Helper()
	if err := in.Run(r.ctx, r.stream); err != nil {
		r.t.Fatalf("input: %v", err)
	}
}

// eventually polls cond until it holds, or fails after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkCommitted asserts that every source of in committed its full size
// and that no commit went backwards.
func checkCommitted(t *testing.T, in *pipelinetest.StaticInput) {
	t.Helper()
	for _, name := range in.Sources {
		f := in.Feeder(name)
		if got, want := f.Committed(), in.Size(name); got != want {
			t.Errorf("source %s: committed %d, want %d", name, got, want)
		}
		if _, back := f.Commits(); back != 0 {
			t.Errorf("source %s: %d commits went backwards", name, back)
		}
		if n := f.Source().InFlight(); n != 0 {
			t.Errorf("source %s: %d chunks still in flight", name, n)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func repeat(n, times int, tail ...int) []int {
	out := make([]int, 0, times+len(tail))
	for range times {
		out = append(out, n)
	}
	return append(out, tail...)
}

// firstSeq returns the sequence number of a batch's first event.
func firstSeq(b *pipeline.Batch) int {
	for _, ev := range b.All() {
		_, seq, err := pipelinetest.ParseLine(string(ev.Raw))
		if err != nil {
			panic(err)
		}
		return seq
	}
	return -1
}
