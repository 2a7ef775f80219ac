package pipelinetest

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
)

// ShipOptions are the optional parts of Ship.
type ShipOptions struct {
	Fields  []pipeline.Field     // static fields of the input
	Procs   []pipeline.Processor // run on every event, e.g. to set fields
	Timeout time.Duration        // default 60s
	Logger  *zap.Logger          // the runner's; default none
	// MemoryLimit is the pipeline's budget (agent.memory_limit); default
	// 64 MiB.
	MemoryLimit int64
	// Started, when set, is called with the runner once it runs, so a
	// test can watch its queue while lines flow.
	Started func(r *pipeline.Runner)
}

// Ship sends every line of in through a real pipeline (workers, reorder,
// one runner with set) to out, then stops in order: the pool drains, the
// runner delivers what is queued and closes out. It gives up after timeout,
// aborting so no goroutine is left behind. Output plugin tests use it to
// exercise their output the way the agent does, retries and
// acknowledgements included; in.Committed tells what was acknowledged.
func Ship(in *StaticInput, name string, out pipeline.Output, set pipeline.OutputSettings, o ShipOptions) (*pipeline.Runner, *pipeline.Stats, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if err := set.Validate(); err != nil {
		return nil, nil, fmt.Errorf("settings: %w", err)
	}
	stats := &pipeline.Stats{}
	limit := o.MemoryLimit
	if limit <= 0 {
		limit = 64 << 20
	}
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: limit, Stats: stats})
	r := pipeline.NewRunner(name, out, set, o.Logger, stats)
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	r.Start(abortCtx)
	p.Start(abortCtx)
	st := p.NewStream("in", 1<<20, o.Fields, o.Procs, []*pipeline.Runner{r})
	if o.Started != nil {
		o.Started(r)
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	inErr := in.Run(ctx, st)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		p.Drain()
	}()
	var err error
	select {
	case <-drained:
		err = r.Stop(ctx)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		abort()
		<-drained
		stopCtx, cancelStop := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancelStop()
		_ = r.Stop(stopCtx)
		return r, stats, fmt.Errorf("not delivered within %v: %w", timeout, err)
	}
	if inErr != nil {
		return r, stats, fmt.Errorf("input: %w", inErr)
	}
	return r, stats, nil
}
