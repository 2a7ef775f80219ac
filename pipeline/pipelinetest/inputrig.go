package pipelinetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// InputRig runs one input through a real pipeline (pool, reorder, runner
// with retries) into a capturing output that can be switched down: the
// harness of the consumer inputs' tests.
type InputRig struct {
	Out  *Capture
	Down atomic.Bool // the output fails every batch while set
	// GiveUp makes Stop drop what the failing output holds instead of
	// delivering it, once the input has returned: as if the agent died.
	GiveUp atomic.Bool
	Stats  *pipeline.Stats
	Input  pipeline.Input
	// Stop stops the input, delivers (or gives up) what is held and stops
	// the pipeline; it also runs at the test's cleanup.
	Stop func()
	once sync.Once
}

// StartInput builds in as input name and runs it into the rig's output
// (failing from the start when down); log may be nil.
func StartInput(t testing.TB, in pipeline.InputConfig, name string, down bool, log *zap.Logger, set ...func(*Capture)) *InputRig {
	t.Helper()
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := in.Common().Validate(); err != nil {
		t.Fatal(err)
	}
	rg := &InputRig{Stats: &pipeline.Stats{}}
	rg.Down.Store(down)
	rg.Out = &Capture{Fail: func(int, *pipeline.Batch) error {
		if rg.Down.Load() {
			return ErrDown
		}
		return nil
	}}
	for _, f := range set {
		f(rg.Out)
	}
	input, err := in.Build(pipeline.BuildContext{Name: name, Stats: rg.Stats, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rg.Input = input
	os := pipeline.DefaultOutputSettings()
	os.Inputs = []string{name}
	os.Batch.Timeout = config.Dur(10 * time.Millisecond)
	os.Batch.MaxEvents = 500
	os.Retry.Initial = config.Dur(20 * time.Millisecond)
	os.Retry.Max = config.Dur(50 * time.Millisecond)
	r := pipeline.NewRunner("cap", rg.Out, os, nil, rg.Stats)
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 16 << 20, Stats: rg.Stats})
	abort, abortCancel := context.WithCancel(context.Background())
	r.Start(abort)
	p.Start(abort)
	common := in.Common()
	st := p.NewStream(name, int(common.MaxLineBytes), nil, nil, []*pipeline.Runner{r})
	spec, err := pipeline.BuildParser(common)
	if err != nil {
		t.Fatal(err)
	}
	st.SetParser(spec)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := input.Run(ctx, st); err != nil {
			t.Error(err)
		}
	}()
	rg.Stop = func() {
		rg.once.Do(func() {
			cancel()
			wg.Wait()
			if rg.GiveUp.Load() {
				r.Discard()
			} else {
				rg.Down.Store(false)
			}
			p.Drain()
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			if err := r.Stop(sctx); err != nil {
				t.Error(err)
			}
			abortCancel()
		})
	}
	t.Cleanup(rg.Stop)
	return rg
}

type downError struct{}

func (downError) Error() string { return "test output is down" }

// ErrDown is what the rig's output returns while Down is set.
var ErrDown = downError{}

// WaitFor polls cond: a wait for progress, not a speed assertion; the
// deadline only keeps a broken input from hanging CI.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
