package parse

import (
	"errors"
	"regexp"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// Multiline joining: the lines of one record (a stack trace after its log
// line) become one event whose message is the lines joined by "\n".
//
// Where it runs: in the source's ordered stage, after the cri/docker
// joiner, not before the pool. The stage sees a file's lines in order one
// chunk at a time, so the pool keeps parsing in parallel, records never
// cross file boundaries, and a CRI container's Java trace is joined from
// whole lines (its partial pieces already reassembled) on the parsed
// message rather than on the runtime's `<time> <stream> F` prefix. cri and
// docker records are kept per stream, so stdout lines between the lines
// of a stderr trace do not break it.
//
// What a record looks like: the event of its first line, with Raw the raw
// lines joined by "\n", the message field (when the parser made one) the
// messages joined, and the first line's time and other fields.
//
// Delivery: a record that continues into the next chunk cannot be shipped
// with the chunk it began in, so its lines are dropped from their events
// there and the record ships with a later chunk, or, when no line comes
// for `timeout`, on a chunk of its own (Source.Flush). Checkpoints never
// pass or split a record: a chunk's End is lowered to the first byte of
// the oldest open record (a "clean" point: no line or record crosses it),
// so a crash or a stop re-reads the whole record, and its lines are not
// read again as a broken record of their own. Where that byte is not
// known (a line rebuilt by the joiner is not in the chunk's buffer) the
// clean point is the last chunk boundary no partial line or record
// crosses.
// Lowering the End instead of holding chunks lets every chunk be
// acknowledged as soon as its outputs are done: a file written without
// pause, where every chunk ends inside an open record, still commits. The
// chunks a record's lines came from only keep their memory (Chunk.Keep:
// the first line's fields point into it) until the chunk that carries the
// record is delivered. Only before the first clean boundary is known (the
// first chunk of a source may start anywhere in its file) are they held
// from acknowledgement until the record is, as the cri joiner does.
type multiline struct {
	m        *machine
	maxLines int
	maxBytes int
	timeout  time.Duration
	byStream bool
	join     *joiner // the cri/docker joiner before this stage, or nil
	stats    *pipeline.Stats

	mu   sync.Mutex
	src  *pipeline.Source
	recs map[string]*record
	last *record // the record of the last stream seen, to skip the map
	lkey string

	// Chunk boundaries are chunk Ends as read; -1 is a boundary not known
	// (before the first chunk, which may start anywhere in its file).
	prevEnd   int64 // the boundary before the chunk being processed
	origLast  int64 // the End of the last chunk, as read
	lastEnd   int64 // the End the last chunk was delivered with
	lastClean int64 // the latest boundary no record straddles
	// straddled: a record open at prevEnd got a line after it, or a
	// partial line was open across it.
	straddled bool
}

// record is one stream's record in progress.
type record struct {
	open  bool
	state int
	lines int
	// first is a copy of the first line's event. Its Raw and Fields point
	// into the chunk it came from, which stays unreleased: it is either
	// the chunk being processed or held by this record.
	first  pipeline.Event
	msgIdx int    // index of "message" in first.Fields; -1 when none
	raw    []byte // joined raw lines, once there are two
	msg    []byte // joined messages, once there are two
	// Positions in the chunk being processed (cur), -1 when the line is
	// in an earlier chunk.
	cur              *pipeline.Chunk
	firstIdx, lastIx int
	// safe is the clean boundary the checkpoint may reach while the
	// record is open; -1 when none is known yet, and then the record's
	// chunks are held from acknowledgement until it ships instead.
	safe       int64
	atBoundary bool // open at prevEnd
	holds      []func()
	armed      time.Time
	timer      *time.Timer
}

// rule says a line continues a record in some state, and which state the
// record is in after it.
type rule struct {
	re     *regexp.Regexp
	negate bool
	next   int
}

func (r *rule) match(b []byte) bool { return r.re.Match(b) != r.negate }

// machine is a set of rules in the style of Fluent Bit's multiline
// parsers: a record is in a state; a line that matches a rule of that
// state continues it, any other line begins a new record, whose state is
// given by the first matching start rule (state 0 when none matches).
type machine struct {
	start  []rule
	states [][]rule
}

// classify returns whether line continues a record in state, and the
// record's state after the line.
func (m *machine) classify(line []byte, state int, open bool) (cont bool, next int) {
	if open {
		for i := range m.states[state] {
			if r := &m.states[state][i]; r.match(line) {
				return true, r.next
			}
		}
	}
	for i := range m.start {
		if r := &m.start[i]; r.match(line) {
			return false, r.next
		}
	}
	return false, 0
}

// Presets. Each errs toward keeping a line alone: a line glued to the
// wrong record is worse than a trace split in two. Each pattern has one
// leading ^ outside its alternatives, so regexp sees it anchored and tries
// only the start of the line (^a|^b is tried at every position).
var presets = map[string]func() *machine{
	// A log line followed by its exception, frames, "... N more", and
	// Caused by / Suppressed sections. The exception line needs a
	// qualified class name (java.lang.IllegalStateException: ...), so an
	// ordinary "Error: ..." log line stays alone.
	"java": func() *machine {
		return &machine{states: [][]rule{{{re: regexp.MustCompile(
			`^(?:\s+at |\s+\.\.\. \d+ (?:more|common frames omitted)|\s*(?:Caused by|Suppressed|Wrapped by): |\s*[a-zA-Z_$][\w$]*(?:\.[\w$]+)+(?:Exception|Error|Throwable)(?:: .*)?$)`)}}}}
	},
	// panic: ... then a blank line, goroutine headers, function lines,
	// tab-indented file:line lines, [signal ...], created by ..., and
	// exit status N.
	"go": func() *machine {
		return &machine{states: [][]rule{{{re: regexp.MustCompile(
			`^(?:$|\s|goroutine \d+ |\[signal |created by |exit status \d+$|[\w./*()\[\]{}-]+\(.*\)$)`)}}}}
	},
	// Traceback (most recent call last): then indented frames, the
	// exception line that ends it, and chained tracebacks ("During
	// handling of the above exception..."). The traceback may follow a
	// log line (logging.exception) or begin a record itself.
	"python": func() *machine {
		tb := regexp.MustCompile(`^Traceback \(most recent call last\):$`)
		chain := regexp.MustCompile(`^(During handling of the above exception, another exception occurred:|The above exception was the direct cause of the following exception:)$`)
		blank := regexp.MustCompile(`^\s*$`)
		return &machine{
			start: []rule{{re: tb, next: 1}},
			states: [][]rule{
				0: {{re: tb, next: 1}},
				1: {{re: regexp.MustCompile(`^\s`), next: 1}, {re: regexp.MustCompile(`^[A-Za-z_][\w.]*(: .*)?$`), next: 2}},
				2: {{re: blank, next: 3}, {re: chain, next: 3}},
				3: {{re: blank, next: 3}, {re: chain, next: 3}, {re: tb, next: 1}},
			},
		}
	},
}

func presetNames() []string {
	out := make([]string, 0, len(presets))
	for k := range presets {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func init() { pipeline.RegisterMultiline(buildMultiline) }

// buildMultiline validates [inputs.NAME.multiline] and adds the stage
// after the parser's own ordered stage (the cri/docker joiner).
func buildMultiline(s *pipeline.InputSettings, spec pipeline.ParserSpec) (pipeline.ParserSpec, error) {
	m, err := compileMultiline(s.Multiline)
	if err != nil || m == nil {
		return spec, err
	}
	ml := s.Multiline
	byStream := false
	for _, k := range kinds {
		if k.name == spec.Name && k.join != noJoin {
			byStream = true
		}
	}
	inner := spec.NewOrdered
	spec.NewOrdered = func(st *pipeline.Stats) pipeline.Ordered {
		stage := newMultiline(m, ml.MaxLines, int(ml.MaxBytes), ml.Timeout.D(), byStream, st)
		if inner == nil {
			return stage
		}
		first := inner(st)
		stage.join, _ = first.(*joiner)
		return chain{first, stage}
	}
	return spec, nil
}

// compileMultiline returns nil when multiline is off.
func compileMultiline(ml pipeline.MultilineSettings) (*machine, error) {
	if !ml.Enabled() {
		if ml != pipeline.DefaultMultilineSettings() {
			return nil, config.Errorf("multiline", "needs start_pattern, continue_pattern or preset (%v)", presetNames())
		}
		return nil, nil
	}
	var errs []error
	if ml.MaxLines < 2 {
		errs = append(errs, config.Errorf("multiline.max_lines", "must be at least 2, got %d", ml.MaxLines))
	}
	if ml.MaxBytes < 16 {
		errs = append(errs, config.Errorf("multiline.max_bytes", "must be at least 16 bytes, got %d", int64(ml.MaxBytes)))
	}
	if ml.Timeout.D() <= 0 {
		errs = append(errs, config.Errorf("multiline.timeout", "must be above 0"))
	}
	var m *machine
	switch {
	case ml.Preset != "" && (ml.StartPattern != "" || ml.ContinuePattern != ""):
		errs = append(errs, config.Errorf("multiline.preset", "replaces start_pattern and continue_pattern; set one of them"))
	case ml.StartPattern != "" && ml.ContinuePattern != "":
		errs = append(errs, config.Errorf("multiline.start_pattern", "and continue_pattern are alternatives; set one of them"))
	case ml.Preset != "":
		p, ok := presets[ml.Preset]
		if !ok {
			errs = append(errs, config.Errorf("multiline.preset", "unknown preset %q (known: %v)", ml.Preset, presetNames()))
			break
		}
		if ml.Negate {
			errs = append(errs, config.Errorf("multiline.negate", "applies to start_pattern or continue_pattern, not to a preset"))
		}
		m = p()
	default:
		key, pat, negate := "multiline.continue_pattern", ml.ContinuePattern, ml.Negate
		if ml.StartPattern != "" {
			// A line continues the record when it does not begin one.
			key, pat, negate = "multiline.start_pattern", ml.StartPattern, !ml.Negate
		}
		re, err := regexp.Compile(pat)
		if err != nil {
			errs = append(errs, config.Errorf(key, "%v", err))
			break
		}
		m = &machine{states: [][]rule{{{re: re, negate: negate}}}}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return m, nil
}

// chain runs ordered stages one after the other.
type chain []pipeline.Ordered

func (c chain) Process(ch *pipeline.Chunk) {
	for _, o := range c {
		o.Process(ch)
	}
}

// Close closes the stages that have timers to stop.
func (c chain) Close() {
	for _, o := range c {
		if cl, ok := o.(interface{ Close() }); ok {
			cl.Close()
		}
	}
}

func newMultiline(m *machine, maxLines, maxBytes int, timeout time.Duration, byStream bool, st *pipeline.Stats) *multiline {
	return &multiline{m: m, maxLines: maxLines, maxBytes: maxBytes, timeout: timeout, byStream: byStream, stats: st,
		recs: map[string]*record{}, prevEnd: -1, origLast: -1, lastClean: -1}
}

// Process implements pipeline.Ordered.
func (s *multiline) Process(c *pipeline.Chunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.src = c.Source
	s.prevEnd = s.origLast
	s.beginChunk()
	end := c.End
	// plain: no partial line has been open since the chunk began, so the
	// start of a line read as is (its Raw in Buf) is a point no line
	// crosses.
	plain := !s.straddled
	for i := 0; i < len(c.Events); i++ {
		ev := &c.Events[i]
		if ev.Drop {
			plain = false // a piece the joiner took (or a line dropped on purpose)
			continue
		}
		stream, msgIdx := streamAndMessage(ev.Fields, s.byStream)
		r := s.record(stream)
		if r == nil {
			continue // more streams than maxGroups: shipped line by line
		}
		text := ev.Raw
		if msgIdx >= 0 {
			text, _ = pipeline.Bytes(ev.Fields[msgIdx].Value)
		}
		cont, next := s.m.classify(text, r.state, r.open)
		if cont && (r.lines >= s.maxLines || s.joinedLen(r)+1+len(ev.Raw) > s.maxBytes) {
			s.stats.RecordsSplit.Add(1)
			cont = false
			_, next = s.m.classify(text, 0, false)
		}
		if cont {
			s.appendLine(r, ev, text)
			r.state = next
			if r.cur != c {
				r.cur, r.firstIdx = c, -1
			}
			r.lastIx = i
			ev.Drop = true
			if r.atBoundary {
				s.straddled = true
			}
			continue
		}
		if r.open {
			if s.close(c, r, i) {
				i++ // an event was inserted before this line
				ev = &c.Events[i]
			}
		}
		r.open, r.state, r.lines = true, next, 1
		r.first, r.msgIdx = *ev, msgIdx
		r.raw, r.msg = r.raw[:0], r.msg[:0]
		r.cur, r.firstIdx, r.lastIx = c, i, i
		start := int64(-1)
		if plain {
			start = lineStart(c, i, end, s.prevEnd)
		}
		r.safe = s.safePoint(r, start)
	}
	// Records still open: their lines leave the chunk (the record ships
	// later, elsewhere), the chunk's memory stays for them, and the
	// checkpoint stays before them.
	low, open := end, false
	for _, r := range s.recs {
		if !r.open {
			continue
		}
		open = true
		if r.safe >= 0 {
			low = min(low, r.safe)
		}
		if r.cur != c {
			continue
		}
		if r.firstIdx >= 0 {
			c.Events[r.firstIdx].Drop = true
		}
		r.cur = nil
		if r.safe >= 0 {
			r.holds = append(r.holds, c.Keep())
		} else {
			r.holds = append(r.holds, c.Hold())
		}
		r.armed = time.Now()
		if r.timer == nil {
			r.timer = time.AfterFunc(s.timeout, func() { s.expire(r) })
		} else {
			r.timer.Reset(s.timeout)
		}
	}
	switch pieces := s.join.openNow(); {
	case !open && !pieces:
		s.lastClean = end
	case pieces && s.lastClean >= 0:
		// A partial line is open across the chunk's end: it may begin a
		// record, so the checkpoint stays before its first piece. (With
		// no clean boundary known yet, the record's chunks are held.)
		low = min(low, s.lastClean)
	}
	c.End = max(low, s.lastEnd)
	s.origLast, s.lastEnd = end, c.End
}

// beginChunk notes which records are open at the boundary before the
// chunk: the boundary is clean unless one of them continues past it.
func (s *multiline) beginChunk() {
	s.straddled = s.join.openBefore()
	open := false
	for _, r := range s.recs {
		r.atBoundary = r.open
		open = open || r.open
	}
	if !open && !s.straddled {
		s.lastClean = s.prevEnd
	}
}

// safePoint is where the checkpoint may go while r, just begun, is open:
// the latest clean boundary, and no later than what records begun before
// it allow.
func (s *multiline) safePoint(r *record, start int64) int64 {
	p, alone := s.lastClean, true
	for _, o := range s.recs {
		if o != r && o.open {
			p = min(p, o.safe)
			alone = false
		}
	}
	if start < 0 {
		return p
	}
	if alone {
		// Nothing else is open: the record's own start is the latest
		// clean point, exact to the byte rather than to the chunk.
		s.lastClean = start
		return start
	}
	return p
}

// lineStart is the source offset where event i of c begins, or -1 when
// it is not known: the event was rebuilt (a joined line, not in Buf), or
// it is the chunk's first line and the chunk before is unknown. Lines
// after the first are at their place in Buf counted back from the
// chunk's End; the first line begins where the chunk before ended (a
// reader may have cut an over-long first line short, so Buf does not say
// where it began).
func lineStart(c *pipeline.Chunk, i int, end, prevEnd int64) int64 {
	if i == 0 {
		return prevEnd
	}
	raw, buf := c.Events[i].Raw, c.Buf
	if len(buf) == 0 {
		return -1
	}
	pos := uintptr(unsafe.Pointer(unsafe.SliceData(raw))) - uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	if pos == 0 || pos >= uintptr(len(buf)) {
		// The first line's place, or not in Buf (pos wrapped around, or
		// another allocation right after Buf: no line of Buf starts at
		// its end, which is a newline's).
		return -1
	}
	return end - int64(len(buf)) + int64(pos)
}

// streamAndMessage finds the stream (cri, docker) and the message field.
func streamAndMessage(fs []pipeline.Field, byStream bool) (stream []byte, msgIdx int) {
	msgIdx = -1
	for i := range fs {
		switch fs[i].Key {
		case "stream":
			if byStream {
				stream, _ = pipeline.Bytes(fs[i].Value)
			}
		case "message":
			if _, ok := pipeline.Bytes(fs[i].Value); ok {
				msgIdx = i
			}
		}
	}
	return stream, msgIdx
}

func (s *multiline) record(stream []byte) *record {
	if s.last != nil && s.lkey == string(stream) {
		return s.last
	}
	r, ok := s.recs[string(stream)]
	if !ok {
		if len(s.recs) >= maxGroups {
			return nil
		}
		r = &record{}
		s.recs[string(stream)] = r
	}
	s.last, s.lkey = r, string(stream)
	return r
}

func (s *multiline) joinedLen(r *record) int {
	if r.lines == 1 {
		return len(r.first.Raw)
	}
	return len(r.raw)
}

// appendLine adds a continuation line; the first line is copied only when
// a second one comes, so one-line records cost no copy.
func (s *multiline) appendLine(r *record, ev *pipeline.Event, text []byte) {
	if r.lines == 1 {
		r.raw = append(r.raw[:0], r.first.Raw...)
		if r.msgIdx >= 0 {
			m, _ := pipeline.Bytes(r.first.Fields[r.msgIdx].Value)
			r.msg = append(r.msg[:0], m...)
		}
	}
	r.raw = append(append(r.raw, '\n'), ev.Raw...)
	if r.msgIdx >= 0 {
		r.msg = append(append(r.msg, '\n'), text...)
	}
	r.lines++
}

// close ships r's record in chunk c before event i (i == len(c.Events) on
// a flush): in the slot of its first or last line when that is in c,
// else in an event inserted at i. It reports whether it inserted.
func (s *multiline) close(c *pipeline.Chunk, r *record, i int) (inserted bool) {
	ev := r.first
	ev.Drop = false
	if r.lines > 1 {
		a := c.Arena()
		ev.Raw = a.Copy(r.raw)
		a.Begin()
		for _, f := range r.first.Fields {
			a.Add(f.Key, f.Value)
		}
		ev.Fields = a.Fields()
		if r.msgIdx >= 0 {
			ev.Fields[r.msgIdx].Value = a.Text(a.Copy(r.msg))
		}
	}
	switch {
	case r.cur == c && r.firstIdx >= 0:
		c.Events[r.firstIdx] = ev
	case r.cur == c:
		c.Events[r.lastIx] = ev
	default:
		c.Events = slices.Insert(c.Events, i, ev)
		inserted = true
		// Other streams' records in this chunk after i moved one up.
		for _, o := range s.recs {
			if o != r && o.cur == c {
				if o.firstIdx >= i {
					o.firstIdx++
				}
				if o.lastIx >= i {
					o.lastIx++
				}
			}
		}
	}
	// The chunks the record's lines came from keep what ev points into,
	// until c is delivered. Without a known clean boundary they are held
	// from acknowledgement, until c is acknowledged; newest first, so
	// that the oldest, released last, lets the checkpoint sweep past all
	// of them at once rather than stop inside the record.
	for _, h := range slices.Backward(r.holds) {
		if r.safe >= 0 {
			c.OnDelivered(h)
		} else {
			c.OnFinish(h)
		}
	}
	wasAtBoundary := r.atBoundary
	s.reset(r)
	if wasAtBoundary && !s.straddled {
		// The last record open at the boundary ended without crossing
		// it: the boundary is clean.
		for _, o := range s.recs {
			if o.open && o.atBoundary {
				return inserted
			}
		}
		s.lastClean = max(s.lastClean, s.prevEnd)
	}
	return inserted
}

func (s *multiline) reset(r *record) {
	r.open, r.lines, r.state, r.atBoundary = false, 0, 0, false
	r.first = pipeline.Event{}
	clear(r.holds)
	r.holds = r.holds[:0]
	r.cur = nil
	r.raw, r.msg = r.raw[:0], r.msg[:0]
	if cap(r.raw) > 64<<10 {
		r.raw, r.msg = nil, nil // a huge record should not stay pinned for the source's life
	}
	if r.timer != nil {
		r.timer.Stop()
	}
}

// flushRetry is how soon a timed-out record is tried again when a chunk
// of its source was on its way.
const flushRetry = 20 * time.Millisecond

// expire ships a record whose next line did not come within the timeout.
func (s *multiline) expire(r *record) {
	quiet := func() bool { return r.open && len(r.holds) > 0 && time.Since(r.armed) >= s.timeout }
	s.mu.Lock()
	src := s.src
	ok := quiet()
	s.mu.Unlock()
	if !ok {
		return // shipped, or re-armed after this timer was due
	}
	done := src.Flush(func(c *pipeline.Chunk) {
		s.mu.Lock()
		defer s.mu.Unlock()
		// The flushed chunk comes after the last chunk's End: no record
		// still open is "at" the boundary being closed here.
		for _, o := range s.recs {
			o.atBoundary = false
		}
		if quiet() {
			s.close(c, r, len(c.Events))
		}
		low, open := s.origLast, false
		for _, o := range s.recs {
			if o.open {
				open = true
				if o.safe >= 0 {
					low = min(low, o.safe)
				}
			}
		}
		switch pieces := s.join.openNow(); {
		case !open && !pieces:
			s.lastClean = max(s.lastClean, s.origLast)
		case pieces && s.lastClean >= 0:
			low = min(low, s.lastClean)
		}
		c.End = max(low, s.lastEnd)
		s.lastEnd = c.End
	})
	if !done {
		s.mu.Lock()
		if quiet() {
			r.timer.Reset(flushRetry)
		}
		s.mu.Unlock()
	}
}

// Close stops the stage's timers; the records still open are not shipped.
// The pipeline does not close ordered stages (a timer fires once and
// finds its record shipped or ships it), so this is for code that runs a
// stage on its own and throws it away, such as the fuzz test.
func (s *multiline) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.timer != nil {
			r.timer.Stop()
		}
	}
}
