package parse

import (
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tailship/tailship/pipeline"
)

// joiner reassembles the partial lines of one source: cri P lines and
// docker pieces without a trailing newline, until the piece that ends the
// line. It keeps one group per stream (stdout and stderr interleave, each
// split on its own).
//
// Why here and not on the worker pool: a source's chunks are parsed on
// different workers at once, so a worker cannot know what came before its
// chunk. The joiner is the source's pipeline.Ordered stage: it sees every
// chunk in sequence order after the per-source reorder, one at a time, and
// the parsers have already marked each event's stream, message and partial
// flag, so it only moves bytes.
//
// The pieces are dropped from their events (Drop) and the merged line
// replaces the event of the final piece: its message field, and its Raw,
// rebuilt as one full line in the source's own format so raw outputs ship
// a valid line. A chunk whose pieces are completed in a later chunk is held
// (Chunk.Hold) until that later chunk is acknowledged, so the committed
// offset never passes a piece whose merged line was not delivered; a crash
// re-reads the whole line. If the line's end does not come within
// partial_timeout (the file ended mid-line), the holds are released and the
// pieces given up, counted as dropped with reason partial_timeout, so the
// file can be let go.
type joiner struct {
	format  lineFormat
	maxLine int
	timeout time.Duration
	stats   *pipeline.Stats

	mu     sync.Mutex
	groups map[string]*group
	before bool // a line was open when the chunk being processed began
}

// openBefore reports whether a partial line was open across the boundary
// before the chunk last processed (or being processed); openNow whether
// one is open now. The multiline stage after the joiner uses them to tell
// clean chunk boundaries. Both are false on a nil joiner.
func (j *joiner) openBefore() bool {
	if j == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.before
}

func (j *joiner) openNow() bool {
	if j == nil {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, g := range j.groups {
		if g.open {
			return true
		}
	}
	return false
}

type lineFormat int

const (
	noJoin lineFormat = iota
	criFormat
	dockerFormat
)

// Streams are stdout and stderr; docker lines may name others, but a
// bounded map keeps bad input from growing it.
const maxGroups = 8

type group struct {
	open      bool
	msg       []byte // the pieces so far, at most maxLine bytes
	truncated bool
	holds     []func()
	fed       *pipeline.Chunk // the chunk that last added a piece
	last      time.Time       // when the group was last armed
	timer     *time.Timer
}

func newJoiner(f lineFormat, maxLine int, timeout time.Duration, st *pipeline.Stats) *joiner {
	if maxLine <= 0 {
		maxLine = 1 << 20
	}
	return &joiner{format: f, maxLine: maxLine, timeout: timeout, stats: st, groups: map[string]*group{}}
}

// Process implements pipeline.Ordered.
func (j *joiner) Process(c *pipeline.Chunk) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.before = false
	for _, g := range j.groups {
		j.before = j.before || g.open
	}
	a := c.Arena()
	for i := range c.Events {
		ev := &c.Events[i]
		if ev.Drop {
			continue
		}
		stream, msgIdx, partial := pieceOf(ev.Fields)
		if msgIdx < 0 {
			continue // not parsed (parse_error): shipped as is
		}
		g := j.group(stream)
		if g == nil {
			continue
		}
		msg, _ := pipeline.Bytes(ev.Fields[msgIdx].Value)
		if partial {
			if !g.open {
				g.open, g.msg, g.truncated = true, g.msg[:0], false
			}
			g.add(msg, j.maxLine)
			g.fed = c
			ev.Drop = true
			continue
		}
		if !g.open {
			continue // an ordinary full line
		}
		g.add(msg, j.maxLine)
		merged := a.Copy(g.msg)
		ev.Fields[msgIdx].Value = a.Text(merged)
		ev.Raw = j.rebuild(a, ev.Fields, stream, merged)
		// Newest first, so the checkpoint moves past all the pieces at
		// once, never to a point inside the line.
		for _, h := range slices.Backward(g.holds) {
			c.OnFinish(h)
		}
		if g.truncated {
			j.stats.LinesTruncated.Add(1)
		}
		g.close()
	}
	// Groups still open that this chunk fed: hold the chunk until the
	// chunk with their end is acknowledged, and give the end a deadline.
	for _, g := range j.groups {
		if !g.open || g.fed != c {
			continue
		}
		g.holds = append(g.holds, c.Hold())
		g.fed = nil // do not keep the chunk reachable after it is released
		g.last = time.Now()
		if g.timer == nil {
			g.timer = time.AfterFunc(j.timeout, func() { j.expire(g) })
		} else {
			g.timer.Reset(j.timeout)
		}
	}
}

func (j *joiner) group(stream []byte) *group {
	if g, ok := j.groups[string(stream)]; ok {
		return g
	}
	if len(j.groups) >= maxGroups {
		return nil
	}
	g := &group{}
	j.groups[string(stream)] = g
	return g
}

// expire gives up a group whose end did not come in time.
func (j *joiner) expire(g *group) {
	j.mu.Lock()
	if !g.open || len(g.holds) == 0 || time.Since(g.last) < j.timeout {
		// Completed, or re-armed after this timer was due.
		j.mu.Unlock()
		return
	}
	holds := g.holds
	g.holds = nil
	g.close()
	j.mu.Unlock()
	j.stats.Dropped("partial_timeout").Add(1)
	// Outside the lock: releasing may acknowledge chunks and run the
	// input's commit callback.
	for _, h := range slices.Backward(holds) {
		h()
	}
}

func (g *group) add(piece []byte, maxLine int) {
	if room := maxLine - len(g.msg); len(piece) > room {
		piece = piece[:max(room, 0)]
		g.truncated = true
	}
	g.msg = append(g.msg, piece...)
}

func (g *group) close() {
	g.open, g.truncated, g.fed = false, false, nil
	clear(g.holds)
	g.holds = g.holds[:0]
	g.msg = g.msg[:0]
	if cap(g.msg) > 64<<10 {
		g.msg = nil // a huge line should not stay pinned for the source's life
	}
	if g.timer != nil {
		g.timer.Stop()
	}
}

// pieceOf finds what the parsers put on a cri or docker event.
func pieceOf(fs []pipeline.Field) (stream []byte, msgIdx int, partial bool) {
	msgIdx = -1
	for i := range fs {
		switch fs[i].Key {
		case "stream":
			stream, _ = pipeline.Bytes(fs[i].Value)
		case "message":
			msgIdx = i
		case "partial":
			partial, _ = fs[i].Value.(bool)
		}
	}
	return stream, msgIdx, partial
}

// rebuild writes the merged line in the source's format, with the time of
// its final piece.
func (j *joiner) rebuild(a *pipeline.Arena, fs []pipeline.Field, stream, msg []byte) []byte {
	var ts []byte
	for i := range fs {
		if fs[i].Key == "time" {
			ts, _ = pipeline.Bytes(fs[i].Value)
		}
	}
	out := a.Tail()
	if j.format == criFormat {
		out = append(out, ts...)
		out = append(out, ' ')
		out = append(out, stream...)
		out = append(out, " F "...)
		out = append(out, msg...)
		return a.Claim(out)
	}
	out = append(out, `{"log":`...)
	out = appendJSONString(out, msg, "\n")
	out = append(out, `,"stream":`...)
	out = appendJSONString(out, stream, "")
	out = append(out, `,"time":`...)
	out = appendJSONString(out, ts, "")
	out = append(out, '}')
	return a.Claim(out)
}

// appendJSONString appends s+suffix as a JSON string, replacing invalid
// UTF-8 by U+FFFD so the rebuilt line stays valid JSON.
func appendJSONString(dst, s []byte, suffix string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				dst = append(dst, `\ufffd`...)
			} else {
				dst = append(dst, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
		i++
	}
	for i := 0; i < len(suffix); i++ {
		if suffix[i] == '\n' {
			dst = append(dst, '\\', 'n')
		}
	}
	return append(dst, '"')
}

// Close stops the joiner's timers, for code that runs it on its own.
func (j *joiner) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, g := range j.groups {
		if g.timer != nil {
			g.timer.Stop()
		}
	}
}
