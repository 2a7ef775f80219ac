package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
)

// Supervisor runs one Agent at a time and replaces it on Reload. Counters
// (Stats, per-output totals, backpressure) and the latency observer live
// here, so they keep counting across reloads.
//
// A reload validates the new file first; a bad one is reported and the
// running agent is not touched. A good one is applied in place when [agent]
// did not change (Agent.Apply: unchanged inputs and outputs keep running).
// Otherwise, or when that fails, it stops the running agent the way SIGTERM
// does (inputs stop, everything read is delivered and acknowledged within
// agent.shutdown_timeout, checkpoints written) and starts the new one from
// those checkpoints. Either way nothing is lost or read twice.
type Supervisor struct {
	log     *zap.Logger
	stats   *pipeline.Stats
	observe func(output string) func(time.Duration)
	reqs    chan chan error

	mu             sync.Mutex
	cfg            *Config
	cur            *Agent
	running        bool
	loadedAt       time.Time
	reloads        int
	reloadFailures int
	lastReloadErr  string
	totals         *totals
}

// SupervisorOptions are the hooks a Supervisor gives every agent it builds.
type SupervisorOptions struct {
	// ObserveLatency returns, per output name, what receives the duration
	// of every write to that output.
	ObserveLatency func(output string) func(time.Duration)
}

// NewSupervisor builds the first agent of cfg. Nothing runs until Run.
func NewSupervisor(cfg *Config, log *zap.Logger, o SupervisorOptions) (*Supervisor, error) {
	s := &Supervisor{
		log: log, stats: &pipeline.Stats{}, observe: o.ObserveLatency, reqs: make(chan chan error),
		totals: newTotals(),
	}
	a, err := build(cfg, log, s.stats, s.observe, s.totals, nil)
	if err != nil {
		return nil, err
	}
	s.cfg, s.cur, s.loadedAt = cfg, a, time.Now()
	return s, nil
}

// Config returns the configuration running now.
func (s *Supervisor) Config() *Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// Stats returns the counters shared by every agent the supervisor runs.
func (s *Supervisor) Stats() *pipeline.Stats { return s.stats }

// Reload asks Run to load the config file again and switch to it. It
// returns the validation or build error, or nil once the new config runs.
func (s *Supervisor) Reload(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case s.reqs <- reply:
	case <-ctx.Done():
		return fmt.Errorf("reload: %w", ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("reload still in progress: %w", ctx.Err())
	}
}

// Run runs the current agent until ctx ends or an input fails, serving
// Reload requests in between. It returns what the last agent's Run returned.
func (s *Supervisor) Run(ctx context.Context) error {
	for {
		s.mu.Lock()
		a := s.cur
		s.running = true
		s.mu.Unlock()
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- a.Run(runCtx) }()

		replace, reply, err := s.wait(ctx, a, done)
		if replace == nil {
			cancel()
			s.setRunning(false)
			return err
		}
		// Stop the old agent the way SIGTERM does; what it read is
		// delivered and its checkpoints written before the new one opens
		// them.
		cancel()
		runErr := <-done
		s.setRunning(false)
		if runErr != nil && !errors.Is(runErr, context.Canceled) {
			s.log.Error("agent stopped with an error during reload", zap.Error(runErr))
		}
		a.retireAll()
		err, fatal := s.switchTo(replace)
		reply <- err
		if fatal != nil {
			return fatal
		}
	}
}

// wait blocks until the agent ends (replace == nil) or a new config must
// replace it by a restart (returned as replace, with the channel to answer
// on). Invalid configs, and valid ones the agent applies in place, are
// answered here while the agent keeps running.
func (s *Supervisor) wait(ctx context.Context, a *Agent, done chan error) (replace *Config, reply chan error, err error) {
	for {
		select {
		case err := <-done:
			return nil, nil, err
		case reply := <-s.reqs:
			path := s.Config().Path
			cfg, err := LoadFile(path)
			if err != nil {
				s.failed(err)
				s.log.Error("reload refused: the new config is invalid; the running config stays", zap.String("config", path), zap.Error(err))
				reply <- fmt.Errorf("reload %s: %w", path, err)
				continue
			}
			for _, w := range cfg.Warnings {
				s.log.Warn("config warning", zap.String("warning", w.String()))
			}
			if ctx.Err() != nil {
				reply <- errors.New("reload: shutting down")
				continue
			}
			s.warnRestartOnly(s.Config(), cfg)
			err = a.Apply(ctx, cfg)
			if err == nil {
				s.mu.Lock()
				s.cfg, s.loadedAt = cfg, time.Now()
				s.reloads++
				s.lastReloadErr = ""
				s.mu.Unlock()
				s.log.Info("config reloaded in place", zap.String("config", cfg.Path), zap.Int("inputs", len(cfg.Inputs)), zap.Int("outputs", len(cfg.Outputs)))
				reply <- nil
				continue
			}
			if !errors.Is(err, errRestartNeeded) {
				// The agent ended meanwhile (ctx or an input failure).
				reply <- fmt.Errorf("reload: %w", err)
				continue
			}
			s.log.Info("restarting the pipeline for the new config", zap.String("reason", err.Error()))
			return cfg, reply, nil
		}
	}
}

// switchTo builds cfg and makes it current. If it cannot be built (an
// output whose file cannot be opened, say), the previous config is built
// again, so a reload never leaves the agent without a pipeline; fatal is
// set when even that fails.
func (s *Supervisor) switchTo(cfg *Config) (err, fatal error) {
	old := s.Config()
	// Inputs that keep their name continue: start_at = "end" must not skip
	// files that appeared since the agent started.
	ran := map[string]bool{}
	for name := range old.Inputs {
		ran[name] = true
	}
	a, err := build(cfg, s.log, s.stats, s.observe, s.totals, ran)
	if err == nil {
		s.mu.Lock()
		s.cfg, s.cur, s.loadedAt = cfg, a, time.Now()
		s.reloads++
		s.lastReloadErr = ""
		s.mu.Unlock()
		s.log.Info("config reloaded", zap.String("config", cfg.Path), zap.Int("inputs", len(cfg.Inputs)), zap.Int("outputs", len(cfg.Outputs)))
		return nil, nil
	}
	s.failed(err)
	s.log.Error("reload failed: the new config could not be started; restarting the previous one", zap.Error(err))
	prev, perr := build(old, s.log, s.stats, s.observe, s.totals, ran)
	if perr != nil {
		err = fmt.Errorf("reload: %w; restarting the previous config: %v", err, perr)
		return err, err
	}
	s.mu.Lock()
	s.cur = prev
	s.mu.Unlock()
	return fmt.Errorf("reload: %w (the previous config runs again)", err), nil
}

// warnRestartOnly logs settings a reload does not apply.
func (s *Supervisor) warnRestartOnly(old, cfg *Config) {
	if old.Agent.LogLevel != cfg.Agent.LogLevel || old.Agent.LogFormat != cfg.Agent.LogFormat || old.Agent.LogFile != cfg.Agent.LogFile {
		s.log.Warn("agent.log_level, log_format and log_file take effect at the next restart")
	}
	if old.API != cfg.API {
		s.log.Warn("[api] settings take effect at the next restart")
	}
}

func (s *Supervisor) failed(err error) {
	s.mu.Lock()
	s.reloadFailures++
	s.lastReloadErr = err.Error()
	s.mu.Unlock()
}

func (s *Supervisor) setRunning(v bool) {
	s.mu.Lock()
	s.running = v
	s.mu.Unlock()
}
