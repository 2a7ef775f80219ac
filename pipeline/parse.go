package pipeline

import (
	"fmt"
	"sync"
	"time"
	"unsafe"
)

// Parser turns an event's Raw line into fields. The pool asks a stream's
// ParserSpec for one Parser per worker, so a Parser may keep scratch state
// (a JSON parser's buffers, a key cache) without locking; it must not keep
// anything that points into an event after Parse returns.
//
// Parse adds fields with a.Add; the pool gathers them into ev.Fields. On
// error the fields added are discarded and the event goes on raw with a
// parse_error field, so a Parser never has to clean up after itself.
type Parser interface {
	Parse(ev *Event, a *Arena) error
}

// Ordered sees every chunk of one source, in sequence order, after the
// worker pool and before fan-out. Work that depends on neighbouring lines
// (reassembling partial lines) belongs here, because the pool parses the
// chunks of one source on different workers at once. It runs on whichever
// worker delivers the chunk, one at a time per source.
type Ordered interface {
	Process(c *Chunk)
}

// ParserSpec is a configured parser: what the pool needs to run it.
type ParserSpec struct {
	Name string
	// New returns a Parser for one worker; nil means lines stay raw.
	New func() Parser
	// NewOrdered returns the ordered stage of one source; nil when the
	// parser needs none.
	NewOrdered func(st *Stats) Ordered
	// KeepRaw is parse.keep_raw: parsed events keep the line in "message".
	KeepRaw bool
}

var parsers = struct {
	sync.Mutex
	m         map[string]func(s *InputSettings) (ParserSpec, error)
	multiline func(s *InputSettings, spec ParserSpec) (ParserSpec, error)
}{m: map[string]func(s *InputSettings) (ParserSpec, error){}}

// RegisterParser makes a parser available to `parser = name`; the parse
// package calls it from init. build validates the input's parse settings
// (errors name the key, e.g. config.Errorf("parse.pattern", ...)) and
// returns the spec.
func RegisterParser(name string, build func(s *InputSettings) (ParserSpec, error)) {
	parsers.Lock()
	defer parsers.Unlock()
	if _, dup := parsers.m[name]; dup || name == "none" {
		panic(fmt.Sprintf("parser %q registered twice", name))
	}
	parsers.m[name] = build
}

// ParserNames lists the parsers, "none" included, sorted.
func ParserNames() []string {
	parsers.Lock()
	defer parsers.Unlock()
	m := map[string]struct{}{"none": {}}
	for k := range parsers.m {
		m[k] = struct{}{}
	}
	return sortedKeys(m)
}

// BuildParser returns the spec for the input's parser settings; "none" (or
// "") gives a spec that leaves lines raw.
func BuildParser(s *InputSettings) (ParserSpec, error) {
	spec := ParserSpec{Name: "none"}
	if s.Parser != "none" && s.Parser != "" {
		parsers.Lock()
		build, ok := parsers.m[s.Parser]
		parsers.Unlock()
		if !ok {
			return ParserSpec{}, fmt.Errorf("unknown parser %q (known: %v)", s.Parser, ParserNames())
		}
		var err error
		if spec, err = build(s); err != nil {
			return ParserSpec{}, err
		}
		spec.KeepRaw = s.Parse.KeepRaw
	}
	parsers.Lock()
	ml := parsers.multiline
	parsers.Unlock()
	if ml == nil {
		if s.Multiline != DefaultMultilineSettings() {
			return ParserSpec{}, fmt.Errorf("multiline: no multiline stage is linked into this binary")
		}
		return spec, nil
	}
	spec, err := ml(s, spec)
	spec.KeepRaw = s.Parse.KeepRaw
	return spec, err
}

// RegisterMultiline installs the stage that [inputs.NAME.multiline] adds
// after the parser's own ordered stage; the parse package calls it from
// init. build validates the settings (also when multiline is off, so keys
// set without a pattern are reported) and returns spec with the stage
// added.
func RegisterMultiline(build func(s *InputSettings, spec ParserSpec) (ParserSpec, error)) {
	parsers.Lock()
	defer parsers.Unlock()
	if parsers.multiline != nil {
		panic("multiline registered twice")
	}
	parsers.multiline = build
}

// Text is a string value parsed out of a line. Fields hold it as *Text,
// pointing into the chunk's Arena: converting a []byte or string to `any`
// allocates a header per field, a pointer does not. Encoders write it as a
// JSON string.
type Text []byte

// RawJSON is a value already in JSON form (a number, true, false, null, an
// object or an array) that encoders copy as is, so numbers keep their type
// and digits without a float64 round trip. Fields hold it as *RawJSON.
type RawJSON []byte

// String makes a *Text print as its text wherever values are formatted
// with fmt (index templates, labels), not as a pointer.
func (t *Text) String() string { return string(*t) }

// String returns the JSON text.
func (r *RawJSON) String() string { return string(*r) }

// Bytes returns the content of a string-like field value (string, []byte,
// Text, *Text) and whether it was one. *RawJSON strings are not unquoted:
// they are not string-like.
func Bytes(v any) ([]byte, bool) {
	switch v := v.(type) {
	case *Text:
		return *v, true
	case []byte:
		return v, true
	case string:
		return []byte(v), true
	case Text:
		return v, true
	}
	return nil, false
}

// Arena holds the parsed values and fields of one chunk's events, so that
// parsing costs no allocation per field: values are copied into one byte
// slab and referenced through slabs of headers, all reused with the chunk.
// Everything in it is valid until the chunk is released, like Event.Raw.
//
// Slabs grow by append; values handed out earlier keep pointing into the
// old backing arrays, which stay alive and unchanged, so growth never
// invalidates them.
type Arena struct {
	buf    []byte
	texts  []Text
	raws   []RawJSON
	fields []Field
	start  int // first field of the event being parsed
	mark   int // length of buf at Tail
}

var arenaPool = sync.Pool{New: func() any { return new(Arena) }}

// Reset empties the arena for reuse; everything handed out before becomes
// invalid. The pool resets arenas when their chunk is released.
func (a *Arena) Reset() {
	clear(a.texts)
	clear(a.raws)
	clear(a.fields)
	a.buf, a.texts, a.raws, a.fields, a.start = a.buf[:0], a.texts[:0], a.raws[:0], a.fields[:0], 0
}

// Copy copies b into the arena. Use it for bytes that do not outlive the
// call otherwise (a parser's scratch buffer, unescaped text).
func (a *Arena) Copy(b []byte) []byte {
	n := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// size is the memory the arena holds, for the budget: capacities, since a
// recycled arena keeps what earlier chunks grew it to.
func (a *Arena) size() int64 {
	const textSize, fieldSize = int64(unsafe.Sizeof(Text(nil))), int64(unsafe.Sizeof(Field{}))
	return int64(cap(a.buf)) + textSize*int64(cap(a.texts)+cap(a.raws)) + fieldSize*int64(cap(a.fields))
}

// CopyString copies s into the arena.
func (a *Arena) CopyString(s string) []byte {
	n := len(a.buf)
	a.buf = append(a.buf, s...)
	return a.buf[n:len(a.buf):len(a.buf)]
}

// Tail returns the byte slab for appending in place (for values built from
// pieces, or by an encoder's AppendX); hand the result to Claim.
func (a *Arena) Tail() []byte {
	a.mark = len(a.buf)
	return a.buf
}

// Claim takes back the slab extended from Tail and returns what was
// appended.
func (a *Arena) Claim(b []byte) []byte {
	a.buf = b
	return b[a.mark:len(b):len(b)]
}

// Text returns b as a field value without copying it: b must live as long
// as the chunk (a slice of Event.Raw or of Copy's result).
func (a *Arena) Text(b []byte) *Text {
	a.texts = append(a.texts, b)
	return &a.texts[len(a.texts)-1]
}

// RawJSON returns b, which must be valid JSON and live as long as the
// chunk, as a field value.
func (a *Arena) RawJSON(b []byte) *RawJSON {
	a.raws = append(a.raws, b)
	return &a.raws[len(a.raws)-1]
}

// Add appends a field to the event being parsed.
func (a *Arena) Add(key string, v any) {
	a.fields = append(a.fields, Field{Key: key, Value: v})
}

// Set adds a field to the event being parsed, or replaces the value of the
// field of the same key it already has: a line that repeats a key (JSON
// allows it) keeps the last value, as JSON.parse and encoding/json do, and
// the encoded event keeps every key once.
func (a *Arena) Set(key string, v any) {
	for i := a.start; i < len(a.fields); i++ {
		if a.fields[i].Key == key {
			a.fields[i].Value = v
			return
		}
	}
	a.fields = append(a.fields, Field{Key: key, Value: v})
}

// Fields returns the fields added since the event began. The slice is
// capped, so a processor appending to it cannot overwrite the next event's.
func (a *Arena) Fields() []Field {
	if len(a.fields) == a.start {
		return nil
	}
	return a.fields[a.start:len(a.fields):len(a.fields)]
}

// begin starts a new event's fields; discard drops what it added so far.
func (a *Arena) begin()   { a.start = len(a.fields) }
func (a *Arena) discard() { clear(a.fields[a.start:]); a.fields = a.fields[:a.start] }

// Begin starts a new event's fields, for code that runs a Parser outside
// the pool (tests, benchmarks); collect them with Fields.
func (a *Arena) Begin() { a.begin() }

// parseEvent runs p on ev, turning a failure into a parse_error field.
func parseEvent(p Parser, ev *Event, a *Arena, keepRaw bool) (failed bool) {
	a.begin()
	ev.Parsed = !keepRaw
	if err := p.Parse(ev, a); err != nil {
		ev.Parsed = false
		a.discard()
		ev.Time = time.Time{}
		a.Add("parse_error", a.Text(a.CopyString(err.Error())))
		failed = true
	}
	ev.Fields = a.Fields()
	return failed
}

// parseFrom parses evs from i on. A parser that panics on a line fails
// that line like a parse error and parsing goes on with the next one
// (returned as next): a bug that one odd line triggers must not take the
// agent down. The recover is set up once per run, not per line.
func parseFrom(p Parser, evs []Event, a *Arena, i, failed int, keepRaw bool) (next, failedOut int) {
	defer func() {
		if r := recover(); r != nil {
			ev := &evs[i]
			ev.Parsed = false
			a.discard()
			ev.Time = time.Time{}
			a.Add("parse_error", a.Text(a.CopyString(fmt.Sprintf("parser panicked: %v", r))))
			ev.Fields = a.Fields()
			next, failedOut = i+1, failed+1
		}
	}()
	for ; i < len(evs); i++ {
		if parseEvent(p, &evs[i], a, keepRaw) {
			failed++
		}
	}
	return i, failed
}

// Arena returns the chunk's arena, creating it if the chunk was not parsed
// (for the ordered stage).
func (c *Chunk) Arena() *Arena {
	if c.arena == nil {
		c.arena = arenaPool.Get().(*Arena)
	}
	return c.arena
}

// Hold keeps the chunk from being acknowledged until the returned release
// is called, on top of its outputs finishing it. Only an Ordered stage may
// call it (the chunk is then not yet fanned out). It lets a chunk whose
// partial line is completed in a later chunk wait for that chunk, so the
// committed offset never passes a partial line whose reassembled event has
// not been delivered; and it keeps a chunk's memory alive while a later
// chunk ships events that point into it.
func (c *Chunk) Hold() (release func()) {
	c.pending.Add(1)
	return c.unhold
}

// Keep keeps the chunk's memory (Buf, Events, Arena) after it is
// acknowledged, until the returned release is called; unlike Hold it does
// not delay the acknowledgement. Only an Ordered stage may call it. It
// lets a later chunk ship an event that points into this one.
func (c *Chunk) Keep() (release func()) {
	c.kept.Add(1)
	return c.unkeep
}

// OnFinish calls f once the chunk is acknowledged (after its own ack).
func (c *Chunk) OnFinish(f func()) { c.after = append(c.after, f) }

// OnDelivered calls f once every output is done with the chunk, before
// its own Holds are released: for releasing chunks whose events this one
// carried, without waiting for what this one waits for.
func (c *Chunk) OnDelivered(f func()) { c.shipped = append(c.shipped, f) }

// Flush hands events that an Ordered stage kept past the end of their
// chunk (a multiline record whose file went quiet) to the outputs, when no
// chunk of the source came to carry them. It runs fill on an empty chunk
// numbered after every chunk delivered so far and serialised with the
// source's deliveries exactly like Ordered.Process, so the events keep
// their place in the source's order. fill adds the events and sets the
// chunk's End (no lower than the last chunk's End): the chunk covers no
// bytes of its own and is acknowledged like any other, so the checkpoint
// can move past a record whose bytes earlier chunks kept it before.
//
// Flush returns false, without calling fill, when a chunk of the source
// has been emitted and not yet delivered (that chunk's Process sees the
// pending events) or a delivery is under way; the caller retries shortly
// if the events are still pending. Once the pipeline is draining Flush
// does nothing and returns true: the events are not shipped in this run,
// the checkpoint stays before them, and the next start reads them again.
func (s *Source) Flush(fill func(c *Chunk)) bool {
	st := s.stream
	if st == nil {
		return true // a Source made outside a pipeline (tests): nowhere to ship
	}
	st.p.flushMu.RLock()
	defer st.p.flushMu.RUnlock()
	if st.p.draining {
		return true
	}
	s.rmu.Lock()
	if s.delivering || s.next != s.rnext {
		s.rmu.Unlock()
		return false
	}
	s.delivering = true
	c := &Chunk{Source: s, Seq: s.next}
	s.next++
	s.rmu.Unlock()
	s.inflight.Add(1)
	c.ref(1)
	fill(c)
	// A flushed record is an event like the others: the input's
	// processors see it before the outputs do.
	st.applyProcessors(c)
	st.fanout(c)
	c.done()
	// Chunks emitted meanwhile were numbered after this one and parked.
	s.rmu.Lock()
	s.rnext++
	next, ok := s.rwait[s.rnext]
	if !ok {
		s.delivering = false
		s.rmu.Unlock()
		return true
	}
	delete(s.rwait, s.rnext)
	s.delivering = false
	s.rmu.Unlock()
	s.reorder(next, st.deliver)
	return true
}
