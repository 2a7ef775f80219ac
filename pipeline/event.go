package pipeline

import (
	"sync"
	"sync/atomic"
	"time"
)

// Field is one key/value of a structured event. Values are the Go types a
// JSON encoder understands: string, []byte (encoded as a string), bool, int64,
// float64, nil, or nested []Field; parsers produce *Text (a string) and
// *RawJSON (a value in JSON form), which point into the chunk's Arena.
type Field struct {
	Key   string
	Value any
}

// Event is one line (or one multiline record) and what parsing made of it.
// Raw points into the chunk's buffer; it is valid until the chunk is released.
type Event struct {
	Raw    []byte
	Fields []Field // per-event fields from parsing and processors; nil on the raw path
	Drop   bool    // set by a processor that filtered the event out on purpose
	// Parsed says the parser succeeded and Fields stand for the whole line,
	// so the json encoder does not repeat the line as "message" (unless the
	// input sets parse.keep_raw). A line that failed to parse keeps it.
	Parsed bool
	// Time is when the event happened, from the line (parse.timestamp);
	// zero when unknown, and outputs then use the time they read it.
	Time time.Time
}

// Chunk is the unit that crosses goroutines: many consecutive lines of one
// source sharing one buffer. Channel operations, allocations and
// acknowledgements happen per chunk, never per line.
type Chunk struct {
	Source *Source
	Seq    uint64 // per-source sequence number, from Source.Next
	// Buf holds complete lines, each ending in '\n' (the last one may lack
	// it when the source is not line-based).
	Buf []byte
	// End is the source offset just past the last byte this chunk covers;
	// it becomes the committed offset once the chunk is acknowledged. An
	// Ordered stage may lower it (never below an earlier chunk's End) to
	// keep the checkpoint before a record it has not shipped yet.
	End int64
	// Truncated counts lines the reader already cut to max_line_bytes.
	Truncated int
	// Ends, when set, marks event boundaries for sources that are not
	// line-based (broker messages may contain newlines): event i is
	// Buf[Ends[i-1]+1 : Ends[i]] (from 0 for the first), and the byte at
	// Ends[i] is a separator the input wrote ('\n'), not part of the event.
	// Nil means Buf is split at every newline.
	Ends []int
	// Meta, when set, holds one value per event (len(Meta) == len(Ends)):
	// what the broker said about the message (queue, stream id, ...). The
	// pool adds it to the event as the field "metadata" after parsing, so
	// templates reach it as %{metadata.KEY}.
	Meta [][]Field

	// parent is set on a view: the copy of a chunk's events one output
	// sees when it has a route condition or processors of its own. The
	// view shares the parent's buffer and arena; finishing it finishes the
	// output's reference to the parent.
	parent  *Chunk
	views   []*Chunk // per route, nil where the route takes the chunk as is
	viewed  bool     // views were made (on the pool, or at delivery)
	viewGen uint64   // the Stream.gen they were made for

	Events []Event // filled by the worker pool

	pending  atomic.Int32 // outputs (and Holds) that still hold the chunk
	outs     atomic.Int32 // of those, the outputs (and the deliverer's own reference)
	kept     atomic.Int32 // Keeps not released; -1 once the chunk is acknowledged and none is left
	budget   *Budget
	charged  int64
	estimate int64    // of charged, the guess for parsed values (NewChunk)
	arena    *Arena   // parsed values of Events; nil when not parsed
	after    []func() // run once the chunk is acknowledged (OnFinish)
	shipped  []func() // run once every output is done with it (OnDelivered)
}

// bytes returns the chunk's weight for queue and budget accounting.
func (c *Chunk) bytes() int { return len(c.Buf) }

// done marks the chunk finished by one output (delivered, rejected and
// counted, or dropped by policy). The last one acknowledges it to its source
// and returns its memory.
func (c *Chunk) done() {
	if c.outs.Add(-1) == 0 {
		for _, f := range c.shipped {
			f()
		}
		c.shipped = nil
	}
	c.unhold()
}

// unhold drops one reference that is not an output's (a Hold).
func (c *Chunk) unhold() {
	if c.pending.Add(-1) == 0 {
		c.finish()
	}
}

// ref adds an output's reference.
func (c *Chunk) ref(n int32) {
	c.pending.Add(n)
	c.outs.Add(n)
}

func (c *Chunk) finish() {
	if p := c.parent; p != nil {
		c.parent, c.Buf = nil, nil
		putEvents(c.Events)
		c.Events = nil
		p.done()
		return
	}
	c.Source.ack(c.Seq, c.End)
	for _, f := range c.after {
		f()
	}
	c.after = nil
	c.unkeep()
}

// unkeep releases the chunk's memory once it is acknowledged and no Keep
// is left.
func (c *Chunk) unkeep() {
	if c.kept.Add(-1) == -1 {
		c.release()
	}
}

var eventPool = sync.Pool{New: func() any { s := make([]Event, 0, 1024); return &s }}

func (c *Chunk) release() {
	if c.budget != nil {
		c.budget.Release(c.charged)
		c.budget, c.charged = nil, 0
	}
	putBuf(c.Buf)
	c.Buf = nil
	if c.arena != nil {
		// Big arenas are let go so one huge chunk does not pin memory.
		if cap(c.arena.buf) <= 4<<20 {
			c.arena.Reset()
			arenaPool.Put(c.arena)
		}
		c.arena = nil
	}
	putEvents(c.Events)
	c.Events = nil
	c.views = nil
	c.Ends, c.Meta = nil, nil
}

func putEvents(evs []Event) {
	if cap(evs) > 0 && cap(evs) <= 64*1024 {
		ev := evs[:0]
		clear(ev[:cap(ev)])
		eventPool.Put(&ev)
	}
}

func getEvents(n int) []Event {
	evp := eventPool.Get().(*[]Event)
	evs := *evp
	if cap(evs) < n {
		evs = make([]Event, 0, n)
	}
	return evs[:n]
}
