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

// Agent is one running configuration.
type Agent struct {
	cfg     *Config
	log     *zap.Logger
	stats   *pipeline.Stats
	store   *checkpoint.Store
	pipe    *pipeline.Pipeline
	runners []*pipeline.Runner
	inputs  []namedInput
}

type namedInput struct {
	name   string
	typ    string
	input  pipeline.Input
	stream *pipeline.Stream
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
	return build(cfg, log, &pipeline.Stats{}, nil, nil)
}

// build is New with the counters and the latency observer a Supervisor
// keeps across reloads; restarted names the inputs that ran before a reload.
func build(cfg *Config, log *zap.Logger, stats *pipeline.Stats, observe func(output string) func(time.Duration), restarted map[string]bool) (*Agent, error) {
	store, warning, err := checkpoint.Open(filepath.Join(cfg.Agent.DataDir, "checkpoints.json"))
	if err != nil {
		return nil, err
	}
	if warning != nil {
		log.Warn("checkpoints reset", zap.Error(warning))
	}
	a := &Agent{cfg: cfg, log: log, stats: stats, store: store}
	var skip []string
	if cfg.Agent.LogFile != "" {
		skip = []string{cfg.Agent.LogFile}
	}
	a.pipe = pipeline.New(pipeline.Options{Workers: cfg.Agent.Workers, MemoryLimit: int64(cfg.Agent.MemoryLimit), Stats: a.stats})

	routes := map[string][]*pipeline.Runner{}
	var built []pipeline.Output
	closeBuilt := func() {
		for _, o := range built {
			_ = o.Close(context.Background())
		}
	}
	for _, name := range sortedKeys(cfg.Outputs) {
		oc := cfg.Outputs[name]
		bc := pipeline.BuildContext{Name: name, Logger: log.With(zap.String("output", name)), DataDir: cfg.Agent.DataDir, Checkpoints: store, Stats: a.stats, SkipPaths: skip}
		out, err := oc.Build(bc)
		if err != nil {
			closeBuilt()
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		built = append(built, out)
		r := pipeline.NewRunner(name, out, *oc.Common(), bc.Logger, a.stats)
		if observe != nil {
			r.ObserveLatency(observe(name))
		}
		a.runners = append(a.runners, r)
		for _, in := range oc.Common().Inputs {
			routes[in] = append(routes[in], r)
		}
	}
	for _, name := range sortedKeys(cfg.Inputs) {
		ic := cfg.Inputs[name]
		bc := pipeline.BuildContext{Name: name, Logger: log.With(zap.String("input", name)), DataDir: cfg.Agent.DataDir, Checkpoints: store, Stats: a.stats, SkipPaths: skip, Restarted: restarted[name]}
		in, err := ic.Build(bc)
		if err != nil {
			closeBuilt()
			return nil, fmt.Errorf("input %s: %w", name, err)
		}
		common := ic.Common()
		st := a.pipe.NewStream(name, int(common.MaxLineBytes), staticFields(common.Fields), nil, routes[name])
		ps, err := pipeline.BuildParser(common)
		if err != nil {
			closeBuilt()
			return nil, fmt.Errorf("input %s: parser: %w", name, err)
		}
		st.SetParser(ps)
		a.inputs = append(a.inputs, namedInput{name, common.Type, in, st})
	}
	return a, nil
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
func (a *Agent) Runners() []*pipeline.Runner { return a.runners }

// Run ships until ctx ends, then stops reading, drains what was read to the
// outputs within agent.shutdown_timeout, and writes the checkpoints. An
// input that fails makes Run stop the same way and return its error.
func (a *Agent) Run(ctx context.Context) error {
	abortCtx, abort := context.WithCancel(context.Background())
	defer abort()
	for _, r := range a.runners {
		r.Start(abortCtx)
	}
	a.pipe.Start(abortCtx)

	flushCtx, stopFlush := context.WithCancel(context.Background())
	var flushWG sync.WaitGroup
	flushWG.Add(1)
	go func() {
		defer flushWG.Done()
		a.store.Run(flushCtx, a.cfg.Agent.CheckpointInterval.D(), func(err error) {
			a.log.Error("checkpoint write failed; will retry", zap.Error(err))
		})
	}()

	inCtx, stopInputs := context.WithCancel(ctx)
	defer stopInputs()
	var inWG sync.WaitGroup
	errs := make(chan error, len(a.inputs))
	for _, ni := range a.inputs {
		inWG.Add(1)
		go func() {
			defer inWG.Done()
			if err := ni.input.Run(inCtx, ni.stream); err != nil {
				errs <- fmt.Errorf("input %s: %w", ni.name, err)
				stopInputs()
			}
		}()
	}
	a.log.Info("tailship running", zap.Int("inputs", len(a.inputs)), zap.Int("outputs", len(a.runners)))

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errs:
		a.log.Error("input failed; stopping", zap.Error(runErr))
	}
	stopInputs()
	inWG.Wait()

	a.log.Info("draining", zap.Duration("timeout", a.cfg.Agent.ShutdownTimeout.D()))
	drainCtx, cancelDrain := context.WithTimeout(context.Background(), a.cfg.Agent.ShutdownTimeout.D())
	defer cancelDrain()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		a.pipe.Drain()
		for _, r := range a.runners {
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
		for _, r := range a.runners {
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
		zap.Int64("parse_errors", a.stats.ParseErrors.Load()),
		zap.Any("lost_bytes", a.stats.LostBytesByReason()),
		zap.Any("dropped", a.stats.DroppedByReason()))
	return runErr
}
