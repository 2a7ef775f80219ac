package pipeline

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// ProcessorConfig is one [[inputs.NAME.processors]] or
// [[outputs.NAME.processors]] table, decoded into the processor type's own
// struct (created with its defaults by the registered constructor).
type ProcessorConfig interface {
	// Validate checks the keys; errors use config.Errorf with the key as
	// written in the table ("pattern"), and the loader places them under
	// processors[i].
	Validate() error
	Build(pc ProcessorContext) (Processor, error)
}

// ProcessorContext is what a processor gets when the agent builds it.
type ProcessorContext struct {
	Name   string // where it sits, e.g. "inputs.app.processors[2]"
	Logger *zap.Logger
	Stats  *Stats
}

// ArenaProcessor is a Processor that puts what it adds (fields, masked
// text) in the chunk's arena instead of on the heap. The pool calls
// ProcessArena instead of Process when a processor has it.
type ArenaProcessor interface {
	Processor
	ProcessArena(ev *Event, a *Arena) (keep bool, err error)
}

// SourceProcessor is a Processor that reads the source's static fields
// (a key field may be one), so it needs the source beside the event.
type SourceProcessor interface {
	Processor
	ProcessSource(src *Source, ev *Event, a *Arena) (keep bool, err error)
}

// DropReason is implemented by processors whose drops are counted: the
// pool adds each event they drop to Stats.Dropped(reason).
type DropReason interface {
	DropReason() string
}

// Windowed is a processor that also makes events of its own on a clock:
// aggregate windows. The pipeline owns the goroutine that calls Flush every
// Every(), and calls it once more with final set when it drains, so no
// window that saw events is lost at a normal stop. The events go to the
// outputs the processor feeds: every output of its input, or its own
// output. They come from a synthetic source of their own, so a file's
// checkpoint never waits for them.
type Windowed interface {
	Processor
	Every() time.Duration
	Flush(now time.Time, final bool) []Event
}

// Series is one value a processor exposes for metrics: a Prometheus gauge
// named Name with Labels.
type Series struct {
	Name   string
	Help   string
	Labels []Label
	Value  float64
}

// Label is one label of a Series.
type Label struct{ Name, Value string }

// Snapshotter is implemented by processors that expose values (aggregate):
// Snapshot returns the values of the last window that closed.
type Snapshotter interface {
	Snapshot() []Series
}

var processorTypes = struct {
	sync.Mutex
	m map[string]func() ProcessorConfig
}{m: map[string]func() ProcessorConfig{}}

// RegisterProcessor makes a processor type available to `type = typ` in a
// processors table; the processors package calls it from init.
func RegisterProcessor(typ string, newConfig func() ProcessorConfig) {
	processorTypes.Lock()
	defer processorTypes.Unlock()
	if _, dup := processorTypes.m[typ]; dup {
		panic(fmt.Sprintf("processor type %q registered twice", typ))
	}
	processorTypes.m[typ] = newConfig
}

// NewProcessorConfig returns the default config of a processor type.
func NewProcessorConfig(typ string) (ProcessorConfig, bool) {
	processorTypes.Lock()
	defer processorTypes.Unlock()
	f, ok := processorTypes.m[typ]
	if !ok {
		return nil, false
	}
	return f(), true
}

// ProcessorTypes lists the registered processor types, sorted.
func ProcessorTypes() []string {
	processorTypes.Lock()
	defer processorTypes.Unlock()
	return sortedKeys(processorTypes.m)
}

// step is one processor of a chain, with what the pool needs to call it
// without a type assertion per event.
type step struct {
	p       Processor
	arena   ArenaProcessor
	source  SourceProcessor
	dropped *atomic.Int64 // nil when the processor's drops are not counted
}

// chain is a list of processors applied in order.
type chain []step

func newChain(procs []Processor, st *Stats) chain {
	if len(procs) == 0 {
		return nil
	}
	ch := make(chain, len(procs))
	for i, p := range procs {
		ch[i].p = p
		ch[i].arena, _ = p.(ArenaProcessor)
		ch[i].source, _ = p.(SourceProcessor)
		if dr, ok := p.(DropReason); ok {
			ch[i].dropped = st.Dropped(dr.DropReason())
		}
	}
	return ch
}

// needsArena reports whether a step may add to the chunk's arena.
func (ch chain) needsArena() bool {
	for _, s := range ch {
		if s.arena != nil || s.source != nil {
			return true
		}
	}
	return false
}

// apply runs the chain over evs. A processor error keeps the event as it
// is (a processor reports its own failures as fields); keep=false marks
// it dropped and stops the chain for it. Drop counts are added once per
// chain run, not per event.
func (ch chain) apply(src *Source, evs []Event, a *Arena) {
	var drops [8]int64
	var more []int64
	if len(ch) > len(drops) {
		more = make([]int64, len(ch))
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Drop {
			continue
		}
		for k := range ch {
			s := &ch[k]
			var keep bool
			var err error
			switch {
			case s.source != nil:
				keep, err = s.source.ProcessSource(src, ev, a)
			case s.arena != nil:
				keep, err = s.arena.ProcessArena(ev, a)
			default:
				keep, err = s.p.Process(ev)
			}
			if err == nil && !keep {
				ev.Drop = true
				if more != nil {
					more[k]++
				} else {
					drops[k]++
				}
				break
			}
		}
	}
	for k := range ch {
		var n int64
		if more != nil {
			n = more[k]
		} else {
			n = drops[k]
		}
		if n > 0 && ch[k].dropped != nil {
			ch[k].dropped.Add(n)
		}
	}
}

func windowed(procs []Processor) []Windowed {
	var out []Windowed
	for _, p := range procs {
		if w, ok := p.(Windowed); ok {
			out = append(out, w)
		}
	}
	return out
}
