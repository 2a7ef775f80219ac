package pipeline

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
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

	// Windowed processors (aggregate) and the goroutines that flush them,
	// owned here: started by Start (or by NewStream after it), stopped by
	// Drain once the workers are done, after a final flush.
	wmu      sync.Mutex
	started  bool
	windows  []*window
	seen     map[*Runner]bool
	tickers  sync.WaitGroup
	stopTick chan struct{}

	// flushMu lets Drain wait for Source.Flush calls under way and refuse
	// later ones, which would reach runners being stopped.
	flushMu  sync.RWMutex
	draining bool
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
		workers:  w,
		in:       make(chan *Chunk, 2*w),
		budget:   NewBudget(o.MemoryLimit),
		stats:    st,
		seen:     map[*Runner]bool{},
		stopTick: make(chan struct{}),
	}
}

// Budget returns the memory budget shared by all inputs.
func (p *Pipeline) Budget() *Budget { return p.budget }

// Start launches the workers. Cancelling abort makes blocked hand-offs to
// output queues give up (a forced stop: what was not delivered is not
// acknowledged and will be read again after restart).
func (p *Pipeline) Start(abort context.Context) {
	p.abort = abort
	p.wmu.Lock()
	p.started = true
	for _, w := range p.windows {
		p.startWindow(w)
	}
	p.wmu.Unlock()
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
	p.flushMu.Lock()
	p.draining = true
	p.flushMu.Unlock()
	// Every event has been processed: what the windows hold now is all
	// they will get, so they flush it once more and stop.
	close(p.stopTick)
	p.tickers.Wait()
}

// Stream is the per-input face of the pipeline: it knows the input's
// processing and the runners its chunks fan out to. It implements Emitter.
type Stream struct {
	p       *Pipeline
	Input   string
	maxLine int
	lines   LineOptions
	procs   []Processor
	chain   chain
	routes  []*Runner
	views   bool   // some route has a condition or processors of its own
	gen     uint64 // counts SetRoutes calls: views made for older routes are redone
	// routesMu is held (shared) while a chunk is handed to the routes, so
	// SetRoutes knows when no hand-off uses the old ones.
	routesMu sync.RWMutex
	fields   []Field
	parser   ParserSpec
	// blocked is the time the input spent waiting for the memory budget or
	// for the worker pool: its backpressure.
	blocked waitClock
	// inflight counts the stream's chunks emitted and not yet acknowledged
	// by every output, over all its sources.
	inflight atomic.Int64
	// expand is what the pool adds to a chunk (its Events and parsed
	// values), in bytes per 256 bytes of its buffer, learned from the
	// chunks processed so far. NewChunk charges it up front, so the budget
	// holds from the first chunk on: charging only after the split let
	// every reader fill the budget with buffers whose events and fields
	// then came on top.
	expand atomic.Int64
}

// The guesses before the first chunk is processed err on the high side (an
// overestimate is returned at once, an underestimate overshoots the
// budget): an 80-byte Event per 16 bytes of lines, and for parsed lines
// four times their size in fields and values besides.
const (
	initialExpandRaw    = 5 * 256
	initialExpandParsed = 9 * 256
)

func (s *Stream) expansion() int64 {
	if v := s.expand.Load(); v > 0 {
		return v
	}
	if s.parser.New != nil {
		return initialExpandParsed
	}
	return initialExpandRaw
}

// learn folds one parsed chunk into the expansion estimate (a moving
// average, so a few odd chunks do not swing it).
func (s *Stream) learn(parsed int64, buf int) {
	if buf == 0 {
		return
	}
	r := max(parsed*256/int64(buf), 1)
	old := s.expansion()
	s.expand.Store(old + (r-old)/4)
}

// InFlight returns the input's chunks not yet acknowledged everywhere; a
// stopped input is drained when it reaches 0.
func (s *Stream) InFlight() int64 { return s.inflight.Load() }

// Backpressure returns how long the input has waited for memory or
// workers, waits still going on included.
func (s *Stream) Backpressure() time.Duration { return s.blocked.total() }

// waitClock adds up waits of several goroutines, counting the ones still
// running: an input held back for the whole of an output's outage waits
// once, for minutes, and a total that grew only when a wait ended would
// read 0 all that time.
type waitClock struct {
	mu       sync.Mutex
	epoch    time.Time     // a monotonic origin for the offsets below
	done     time.Duration // waits that ended
	waiting  int           // waits going on
	startSum time.Duration // their start offsets, added up
}

func (w *waitClock) init() { w.epoch = time.Now() }

// begin marks a wait starting now and returns its start for end.
func (w *waitClock) begin() time.Duration {
	w.mu.Lock()
	t := time.Since(w.epoch)
	w.waiting++
	w.startSum += t
	w.mu.Unlock()
	return t
}

func (w *waitClock) end(t0 time.Duration) {
	w.mu.Lock()
	t := time.Since(w.epoch) // read under the lock, so total never steps back
	w.waiting--
	w.startSum -= t0
	w.done += t - t0
	w.mu.Unlock()
}

// total never decreases: a wait's running part becomes its final length.
func (w *waitClock) total() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := time.Since(w.epoch)
	return w.done + time.Duration(w.waiting)*t - w.startSum
}

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
//
// Output processors and route conditions (Runner.Route) must be set before.
func (p *Pipeline) NewStream(input string, maxLine int, fields []Field, procs []Processor, routes []*Runner) *Stream {
	s := &Stream{p: p, Input: input, maxLine: maxLine, fields: fields, procs: procs, routes: routes,
		chain: newChain(procs, p.stats)}
	s.blocked.init()
	s.views = p.adopt(routes)
	p.addWindows("aggregate:"+input, windowed(procs), func(c *Chunk) { s.fanout(c) })
	return s
}

// adopt makes the runners part of the pipeline: they charge its budget, and
// the windows of their own aggregate processors flush into them. It
// reports whether some runner needs views (a condition or processors).
func (p *Pipeline) adopt(routes []*Runner) (views bool) {
	for _, r := range routes {
		r.budget.Store(p.budget)
		if r.filtered() {
			views = true
		}
		p.wmu.Lock()
		first := !p.seen[r]
		p.seen[r] = true
		p.wmu.Unlock()
		if first {
			r := r
			p.addWindows("aggregate:"+r.Name, r.win, func(c *Chunk) {
				c.ref(1)
				r.push(p.abort, c)
			})
		}
	}
	return views
}

// SetRoutes replaces the runners the stream's chunks fan out to, while it
// runs (a live reload that adds or replaces outputs of a running input).
// When it returns, no chunk is being handed to the old routes, and every
// later chunk goes to the new ones; a runner no longer routed to can then
// be stopped once the chunks it already has are done. A hand-off blocked on
// a full queue holds the old routes: SetRoutes gives up when ctx ends.
func (s *Stream) SetRoutes(ctx context.Context, routes []*Runner) error {
	views := s.p.adopt(routes)
	for !s.routesMu.TryLock() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	s.routes, s.views = routes, views
	s.gen++
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
	est := n * s.expansion() / 256
	// Only a real wait counts as backpressure, not the uncontended path.
	if !s.p.budget.TryAcquire(n + est) {
		t0 := s.blocked.begin()
		err := s.p.budget.Acquire(ctx, n+est)
		s.blocked.end(t0)
		if err != nil {
			return nil, err
		}
	}
	return &Chunk{Source: src, Buf: GetBuf(size), budget: s.p.budget, charged: n + est, estimate: est}, nil
}

// Emit implements Emitter.
func (s *Stream) Emit(ctx context.Context, c *Chunk) error {
	src := c.Source
	src.rmu.Lock() // Source.Flush numbers chunks too
	c.Seq = src.next
	src.next++
	src.rmu.Unlock()
	src.inflight.Add(1)
	s.inflight.Add(1)
	select {
	case s.p.in <- c:
		return nil
	default:
	}
	t0 := s.blocked.begin()
	defer s.blocked.end(t0)
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
	p.split(c, s.maxLine, s.lines)
	lines := len(c.Events)
	p.stats.InputLines.Add(int64(lines))
	p.stats.InputBytes.Add(int64(len(c.Buf)))
	if pr := w.parser(s); pr != nil {
		a := c.Arena()
		failed := 0
		for i := 0; i < len(c.Events); {
			i, failed = parseFrom(pr, c.Events, a, i, failed, s.parser.KeepRaw)
		}
		if failed > 0 {
			p.stats.ParseErrors.Add(int64(failed))
		}
	}
	if c.Meta != nil {
		addMeta(c)
	}
	// Events and parsed values can outweigh the line buffer several times
	// (an Event is 80 bytes, more than many lines; a Field per member):
	// memory_limit covers them. NewChunk charged an estimate; settle it.
	n := int64(len(c.Events)) * int64(unsafe.Sizeof(Event{}))
	if c.arena != nil {
		n += c.arena.size()
	}
	for _, m := range c.Meta {
		// Consumer inputs' per-message metadata, and the Fields slice
		// addMeta grew to hold it.
		n += 2 * int64(cap(m)) * int64(unsafe.Sizeof(Field{}))
	}
	if c.budget != nil {
		if d := n - c.estimate; d > 0 {
			c.budget.Charge(d)
		} else if d < 0 {
			c.budget.Release(-d)
		}
		c.charged += n - c.estimate
	}
	c.estimate = 0
	s.learn(n, len(c.Buf))
	// Without an ordered stage the events are final here, so processors
	// and the outputs' views run on the pool, in parallel; otherwise at
	// delivery, after the ordered stage has joined what it joins, so a
	// filter or redact sees whole lines.
	if s.parser.NewOrdered == nil {
		s.applyProcessors(c)
		s.routesMu.RLock()
		if s.views {
			s.makeViews(c)
		}
		s.routesMu.RUnlock()
	}
	c.Source.reorder(c, s.deliver)
}

// addMeta appends the input's per-event fields after the parser's. The
// slices are capped so a processor appending to an event's fields cannot
// write into its neighbour's.
func addMeta(c *Chunk) {
	for k := range c.Events {
		if k >= len(c.Meta) || len(c.Meta[k]) == 0 {
			continue
		}
		m := c.Meta[k]
		ev := &c.Events[k]
		if len(ev.Fields) == 0 {
			ev.Fields = m[:len(m):len(m)]
			continue
		}
		ev.Fields = append(ev.Fields[:len(ev.Fields):len(ev.Fields)], m...)
	}
}

// splitEnds cuts the chunk buffer at the boundaries the input marked.
func (p *Pipeline) splitEnds(c *Chunk, maxLine int) {
	evs := getEvents(len(c.Ends))
	start, truncated := 0, 0
	for k, end := range c.Ends {
		end = min(max(end, start), len(c.Buf)) // an input's bad mark cannot panic the pool
		msg := c.Buf[start:end]
		if maxLine > 0 && len(msg) > maxLine {
			msg = msg[:maxLine]
			truncated++
		}
		evs[k] = Event{Raw: msg}
		start = end
	}
	c.Events = evs
	if t := truncated + c.Truncated; t > 0 {
		p.stats.LinesTruncated.Add(int64(t))
	}
}

// LineOptions say how split treats line endings and bytes that are not
// UTF-8; the zero value strips a CR before LF and passes invalid bytes.
type LineOptions struct {
	// KeepCR keeps the \r of a CRLF line ending in the event.
	KeepCR bool
	// ReplaceInvalidUTF8 replaces each invalid sequence by U+FFFD;
	// otherwise the bytes go on as read. Either way they are counted.
	ReplaceInvalidUTF8 bool
}

// SetLines sets how the stream's lines are cut (CR, invalid UTF-8); call it
// before the input emits.
func (s *Stream) SetLines(o LineOptions) { s.lines = o }

// split cuts the chunk buffer into events; one slice per chunk, none per line.
func (p *Pipeline) split(c *Chunk, maxLine int, o LineOptions) {
	if c.Ends != nil {
		p.splitEnds(c, maxLine)
		return
	}
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
	// One pass over the whole buffer is far cheaper than one per line;
	// lines are looked at one by one only when the chunk has bad bytes.
	checkUTF8 := !utf8.Valid(buf)
	k, truncated, invalid := 0, 0, 0
	for i := 0; i < len(buf); k++ {
		j := indexNL(buf[i:])
		end := len(buf)
		next := end
		if j >= 0 {
			end, next = i+j, i+j+1
		}
		line := buf[i:end]
		// CRLF files (Windows writers) would otherwise end every event
		// in \r, which breaks parsers and shows in every output.
		if !o.KeepCR && len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if maxLine > 0 && len(line) > maxLine {
			// Cut before a rune that would not fit whole, so valid text
			// stays valid.
			cut := maxLine
			for back := 0; back < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(line[cut]); back++ {
				cut--
			}
			if utf8.RuneStart(line[cut]) {
				line = line[:cut]
			} else {
				line = line[:maxLine]
			}
			truncated++
		}
		if checkUTF8 && !utf8.Valid(line) {
			invalid++
			if o.ReplaceInvalidUTF8 {
				// Into the chunk's arena: it lives exactly as long as Raw must.
				a := c.Arena()
				line = a.Claim(appendValidUTF8(a.Tail(), line))
			}
		}
		evs[k] = Event{Raw: line}
		i = next
	}
	c.Events = evs
	if t := truncated + c.Truncated; t > 0 {
		p.stats.LinesTruncated.Add(int64(t))
	}
	if invalid > 0 {
		p.stats.InvalidUTF8Lines.Add(int64(invalid))
	}
}

// deliver runs, in source order, the source's ordered stage and then hands
// the chunk to every routed output. The chunk is acknowledged when the last
// of them (and of the stage's Holds) is done with it.
func (s *Stream) deliver(c *Chunk) {
	// One reference of our own, so that neither a Hold's release nor a fast
	// output can finish the chunk before every output has it.
	c.pending.Store(0)
	c.outs.Store(0)
	c.ref(1)
	if s.parser.NewOrdered != nil {
		src := c.Source
		// Only the worker delivering this source touches it (reorder
		// serialises deliveries under its lock).
		if src.ordered == nil {
			src.ordered = s.parser.NewOrdered(s.p.stats)
		}
		src.ordered.Process(c)
		s.applyProcessors(c)
	}
	s.fanout(c)
	c.done()
}
