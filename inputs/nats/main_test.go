package nats

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// rig runs one input through a real pipeline (pool, reorder, runner with
// retries) into a capturing output that can be switched down.
type rig struct {
	t    testing.TB
	out  *pipelinetest.Capture
	down atomic.Bool
	// giveUp makes stop drop what the failing output holds instead of
	// delivering it, once the input has returned: as if the agent died.
	giveUp atomic.Bool
	stats  *pipeline.Stats
	input  pipeline.Input
	stop   func()
	once   sync.Once
}

func startRig(t testing.TB, in pipeline.InputConfig, name string, down bool, set ...func(*pipelinetest.Capture)) *rig {
	t.Helper()
	return startRigLog(t, in, name, down, nil, set...)
}

// startRigLog is startRig with the input's logger.
func startRigLog(t testing.TB, in pipeline.InputConfig, name string, down bool, log *zap.Logger, set ...func(*pipelinetest.Capture)) *rig {
	t.Helper()
	if err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := in.Common().Validate(); err != nil {
		t.Fatal(err)
	}
	rg := &rig{t: t, stats: &pipeline.Stats{}}
	rg.down.Store(down)
	rg.out = &pipelinetest.Capture{Fail: func(int, *pipeline.Batch) error {
		if rg.down.Load() {
			return errDown
		}
		return nil
	}}
	for _, f := range set {
		f(rg.out)
	}
	input, err := in.Build(pipeline.BuildContext{Name: name, Stats: rg.stats, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rg.input = input
	os := pipeline.DefaultOutputSettings()
	os.Inputs = []string{name}
	os.Batch.Timeout = config.Dur(10 * time.Millisecond)
	os.Batch.MaxEvents = 500
	os.Retry.Initial = config.Dur(20 * time.Millisecond)
	os.Retry.Max = config.Dur(50 * time.Millisecond)
	r := pipeline.NewRunner("cap", rg.out, os, nil, rg.stats)
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 16 << 20, Stats: rg.stats})
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
	rg.stop = func() {
		rg.once.Do(func() {
			cancel()
			wg.Wait()
			if rg.giveUp.Load() {
				r.Discard()
			} else {
				rg.down.Store(false)
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
	t.Cleanup(rg.stop)
	return rg
}

type downError struct{}

func (downError) Error() string { return "test output is down" }

var errDown = downError{}

// waitFor polls cond: a wait for progress, not a speed assertion; the
// deadline only keeps a broken input from hanging CI.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
