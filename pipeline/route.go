package pipeline

import (
	"time"
	"unsafe"
)

// This file holds what processors and routing add to the pool: running a
// stream's processors, the per-output views of a chunk (route conditions
// and output processors), the fan-out to them, and the windows of
// windowed processors (aggregate) with the goroutines that flush them.

// window is one windowed processor and where its events go.
type window struct {
	w    Windowed
	src  *Source // synthetic: no commit, numbered like any source
	push func(c *Chunk)
}

// addWindows registers windowed processors; the caller holds no lock.
func (p *Pipeline) addWindows(name string, ws []Windowed, push func(c *Chunk)) {
	if len(ws) == 0 {
		return
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	for _, w := range ws {
		win := &window{w: w, src: &Source{Name: name}, push: push}
		p.windows = append(p.windows, win)
		if p.started {
			p.startWindow(win)
		}
	}
}

func (p *Pipeline) startWindow(w *window) {
	p.tickers.Add(1)
	go func() {
		defer p.tickers.Done()
		t := time.NewTicker(w.w.Every())
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				p.emitWindow(w, w.w.Flush(now, false))
			case <-p.stopTick:
				p.emitWindow(w, w.w.Flush(time.Now(), true))
				return
			case <-p.abort.Done():
				return
			}
		}
	}()
}

// emitWindow sends a windowed processor's events as one chunk of its
// synthetic source. The chunk holds no file offset, so acknowledging it
// commits nothing and no file waits for it.
func (p *Pipeline) emitWindow(w *window, evs []Event) {
	if len(evs) == 0 {
		return
	}
	src := w.src
	c := &Chunk{Source: src, Seq: src.next, Events: evs}
	src.next++
	src.inflight.Add(1)
	c.ref(1)
	w.push(c)
	c.done()
}

// applyProcessors runs the input's processors over c's events.
func (s *Stream) applyProcessors(c *Chunk) {
	if len(s.chain) == 0 {
		return
	}
	var a *Arena
	var before int64
	if s.chain.needsArena() {
		a = c.Arena()
		before = a.size()
	}
	s.chain.apply(c.Source, c.Events, a)
	c.chargeArena(a, before)
}

// chargeArena charges the budget for what the arena grew by since before.
func (c *Chunk) chargeArena(a *Arena, before int64) {
	if a == nil || c.budget == nil {
		return
	}
	if n := a.size() - before; n > 0 {
		c.budget.Charge(n)
		c.charged += n
	}
}

// makeViews gives every route with a condition or processors its own copy
// of the chunk's events: a routed-away event is marked dropped in that copy
// only, and the route's processors change that copy's fields (copied
// first), never what another output sees.
func (s *Stream) makeViews(c *Chunk) {
	c.viewed, c.viewGen = true, s.gen
	if c.views == nil {
		c.views = make([]*Chunk, len(s.routes))
	}
	for i, r := range s.routes {
		if r.filtered() {
			c.views[i] = c.view(r)
		}
	}
}

func (c *Chunk) view(r *Runner) *Chunk {
	v := &Chunk{Source: c.Source, Seq: c.Seq, Buf: c.Buf, End: c.End, parent: c}
	evs := getEvents(len(c.Events))
	copy(evs, c.Events)
	if c.budget != nil {
		// The copy is held as long as the chunk: memory_limit covers it.
		n := int64(cap(evs)) * int64(unsafe.Sizeof(Event{}))
		c.budget.Charge(n)
		c.charged += n
	}
	if r.when != nil {
		for i := range evs {
			if !evs[i].Drop && !r.when.Matches(c.Source, &evs[i]) {
				evs[i].Drop = true
			}
		}
	}
	if len(r.procs) > 0 {
		a := c.Arena()
		before := a.size()
		for i := range evs {
			if !evs[i].Drop && len(evs[i].Fields) > 0 {
				evs[i].Fields = a.Grow(evs[i].Fields, 0)
			}
		}
		r.procs.apply(c.Source, evs, a)
		c.chargeArena(a, before)
	}
	v.Events = evs
	v.ref(1)
	return v
}

// fanout hands c, or its view, to every route. The caller holds a
// reference of its own on c.
func (s *Stream) fanout(c *Chunk) {
	// Shared with other hand-offs; SetRoutes waits for none to be under way.
	s.routesMu.RLock()
	defer s.routesMu.RUnlock()
	if c.viewed && c.viewGen != s.gen {
		// Made on the pool for the routes before a reload: the copies
		// (charged with the chunk, released with it) are left unused.
		c.views, c.viewed = nil, false
	}
	if s.views && !c.viewed {
		s.makeViews(c)
	}
	c.ref(int32(len(s.routes)))
	for i, r := range s.routes {
		if c.views != nil && c.views[i] != nil {
			r.push(s.p.abort, c.views[i])
			continue
		}
		r.push(s.p.abort, c)
	}
}
