// Package agent turns a config file into a running tailship: it loads and
// validates the TOML (every problem located by file, line and key), builds
// the plugins, wires inputs through the pipeline to outputs, and owns the
// lifecycle: start, graceful drain on stop, and the checkpoint flusher. A
// Supervisor runs one Agent at a time and replaces it on a live reload, and
// reports the running state (Status) that the api package serves.
package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tailship/tailship/checkpoint"
	"github.com/tailship/tailship/pipeline"
)

// Agent is one running configuration. While it runs, Apply changes its
// inputs and outputs in place (a live reload): the ones that did not change
// keep running with their open files and queued events.
type Agent struct {
	log     *zap.Logger
	stats   *pipeline.Stats
	store   *checkpoint.Store
	pipe    *pipeline.Pipeline
	observe func(output string) func(time.Duration)
	totals  *totals
	updates chan applyReq
	exited  chan struct{} // closed when Run returns

	mu      sync.Mutex // guards cfg, runners and inputs, which Apply replaces
	cfg     *Config
	runners []*runner
	inputs  []*namedInput
	// processors that expose values for metrics (aggregate)
	snapshots []pipeline.Snapshotter

	// Set by Run, used by the goroutine of Run only (Apply runs there).
	abortCtx context.Context
	inCtx    context.Context
	errs     chan error
	ended    chan struct{} // a finite input returned by itself
}

type namedInput struct {
	name    string
	typ     string
	input   pipeline.Input
	stream  *pipeline.Stream
	cancel  context.CancelFunc
	done    chan struct{} // closed when input.Run has returned
	started time.Time     // when built; kept across in-place reloads
}

// runner is an output runner with the context that aborts it alone.
type runner struct {
	*pipeline.Runner
	abort   context.CancelFunc
	started time.Time
}

type applyReq struct {
	cfg   *Config
	reply chan error
}

// NewLogger builds the agent's own logger from [agent] log settings.
func NewLogger(a AgentConfig) (*zap.Logger, error) {
	var zc zap.Config
	if a.LogFormat == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false
	} else {
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.TimeKey = "time"
		zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	}
	lvl, err := zapcore.ParseLevel(a.LogLevel)
	if err != nil {
		return nil, err
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	// Per message and level, each second: the first 10, then every 100th.
	// An output failing in a tight retry loop cannot flood the log, and the
	// first lines of every new problem still show.
	zc.Sampling = &zap.SamplingConfig{Initial: 10, Thereafter: 100}
	zc.OutputPaths = []string{"stderr"}
	if a.LogFile != "" {
		zc.OutputPaths = []string{a.LogFile}
	}
	zc.ErrorOutputPaths = []string{"stderr"}
	return zc.Build()
}

// New builds every plugin of cfg. Nothing runs until Run.
func New(cfg *Config, log *zap.Logger) (*Agent, error) {
	return build(cfg, log, &pipeline.Stats{}, nil, nil, nil)
}

// build is New with the counters and the latency observer a Supervisor
// keeps across reloads; restarted names the inputs that ran before a reload.
func build(cfg *Config, log *zap.Logger, stats *pipeline.Stats, observe func(output string) func(time.Duration), tot *totals, restarted map[string]bool) (*Agent, error) {
	store, warning, err := checkpoint.Open(filepath.Join(cfg.Agent.DataDir, "checkpoints.json"))
	if err != nil {
		return nil, err
	}
	if warning != nil {
		log.Warn("checkpoints reset", zap.Error(warning))
	}
	if tot == nil {
		tot = newTotals()
	}
	a := &Agent{cfg: cfg, log: log, stats: stats, store: store, observe: observe, totals: tot, updates: make(chan applyReq), exited: make(chan struct{})}
	a.pipe = pipeline.New(pipeline.Options{Workers: cfg.Agent.Workers, MemoryLimit: int64(cfg.Agent.MemoryLimit), Stats: a.stats})
	runners, inputs, err := a.buildParts(cfg, sortedKeys(cfg.Outputs), sortedKeys(cfg.Inputs), nil, restarted)
	if err != nil {
		return nil, err
	}
	a.runners, a.inputs = runners, inputs
	return a, nil
}

// buildParts builds the outputs outNames and the inputs inNames of cfg.
// Inputs are routed to the new runners and to kept, the runners of outputs
// that keep running. On error, every output built here is closed.
func (a *Agent) buildParts(cfg *Config, outNames, inNames []string, kept []*runner, restarted map[string]bool) ([]*runner, []*namedInput, error) {
	var skip []string
	if cfg.Agent.LogFile != "" {
		skip = []string{cfg.Agent.LogFile}
	}
	var runners []*runner
	closeBuilt := func() {
		for _, r := range runners {
			_ = r.Output().Close(context.Background())
		}
	}
	for _, name := range outNames {
		oc := cfg.Outputs[name]
		bc := pipeline.BuildContext{Name: name, Logger: a.log.With(zap.String("output", name)), DataDir: cfg.Agent.DataDir, Checkpoints: a.store, Stats: a.stats, SkipPaths: skip}
		out, err := oc.Build(bc)
		if err != nil {
			closeBuilt()
			return nil, nil, fmt.Errorf("output %s: %w", name, err)
		}
		r := pipeline.NewRunner(name, out, *oc.Common(), bc.Logger, a.stats)
		if a.observe != nil {
			r.ObserveLatency(a.observe(name))
		}
		runners = append(runners, &runner{Runner: r, started: time.Now()})
		procs, err := a.buildProcessors("outputs."+name, oc.Common().ProcessorConfigs)
		if err != nil {
			closeBuilt()
			return nil, nil, err
		}
		if err := r.Route(oc.Common().When, procs); err != nil {
			closeBuilt()
			return nil, nil, err
		}
	}
	routes := map[string][]*pipeline.Runner{}
	for _, r := range append(append([]*runner(nil), kept...), runners...) {
		for _, in := range cfg.Outputs[r.Name].Common().Inputs {
			routes[in] = append(routes[in], r.Runner)
		}
	}
	var inputs []*namedInput
	for _, name := range inNames {
		ic := cfg.Inputs[name]
		bc := pipeline.BuildContext{Name: name, Logger: a.log.With(zap.String("input", name)), DataDir: cfg.Agent.DataDir, Checkpoints: a.store, Stats: a.stats, SkipPaths: skip, Restarted: restarted[name]}
		in, err := ic.Build(bc)
		if err != nil {
			closeBuilt()
			return nil, nil, fmt.Errorf("input %s: %w", name, err)
		}
		common := ic.Common()
		procs, err := a.buildProcessors("inputs."+name, common.ProcessorConfigs)
		if err != nil {
			closeBuilt()
			return nil, nil, err
		}
		ps, err := pipeline.BuildParser(common)
		if err != nil {
			closeBuilt()
			return nil, nil, fmt.Errorf("input %s: parser: %w", name, err)
		}
		st := a.pipe.NewStream(name, int(common.MaxLineBytes), staticFields(common.Fields), procs, routes[name])
		st.SetParser(ps)
		st.SetLines(common.Lines())
		inputs = append(inputs, &namedInput{name: name, typ: common.Type, input: in, stream: st, started: time.Now()})
	}
	return runners, inputs, nil
}

// buildProcessors builds the processors of the table at key, in order.
func (a *Agent) buildProcessors(key string, cfgs []pipeline.ProcessorConfig) ([]pipeline.Processor, error) {
	var out []pipeline.Processor
	for i, pc := range cfgs {
		name := fmt.Sprintf("%s.processors[%d]", key, i)
		p, err := pc.Build(pipeline.ProcessorContext{Name: name, Logger: a.log.With(zap.String("processor", name)), Stats: a.stats})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if sn, ok := p.(pipeline.Snapshotter); ok {
			a.mu.Lock()
			a.snapshots = append(a.snapshots, sn)
			a.mu.Unlock()
		}
		out = append(out, p)
	}
	return out, nil
}

// Series returns the values the processors expose (aggregate windows), for
// /metrics: one gauge per Series. After a reload it also holds the values
// of processors that were replaced, frozen at their last window.
func (a *Agent) Series() []pipeline.Series {
	a.mu.Lock()
	sns := append([]pipeline.Snapshotter(nil), a.snapshots...)
	a.mu.Unlock()
	var out []pipeline.Series
	for _, sn := range sns {
		out = append(out, sn.Snapshot()...)
	}
	return out
}

// staticFields turns [inputs.NAME] fields into a sorted field list, built
// once so no event pays for it.
func staticFields(m map[string]any) []pipeline.Field {
	if len(m) == 0 {
		return nil
	}
	out := make([]pipeline.Field, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, pipeline.Field{Key: k, Value: m[k]})
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Stats returns the agent's counters.
func (a *Agent) Stats() *pipeline.Stats { return a.stats }

// Runners returns the output runners, for status and metrics.
func (a *Agent) Runners() []*pipeline.Runner {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]*pipeline.Runner, len(a.runners))
	for i, r := range a.runners {
		out[i] = r.Runner
	}
	return out
}

// parts returns the current runners and inputs.
func (a *Agent) parts() (*Config, []*runner, []*namedInput) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg, a.runners, a.inputs
}

func (a *Agent) startRunner(r *runner) {
	ctx, cancel := context.WithCancel(a.abortCtx)
	r.abort = cancel
	r.Start(ctx)
}

func (a *Agent) startInput(ni *namedInput) {
	ctx, cancel := context.WithCancel(a.inCtx)
	ni.cancel, ni.done = cancel, make(chan struct{})
	go func() {
		defer close(ni.done)
		err := ni.input.Run(ctx, ni.stream)
		if err != nil {
			select {
			case a.errs <- fmt.Errorf("input %s: %w", ni.name, err):
			default: // one failure is enough to stop
			}
			return
		}
		if ctx.Err() == nil && isFinite(ni.input) {
			select {
			case a.ended <- struct{}{}:
			default: // Run looks at every input anyway
			}
		}
	}()
}

func isFinite(in pipeline.Input) bool {
	f, ok := in.(pipeline.Finite)
	return ok && f.Finite()
}

// allEnded reports whether every input is finite and has returned: nothing
// more can come, so the agent stops.
func (a *Agent) allEnded() bool {
	_, _, inputs := a.parts()
	if len(inputs) == 0 {
		return false
	}
	for _, ni := range inputs {
		if !isFinite(ni.input) {
			return false
		}
		select {
		case <-ni.done:
		default:
			return false
		}
	}
	return true
}

// Run ships until ctx ends, then stops reading, drains what was read to the
// outputs within agent.shutdown_timeout, and writes the checkpoints. An
// input that fails makes Run stop the same way and return its error.
func (a *Agent) Run(ctx context.Context) error {
	defer close(a.exited)
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	a.abortCtx = abortCtx
	_, runners, inputs := a.parts()
	for _, r := range runners {
		a.startRunner(r)
	}
	a.pipe.Start(abortCtx)

	flushCtx, stopFlush := context.WithCancel(context.Background())
	var flushWG sync.WaitGroup
	flushWG.Add(1)
	interval := a.cfg.Agent.CheckpointInterval.D() // [agent] never changes in place
	go func() {
		defer flushWG.Done()
		a.store.Run(flushCtx, interval, func(err error) {
			a.log.Error("checkpoint write failed; will retry", zap.Error(err))
		})
	}()

	inCtx, stopInputs := context.WithCancel(ctx)
	defer stopInputs()
	a.inCtx = inCtx
	a.errs = make(chan error, 1)
	a.ended = make(chan struct{}, 1)
	for _, ni := range inputs {
		a.startInput(ni)
	}
	a.log.Info("tailship running", zap.Int("inputs", len(inputs)), zap.Int("outputs", len(runners)))

	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case runErr = <-a.errs:
			a.log.Error("input failed; stopping", zap.Error(runErr))
			break wait
		case <-a.ended:
			if a.allEnded() {
				a.log.Info("every input has ended; stopping")
				break wait
			}
		case req := <-a.updates:
			req.reply <- a.apply(req.cfg)
		}
	}
	stopInputs()
	cfg, runners, inputs := a.parts()
	for _, ni := range inputs {
		<-ni.done
	}

	a.log.Info("draining", zap.Duration("timeout", cfg.Agent.ShutdownTimeout.D()))
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), cfg.Agent.ShutdownTimeout.D())
	defer cancelDrain()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		a.pipe.Drain()
		for _, r := range runners {
			if err := r.Stop(drainCtx); err != nil {
				a.log.Warn("output did not drain", zap.String("output", r.Name), zap.Error(err))
			}
		}
	}()
	select {
	case <-drained:
	case <-drainCtx.Done():
		a.log.Warn("shutdown timeout reached; undelivered lines stay unacknowledged and are read again at the next start")
		abort()
		select {
		case <-drained:
		case <-time.After(5 * time.Second):
			a.log.Error("workers did not stop after abort")
		}
		// Aborted runners end their write and close their output.
		closeCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		for _, r := range runners {
			if err := r.Stop(closeCtx); err != nil {
				a.log.Error("output did not close", zap.String("output", r.Name), zap.Error(err))
			}
		}
	}
	stopFlush()
	flushWG.Wait()
	if err := a.store.Flush(); err != nil {
		a.log.Error("final checkpoint write failed", zap.Error(err))
		runErr = errors.Join(runErr, err)
	}
	a.log.Info("stopped", zap.Int64("lines", a.stats.InputLines.Load()),
		zap.Int64("lines_truncated", a.stats.LinesTruncated.Load()),
		zap.Int64("lines_invalid_utf8", a.stats.InvalidUTF8Lines.Load()),
		zap.Int64("lines_unterminated", a.stats.UnterminatedLines.Load()),
		zap.Int64("parse_errors", a.stats.ParseErrors.Load()),
		zap.Int64("records_split", a.stats.RecordsSplit.Load()),
		zap.Any("lost_bytes", a.stats.LostBytesByReason()),
		zap.Any("dropped", a.stats.DroppedByReason()))
	return runErr
}
