package agent

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
)

// errRestartNeeded says a config cannot be applied in place; the caller
// stops the agent and starts the new config instead.
var errRestartNeeded = errors.New("the change needs a full restart of the pipeline")

// Apply changes the running agent to cfg in place. Outputs whose table did
// not change keep running with their queues; inputs whose table did not
// change and whose outputs all keep running keep their open files and
// positions. The rest is stopped (an input only after every line it read
// is acknowledged) and built anew. It fails with errRestartNeeded (wrapped)
// when [agent] changed or a part could not be drained or built; the agent
// may then run a part of the old config and must be restarted.
func (a *Agent) Apply(ctx context.Context, cfg *Config) error {
	req := applyReq{cfg: cfg, reply: make(chan error, 1)}
	select {
	case a.updates <- req:
	case <-a.exited:
		return errors.New("the agent has stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// plan is what a reload keeps and replaces.
type plan struct {
	keepOut, keepIn map[string]bool
}

// diff keeps the outputs and inputs whose tables did not change. A kept
// input whose outputs change is re-routed, not restarted.
func diff(old, cfg *Config) plan {
	p := plan{keepOut: map[string]bool{}, keepIn: map[string]bool{}}
	for name, oc := range cfg.Outputs {
		if prev, ok := old.Outputs[name]; ok && reflect.DeepEqual(prev, oc) {
			p.keepOut[name] = true
		}
	}
	for name, ic := range cfg.Inputs {
		if prev, ok := old.Inputs[name]; ok && reflect.DeepEqual(prev, ic) {
			p.keepIn[name] = true
		}
	}
	return p
}

// routesOf returns the runners of rs that read input in under cfg.
func routesOf(cfg *Config, rs []*runner, in string) []*pipeline.Runner {
	var out []*pipeline.Runner
	for _, r := range rs {
		for _, i := range cfg.Outputs[r.Name].Common().Inputs {
			if i == in {
				out = append(out, r.Runner)
			}
		}
	}
	return out
}

// apply runs on Run's goroutine. The order matters: an input that goes is
// drained before anything else changes (so a failure there leaves the
// agent as it was, for a full restart); new outputs run before kept inputs
// are re-routed to them; old outputs stop only when no input routes to
// them; a changed input starts only after its old self is acknowledged.
func (a *Agent) apply(cfg *Config) error {
	old, runners, inputs := a.parts()
	if !reflect.DeepEqual(old.Agent, cfg.Agent) {
		return fmt.Errorf("[agent] changed: %w", errRestartNeeded)
	}
	p := diff(old, cfg)
	deadline := time.Now().Add(cfg.Agent.ShutdownTimeout.D())

	// 1. Inputs that go stop reading; what they read must be acknowledged
	// by every output before an input of the same name starts from the
	// checkpoints, and before their outputs may close.
	var keptIn, stopped []*namedInput
	for _, ni := range inputs {
		if p.keepIn[ni.name] {
			keptIn = append(keptIn, ni)
			continue
		}
		ni.cancel()
		stopped = append(stopped, ni)
	}
	for _, ni := range stopped {
		<-ni.done
		for ni.stream.InFlight() > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("input %s: %d chunks still unacknowledged after agent.shutdown_timeout: %w", ni.name, ni.stream.InFlight(), errRestartNeeded)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// 2. Build what is new or changed.
	var keptOut, stoppedOut []*runner
	for _, r := range runners {
		if p.keepOut[r.Name] {
			keptOut = append(keptOut, r)
		} else {
			stoppedOut = append(stoppedOut, r)
		}
	}
	var newOut, newIn []string
	for _, name := range sortedKeys(cfg.Outputs) {
		if !p.keepOut[name] {
			newOut = append(newOut, name)
		}
	}
	ran := map[string]bool{}
	for _, name := range sortedKeys(cfg.Inputs) {
		if !p.keepIn[name] {
			newIn = append(newIn, name)
		}
		_, ran[name] = old.Inputs[name]
	}
	builtOut, builtIn, err := a.buildParts(cfg, newOut, newIn, keptOut, ran)
	if err != nil {
		return fmt.Errorf("%w: %w", err, errRestartNeeded)
	}
	for _, r := range builtOut {
		a.startRunner(r)
	}
	a.mu.Lock()
	// From here on the new runners run: they must be in the list a full
	// restart would drain.
	a.runners = append(append([]*runner(nil), runners...), builtOut...)
	a.mu.Unlock()

	// A removed output that is failing now would hold the reload up (a
	// full queue even blocks the hand-off that re-routing waits for): its
	// lines are no longer owed to it, so it drops them, counted.
	for _, r := range stoppedOut {
		if _, stays := cfg.Outputs[r.Name]; !stays && !r.FailingSince().IsZero() {
			a.log.Warn("removed output is failing; dropping what it holds (counted as output_removed)", zap.String("output", r.Name))
			r.Discard()
		}
	}

	// 3. Kept inputs fan out to the new set of outputs.
	nextRunners := append(append([]*runner(nil), keptOut...), builtOut...)
	rctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	for _, ni := range keptIn {
		if err := ni.stream.SetRoutes(rctx, routesOf(cfg, nextRunners, ni.name)); err != nil {
			// The inputs built in step 2 never ran and hold nothing.
			return fmt.Errorf("input %s: re-routing: an output's queue stayed full: %w", ni.name, errRestartNeeded)
		}
	}

	// 4. Outputs that go have nothing routed to them any more; Stop
	// delivers what their queues hold and closes them.
	for _, r := range stoppedOut {
		ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(5*time.Second))
		err := r.Stop(ctx)
		cancel()
		if _, stays := cfg.Outputs[r.Name]; err != nil && !stays {
			// A removed output that cannot deliver (its receiver is
			// down, the usual reason to remove it): its lines are no
			// longer owed to it. Dropping them, counted, lets the
			// files behind it commit; every other output has them.
			a.log.Warn("removed output could not deliver its queue; dropping what it holds (counted as output_removed)", zap.String("output", r.Name))
			r.Discard()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err = r.Stop(ctx)
			cancel()
		}
		if err != nil {
			// What it holds stays unacknowledged, and the files behind
			// it cannot commit past it: only a restart from the
			// checkpoints (at least once) gets them moving again.
			r.abort()
			return fmt.Errorf("output %s did not deliver its queue within agent.shutdown_timeout: %w", r.Name, errRestartNeeded)
		}
	}

	// 5. New and changed inputs start from the checkpoints.
	for _, ni := range builtIn {
		a.startInput(ni)
	}
	a.mu.Lock()
	// Retired and replaced in one step, so Status never counts a part
	// twice or not at all.
	for _, ni := range stopped {
		a.totals.retireInput(ni)
	}
	for _, r := range stoppedOut {
		a.totals.retireRunner(r.Runner)
	}
	a.cfg = cfg
	a.runners = nextRunners
	a.inputs = append(keptIn, builtIn...)
	a.mu.Unlock()
	a.log.Info("config applied in place",
		zap.Strings("inputs_kept", names(keptIn)), zap.Strings("inputs_started", newIn),
		zap.Strings("outputs_kept", runnerNames(keptOut)), zap.Strings("outputs_started", newOut))
	return nil
}

func names(ins []*namedInput) []string {
	out := make([]string, len(ins))
	for i, ni := range ins {
		out[i] = ni.name
	}
	return out
}

func runnerNames(rs []*runner) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}

// totals are the counters of runners and inputs already replaced, so the
// API's counters never go back across reloads.
type totals struct {
	mu  sync.Mutex
	out map[string]outputTotals
	in  map[string]time.Duration
}

// outputTotals are an output's counters.
type outputTotals struct {
	delivered, batches, rejected, deadLettered, dropped, retries, failures int64
}

func newTotals() *totals {
	return &totals{out: map[string]outputTotals{}, in: map[string]time.Duration{}}
}

func (t *totals) retireRunner(r *pipeline.Runner) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o := t.out[r.Name]
	o.add(r)
	t.out[r.Name] = o
}

func (t *totals) retireInput(ni *namedInput) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.in[ni.name] += ni.stream.Backpressure()
}

// retireAll moves a stopped agent's counters to the totals; the agent then
// shows no parts of its own.
func (a *Agent) retireAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runners {
		a.totals.retireRunner(r.Runner)
	}
	for _, ni := range a.inputs {
		a.totals.retireInput(ni)
	}
	a.runners, a.inputs = nil, nil
}

func (t *totals) snapshot() (map[string]outputTotals, map[string]time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]outputTotals, len(t.out))
	for k, v := range t.out {
		out[k] = v
	}
	in := make(map[string]time.Duration, len(t.in))
	for k, v := range t.in {
		in[k] = v
	}
	return out, in
}

func (o *outputTotals) add(r *pipeline.Runner) {
	o.delivered += r.Out.Delivered.Load()
	o.batches += r.Out.Batches.Load()
	o.rejected += r.Out.Rejected.Load()
	o.deadLettered += r.Out.DeadLettered.Load()
	o.dropped += r.Out.Dropped.Load()
	o.retries += r.Out.Retries.Load()
	o.failures += r.Out.Failures.Load()
}
