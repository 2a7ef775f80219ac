package pipeline

import (
	"context"
	"fmt"
	"iter"
	"sort"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"github.com/tailship/tailship/checkpoint"
)

// Input produces chunks. Run returns after every goroutine it started has
// exited; it returns nil when ctx ends (a normal stop).
type Input interface {
	Run(ctx context.Context, e Emitter) error
}

// Finite is implemented by an input that can come to an end by itself
// (stdin at EOF). Such an input's Run returns nil before ctx ends only
// once everything it read has been committed (delivered or dead-lettered
// everywhere). When every input of an agent is finite and has returned,
// the agent stops as on SIGTERM: a pipe into tailship ends with exit 0.
// Any other input returning nil early just stops reading.
type Finite interface {
	Finite() bool
}

// Emitter is the pipeline as an input sees it.
type Emitter interface {
	// NewSource opens an ordered stream of chunks. commit is called, in
	// increasing order, with the offset up to which every chunk has been
	// acknowledged by every output.
	NewSource(name string, commit func(offset int64)) *Source
	// NewChunk returns an empty chunk whose buffer holds at least size
	// bytes, waiting for the memory budget; it fails only when ctx ends.
	NewChunk(ctx context.Context, src *Source, size int) (*Chunk, error)
	// Emit hands a filled chunk to the pipeline, blocking while the pool is
	// busy. Chunks of one source must be emitted from one goroutine, in
	// order. After an error the chunk is released and the source must not
	// emit again.
	Emit(ctx context.Context, c *Chunk) error
	// Release returns a chunk that will not be emitted.
	Release(c *Chunk)
}

// Output delivers batches. Write returns nil (delivered), Permanent(err)
// (rejected; not retried), Throttle(err, d) (retry after d), a *PartialError
// (some events delivered, some to retry, some rejected), or any other error
// (retried with backoff). Write must not keep the batch after it returns.
// With max_in_flight above 1, Write is called from several goroutines at
// once. Close flushes and releases the output; no Write runs during or after
// it.
type Output interface {
	Write(ctx context.Context, b *Batch) error
	Close(ctx context.Context) error
}

// Processor transforms an event on the worker pool; keep=false drops the
// event on purpose (it still counts as acknowledged). Several workers call
// one processor at once. See ArenaProcessor, SourceProcessor, DropReason and
// Windowed for what a processor may add.
type Processor interface {
	Process(ev *Event) (keep bool, err error)
}

// BuildContext is what a plugin gets when the agent builds it.
type BuildContext struct {
	Name        string // the table key, e.g. "app" for [inputs.app]
	Logger      *zap.Logger
	DataDir     string
	Checkpoints *checkpoint.Store
	Stats       *Stats
	// SkipPaths are files an input must never read, whatever its globs
	// match: the agent's own log file, so it cannot ship itself in a loop.
	SkipPaths []string
	// Restarted is set when a live reload rebuilds an input that ran under
	// the same name before: it continues rather than starts, so start_at
	// (which is about files present at startup) does not apply again.
	Restarted bool
}

// InputConfig is a plugin's config struct for [inputs.NAME]. It embeds
// InputSettings (which provides Common) and carries defaults when created.
type InputConfig interface {
	Common() *InputSettings
	Validate() error
	Build(bc BuildContext) (Input, error)
}

// OutputConfig is a plugin's config struct for [outputs.NAME].
type OutputConfig interface {
	Common() *OutputSettings
	Validate() error
	Build(bc BuildContext) (Output, error)
}

var registry = struct {
	sync.Mutex
	inputs  map[string]func() InputConfig
	outputs map[string]func() OutputConfig
}{inputs: map[string]func() InputConfig{}, outputs: map[string]func() OutputConfig{}}

// RegisterInput makes an input type available; plugins call it from init.
func RegisterInput(typ string, newConfig func() InputConfig) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.inputs[typ]; dup {
		panic(fmt.Sprintf("input type %q registered twice", typ))
	}
	registry.inputs[typ] = newConfig
}

// RegisterOutput makes an output type available; plugins call it from init.
func RegisterOutput(typ string, newConfig func() OutputConfig) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.outputs[typ]; dup {
		panic(fmt.Sprintf("output type %q registered twice", typ))
	}
	registry.outputs[typ] = newConfig
}

// NewInputConfig returns the default config of an input type.
func NewInputConfig(typ string) (InputConfig, bool) {
	registry.Lock()
	defer registry.Unlock()
	f, ok := registry.inputs[typ]
	if !ok {
		return nil, false
	}
	return f(), true
}

// NewOutputConfig returns the default config of an output type.
func NewOutputConfig(typ string) (OutputConfig, bool) {
	registry.Lock()
	defer registry.Unlock()
	f, ok := registry.outputs[typ]
	if !ok {
		return nil, false
	}
	return f(), true
}

// InputTypes lists the registered input types, sorted.
func InputTypes() []string {
	registry.Lock()
	defer registry.Unlock()
	return sortedKeys(registry.inputs)
}

// OutputTypes lists the registered output types, sorted.
func OutputTypes() []string {
	registry.Lock()
	defer registry.Unlock()
	return sortedKeys(registry.outputs)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Batch is what an output writes: events from one or more chunks, in queue
// order. It is reused after Write returns.
type Batch struct {
	parts []part
	// acks are the chunks this batch holds a reference to: each is done once
	// the batch is settled. A chunk split over several batches is held by
	// each of them, so it is acknowledged only when all of them are settled,
	// whatever order batches in flight finish in.
	acks   []*Chunk
	events int
	bytes  int
}

type part struct {
	c      *Chunk
	lo, hi int
}

// Len returns the number of events.
func (b *Batch) Len() int { return b.events }

// Bytes returns the raw bytes of the events (newlines included).
func (b *Batch) Bytes() int { return b.bytes }

// All yields every event with its source, in order.
func (b *Batch) All() iter.Seq2[*Source, *Event] {
	return func(yield func(*Source, *Event) bool) {
		for _, p := range b.parts {
			evs := p.c.Events[p.lo:p.hi]
			for i := range evs {
				if evs[i].Drop {
					continue
				}
				if !yield(p.c.Source, &evs[i]) {
					return
				}
			}
		}
	}
}

// EventID names an event within this process: its source, its chunk's
// sequence number in that source and its place in the chunk. It stays the
// same when a batch, or what is left of it, is retried, so an output whose
// receiver drops messages by id (JetStream's Nats-Msg-Id) can make a retry
// of a message stored but not acknowledged a no-op.
type EventID struct {
	Source *Source
	Chunk  uint64
	Index  int
}

// AppendText appends "serial.chunk.index", unique among this process's
// events (the source's serial, not its address, since a freed source's
// address is reused by the next).
func (id EventID) AppendText(dst []byte) []byte {
	dst = strconv.AppendUint(dst, id.Source.Serial(), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, id.Chunk, 10)
	dst = append(dst, '.')
	return strconv.AppendInt(dst, int64(id.Index), 10)
}

// WithIDs yields every event with its EventID, in All's order.
func (b *Batch) WithIDs() iter.Seq2[EventID, *Event] {
	return func(yield func(EventID, *Event) bool) {
		for _, p := range b.parts {
			for k := p.lo; k < p.hi; k++ {
				ev := &p.c.Events[k]
				if ev.Drop {
					continue
				}
				if !yield(EventID{p.c.Source, p.c.Seq, k}, ev) {
					return
				}
			}
		}
	}
}

func (b *Batch) reset() {
	clear(b.parts)
	clear(b.acks)
	b.parts, b.acks = b.parts[:0], b.acks[:0]
	b.events, b.bytes = 0, 0
}

// add appends event i of c, extending the current part when contiguous.
func (b *Batch) add(c *Chunk, i int) {
	if n := len(b.parts); n > 0 && b.parts[n-1].c == c && b.parts[n-1].hi == i {
		b.parts[n-1].hi = i + 1
	} else {
		b.parts = append(b.parts, part{c, i, i + 1})
	}
	b.events++
	b.bytes += len(c.Events[i].Raw) + 1
}

// keep narrows b to the events whose position (in All order) is marked in
// want, so a retry re-sends only those. The acknowledgements stay: the
// chunks are released when the narrowed batch is settled.
func (b *Batch) keep(want []bool) {
	var parts []part
	i := 0
	events, bytes := 0, 0
	for _, p := range b.parts {
		for k := p.lo; k < p.hi; k++ {
			ev := &p.c.Events[k]
			if ev.Drop {
				continue
			}
			if i < len(want) && want[i] {
				if n := len(parts); n > 0 && parts[n-1].c == p.c && parts[n-1].hi == k {
					parts[n-1].hi = k + 1
				} else {
					parts = append(parts, part{p.c, k, k + 1})
				}
				events++
				bytes += len(ev.Raw) + 1
			}
			i++
		}
	}
	clear(b.parts)
	b.parts = append(b.parts[:0], parts...)
	b.events, b.bytes = events, bytes
}

// NewTestBatch builds a batch from raw lines, for output tests outside this
// package. The batch is not connected to any source's acknowledgements.
func NewTestBatch(src *Source, lines ...string) *Batch {
	c := &Chunk{Source: src}
	b := &Batch{}
	for _, l := range lines {
		c.Events = append(c.Events, Event{Raw: []byte(l)})
	}
	for i := range c.Events {
		b.add(c, i)
	}
	return b
}
