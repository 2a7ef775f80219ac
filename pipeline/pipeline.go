package pipeline

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Pipeline.
type Options struct {
	Workers     int   // parse workers; 0 = GOMAXPROCS
	MemoryLimit int64 // budget for chunk buffers; 0 = unlimited
	Stats       *Stats
}

// Pipeline owns the worker pool. Inputs emit into a Stream (one per input);
// workers split and process chunks and hand them, in source order, to the
// runners of the outputs the input is routed to.
type Pipeline struct {
	workers int
	in      chan *Chunk
	budget  *Budget
	stats   *Stats
	wg      sync.WaitGroup
	abort   context.Context // ends only on a forced stop
}

// New returns a pipeline; Start launches its workers.
func New(o Options) *Pipeline {
	w := o.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	st := o.Stats
	if st == nil {
		st = &Stats{}
	}
	return &Pipeline{
		workers: w,
		in:      make(chan *Chunk, 2*w),
		budget:  NewBudget(o.MemoryLimit),
		stats:   st,
	}
}

// Budget returns the memory budget shared by all inputs.
func (p *Pipeline) Budget() *Budget { return p.budget }

// Start launches the workers. Cancelling abort makes blocked hand-offs to
// output queues give up (a forced stop: what was not delivered is not
// acknowledged and will be read again after restart).
func (p *Pipeline) Start(abort context.Context) {
	p.abort = abort
	for range p.workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			// Parsers are per worker (ParserSpec.New), one per stream this
			// worker has seen, so their scratch state needs no locking.
			w := worker{parsers: map[*Stream]Parser{}}
			for c := range p.in {
				p.process(c, &w)
			}
		}()
	}
}

// Drain is called once every input has returned: the workers finish what
// was emitted and exit. The output runners are closed by their owner after.
func (p *Pipeline) Drain() {
	close(p.in)
	p.wg.Wait()
}

// Stream is the per-input face of the pipeline: it knows the input's
// processing and the runners its chunks fan out to. It implements Emitter.
type Stream struct {
	p       *Pipeline
	Input   string
	maxLine int
	procs   []Processor
	routes  []*Runner
	// routesMu is held (shared) while a chunk is handed to the routes, so
	// SetRoutes knows when no hand-off uses the old ones.
	routesMu sync.RWMutex
	fields   []Field
	parser   ParserSpec
	// blocked is the time, in nanoseconds, the input spent waiting for the
	// memory budget or for the worker pool: its backpressure.
	blocked atomic.Int64
	// inflight counts the stream's chunks emitted and not yet acknowledged
	// by every output, over all its sources.
	inflight atomic.Int64
}

// InFlight returns the input's chunks not yet acknowledged everywhere; a
// stopped input is drained when it reaches 0.
func (s *Stream) InFlight() int64 { return s.inflight.Load() }

// Backpressure returns how long the input has waited for memory or workers.
func (s *Stream) Backpressure() time.Duration { return time.Duration(s.blocked.Load()) }

// worker is the state one pool goroutine keeps between chunks.
type worker struct {
	parsers map[*Stream]Parser
}

func (w *worker) parser(s *Stream) Parser {
	if s.parser.New == nil {
		return nil
	}
	p, ok := w.parsers[s]
	if !ok {
		p = s.parser.New()
		w.parsers[s] = p
	}
	return p
}

// NewStream wires an input to its processors and outputs. fields are static
// fields added to every event of the input.
func (p *Pipeline) NewStream(input string, maxLine int, fields []Field, procs []Processor, routes []*Runner) *Stream {
	for _, r := range routes {
		r.budget.Store(p.budget)
	}
	return &Stream{p: p, Input: input, maxLine: maxLine, fields: fields, procs: procs, routes: routes}
}

// SetRoutes replaces the runners the stream's chunks fan out to, while it
// runs (a live reload that adds or replaces outputs of a running input).
// When it returns, no chunk is being handed to the old routes, and every
// later chunk goes to the new ones; a runner no longer routed to can then
// be stopped once the chunks it already has are done. A hand-off blocked on
// a full queue holds the old routes: SetRoutes gives up when ctx ends.
func (s *Stream) SetRoutes(ctx context.Context, routes []*Runner) error {
	for _, r := range routes {
		r.budget.Store(s.p.budget)
	}
	for !s.routesMu.TryLock() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	s.routes = routes
	s.routesMu.Unlock()
	return nil
}

// SetParser makes the stream parse its lines with ps. Call it before the
// input runs.
func (s *Stream) SetParser(ps ParserSpec) { s.parser = ps }

// NewSource implements Emitter.
func (s *Stream) NewSource(name string, commit func(offset int64)) *Source {
	return &Source{Name: name, Fields: s.fields, stream: s, commit: commit}
}

// NewChunk implements Emitter.
func (s *Stream) NewChunk(ctx context.Context, src *Source, size int) (*Chunk, error) {
	n := int64(BufClass(size))
	t0 := time.Now()
	err := s.p.budget.Acquire(ctx, n)
	if d := time.Since(t0); d > 50*time.Microsecond {
		// An uncontended Acquire takes well under this; only real waits
		// count as backpressure.
		s.blocked.Add(int64(d))
	}
	if err != nil {
		return nil, err
	}
	return &Chunk{Source: src, Buf: GetBuf(size), budget: s.p.budget, charged: n}, nil
}

// Emit implements Emitter.
func (s *Stream) Emit(ctx context.Context, c *Chunk) error {
	src := c.Source
	c.Seq = src.next
	src.next++
	src.inflight.Add(1)
	s.inflight.Add(1)
	select {
	case s.p.in <- c:
		return nil
	default:
	}
	t0 := time.Now()
	defer func() { s.blocked.Add(int64(time.Since(t0))) }()
	select {
	case s.p.in <- c:
		return nil
	case <-ctx.Done():
		src.inflight.Add(-1)
		s.inflight.Add(-1)
		c.release()
		return ctx.Err()
	}
}

// Release implements Emitter.
func (s *Stream) Release(c *Chunk) { c.release() }

// process runs on a worker: split lines, parse, apply processors, then
// reorder.
func (p *Pipeline) process(c *Chunk, w *worker) {
	s := c.Source.stream
	p.split(c, s.maxLine)
	lines := len(c.Events)
	p.stats.InputLines.Add(int64(lines))
	p.stats.InputBytes.Add(int64(len(c.Buf)))
	if pr := w.parser(s); pr != nil {
		a := c.Arena()
		failed := 0
		for i := 0; i < len(c.Events); {
			i, failed = parseFrom(pr, c.Events, a, i, failed)
		}
		if failed > 0 {
			p.stats.ParseErrors.Add(int64(failed))
		}
		// Parsed values can outweigh the line buffer several times
		// (a Field per member); memory_limit must cover them too.
		if c.budget != nil {
			n := a.size()
			c.budget.Charge(n)
			c.charged += n
		}
	}
	if len(s.procs) > 0 {
		for i := range c.Events {
			ev := &c.Events[i]
			for _, pr := range s.procs {
				keep, err := pr.Process(ev)
				if err != nil || !keep {
					// A processor error keeps the event as it is; a
					// processor reports its own parse failures as fields.
					ev.Drop = !keep && err == nil
					if ev.Drop {
						break
					}
				}
			}
		}
	}
	c.Source.reorder(c, s.deliver)
}

// split cuts the chunk buffer into events; one slice per chunk, none per line.
func (p *Pipeline) split(c *Chunk, maxLine int) {
	buf := c.Buf
	n := 0
	for i := 0; i < len(buf); {
		j := indexNL(buf[i:])
		n++
		if j < 0 {
			break
		}
		i += j + 1
	}
	evp := eventPool.Get().(*[]Event)
	evs := *evp
	if cap(evs) < n {
		evs = make([]Event, 0, n)
	}
	evs = evs[:n]
	k, truncated := 0, 0
	for i := 0; i < len(buf); k++ {
		j := indexNL(buf[i:])
		end := len(buf)
		next := end
		if j >= 0 {
			end, next = i+j, i+j+1
		}
		line := buf[i:end]
		if maxLine > 0 && len(line) > maxLine {
			line = line[:maxLine]
			truncated++
		}
		evs[k] = Event{Raw: line}
		i = next
	}
	c.Events = evs
	if t := truncated + c.Truncated; t > 0 {
		p.stats.LinesTruncated.Add(int64(t))
	}
}

// deliver runs, in source order, the source's ordered stage and then hands
// the chunk to every routed output. The chunk is acknowledged when the last
// of them (and of the stage's Holds) is done with it.
func (s *Stream) deliver(c *Chunk) {
	// One reference of our own, so that neither a Hold's release nor a fast
	// output can finish the chunk before every output has it.
	c.pending.Store(1)
	if s.parser.NewOrdered != nil {
		src := c.Source
		// Only the worker delivering this source touches it (reorder
		// serialises deliveries under its lock).
		if src.ordered == nil {
			src.ordered = s.parser.NewOrdered(s.p.stats)
		}
		src.ordered.Process(c)
	}
	s.routesMu.RLock()
	c.pending.Add(int32(len(s.routes)))
	for _, r := range s.routes {
		r.push(s.p.abort, c)
	}
	s.routesMu.RUnlock()
	c.done()
}
