package parse_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// fuzzParser checks what must hold for any input: Parse does not panic,
// an error says something, and a parsed event has non-empty keys (except
// from json, where "" is a valid member name kept as written) and encodes
// to valid JSON (so *RawJSON values are valid JSON and *Text values are
// whole). check adds the parser's own properties.
func fuzzParser(f *testing.F, name string, mod func(s *pipeline.InputSettings), seeds []string,
	check func(t *testing.T, line []byte, fs []pipeline.Field)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p := spec(f, name, mod).New()
	a := new(pipeline.Arena)
	f.Fuzz(func(t *testing.T, line []byte) {
		a.Reset()
		ev := pipeline.Event{Raw: line}
		a.Begin()
		err := p.Parse(&ev, a)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		ev.Fields = a.Fields()
		for _, fl := range ev.Fields {
			if fl.Key == "" && name != "json" {
				t.Fatalf("empty key in %q", line)
			}
		}
		if out := codec.AppendJSON(nil, nil, &ev); !json.Valid(out) {
			t.Fatalf("%q encodes to invalid JSON %s", line, out)
		}
		if check != nil {
			check(t, line, ev.Fields)
		}
	})
}

func field(fs []pipeline.Field, key string) (any, bool) {
	for _, f := range fs {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

func FuzzJSON(f *testing.F) {
	fuzzParser(f, "json", nil, benchLines["json"], func(t *testing.T, line []byte, fs []pipeline.Field) {
		if !json.Valid(line) {
			// fastjson is more lenient than encoding/json only in
			// strings: unknown escapes and raw control characters are
			// kept as written. Anything else must be JSON.
			if !bytes.Contains(line, []byte(`\`)) && bytes.IndexFunc(line, func(r rune) bool { return r < 0x20 }) < 0 {
				t.Fatalf("accepted invalid JSON %q", line)
			}
		}
	})
}

func FuzzLogfmt(f *testing.F) {
	fuzzParser(f, "logfmt", nil, append(benchLines["logfmt"], `a="x\"y" b c=`, `k="\u00e9"`), func(t *testing.T, line []byte, fs []pipeline.Field) {
		if len(fs) == 0 {
			t.Fatalf("%q parsed to no fields", line)
		}
		for _, fl := range fs {
			if !bytes.Contains(line, []byte(fl.Key)) {
				t.Fatalf("key %q is not in the line %q", fl.Key, line)
			}
		}
	})
}

func FuzzRegex(f *testing.F) {
	fuzzParser(f, "regex", func(s *pipeline.InputSettings) { s.Parse.Pattern = benchPattern }, benchLines["regex"],
		func(t *testing.T, line []byte, fs []pipeline.Field) {
			for _, fl := range fs {
				v, _ := pipeline.Bytes(fl.Value)
				if !bytes.Contains(line, v) {
					t.Fatalf("%s=%q is not in the line %q", fl.Key, v, line)
				}
			}
		})
}

func FuzzCRI(f *testing.F) {
	fuzzParser(f, "cri", nil, append(benchLines["cri"], cri("stdout", "P", "x"), ts+" stderr F"), func(t *testing.T, line []byte, fs []pipeline.Field) {
		m, _ := field(fs, "message")
		msg, _ := pipeline.Bytes(m)
		if !bytes.HasSuffix(line, msg) {
			t.Fatalf("message %q is not the end of %q", msg, line)
		}
	})
}

func FuzzDocker(f *testing.F) {
	fuzzParser(f, "docker", nil, append(benchLines["docker"], `{"log":"part","stream":"stdout","time":"`+ts+`"}`),
		func(t *testing.T, line []byte, fs []pipeline.Field) {
			if _, ok := field(fs, "message"); !ok {
				t.Fatalf("%q parsed without a message", line)
			}
		})
}

func FuzzSyslog(f *testing.F) {
	fuzzParser(f, "syslog", nil, append(benchLines["syslog"], `<13>1 - h a - - [a b="\]"] m`, `Nov  2 10:00:00 h t: m`),
		func(t *testing.T, line []byte, fs []pipeline.Field) {
			if v, ok := field(fs, "severity"); ok && (v.(int64) < 0 || v.(int64) > 7) {
				t.Fatalf("severity %v from %q", v, line)
			}
			if v, ok := field(fs, "facility"); ok && (v.(int64) < 0 || v.(int64) > 23) {
				t.Fatalf("facility %v from %q", v, line)
			}
		})
}

// FuzzMultiline feeds any lines, cut into chunks anywhere, through the
// multiline stage of each preset and of user patterns. Whatever the
// rules: the shipped records, each the lines joined by "\n", give back
// every line once and in order; no record passes max_lines, or max_bytes
// unless it is one line; and the End a chunk is shipped with never
// decreases and never passes the chunk's own.
func FuzzMultiline(f *testing.F) {
	modes := []func(m *pipeline.MultilineSettings){
		func(m *pipeline.MultilineSettings) { m.Preset = "java" },
		func(m *pipeline.MultilineSettings) { m.Preset = "go" },
		func(m *pipeline.MultilineSettings) { m.Preset = "python" },
		func(m *pipeline.MultilineSettings) { m.StartPattern = `^#` },
		func(m *pipeline.MultilineSettings) { m.ContinuePattern = `^\s` },
		func(m *pipeline.MultilineSettings) { m.ContinuePattern = `^[a-z#]`; m.Negate = true },
	}
	specs := make([]pipeline.ParserSpec, len(modes))
	for i, mode := range modes {
		specs[i] = spec(f, "none", func(s *pipeline.InputSettings) {
			mode(&s.Multiline)
			s.Multiline.MaxLines = 6
			s.Multiline.MaxBytes = 200
			s.Multiline.Timeout = config.Dur(time.Hour) // no flush: the fuzzer drives every line
		})
	}
	for _, seed := range [][]string{javaTrace, goPanic, pythonTrace, javaUncaught} {
		f.Add(uint8(0), uint64(1), []byte(strings.Join(seed, "\n")))
	}
	f.Add(uint8(3), uint64(7), []byte("# a\nb\n\n# c\n\td\n"))
	f.Add(uint8(5), uint64(9), []byte("[x\ny\n[z\n"+strings.Repeat("q", 300)+"\nw"))
	f.Fuzz(func(t *testing.T, mode uint8, cuts uint64, data []byte) {
		if bytes.Contains(data, []byte("#END#")) {
			return
		}
		ps := specs[int(mode)%len(specs)]
		stage := ps.NewOrdered(&pipeline.Stats{})
		defer stage.(interface{ Close() }).Close() // the open record's timer
		lines := strings.Split(string(data), "\n")
		// The sentinel begins a record under every mode, so every line
		// before it is shipped.
		all := append(slices.Clone(lines), "#END#")
		rng := rand.New(rand.NewPCG(cuts, 0))
		src := &pipeline.Source{}
		var got []string
		var off, lastEnd int64
		starts := map[int64]int{} // offset of line i -> i
		shipped := 0              // lines shipped so far
		for rest := all; len(rest) > 0; {
			n := min(1+rng.IntN(5), len(rest))
			c := &pipeline.Chunk{Source: src}
			for _, l := range rest[:n] {
				starts[off] = len(starts)
				c.Buf = append(append(c.Buf, l...), '\n')
				off += int64(len(l)) + 1
			}
			// Events point into Buf, as the pool's split makes them.
			for i, pos := 0, 0; i < n; i++ {
				c.Events = append(c.Events, pipeline.Event{Raw: c.Buf[pos : pos+len(rest[i]) : pos+len(rest[i])]})
				pos += len(rest[i]) + 1
			}
			c.End = off
			rest = rest[n:]
			stage.Process(c)
			for _, ev := range c.Events {
				if !ev.Drop {
					got = append(got, string(ev.Raw))
					shipped += strings.Count(string(ev.Raw), "\n") + 1
				}
			}
			// The checkpoint only grows, falls on a line's start, and
			// does not pass the first line not shipped yet.
			line, ok := starts[c.End]
			if c.End < lastEnd || !ok && c.End != off || ok && line > shipped {
				t.Fatalf("chunk shipped with End %d after %d (its own %d; line %d, %d lines shipped)", c.End, lastEnd, off, line, shipped)
			}
			lastEnd = c.End
		}
		for _, r := range got {
			if n := strings.Count(r, "\n") + 1; n > 6 || (n > 1 && len(r) > 200) {
				t.Fatalf("record of %d lines, %d bytes: %q", n, len(r), r)
			}
		}
		if j, want := strings.Join(got, "\n"), strings.Join(lines, "\n"); j != want {
			t.Fatalf("records %q\ngive back %q\nwant      %q", got, j, want)
		}
	})
}

// FuzzJoin feeds a cri or docker source, cut into chunks anywhere, through
// the parser and the joiner that reassembles partial lines. data is read as
// one line per "\n": its first byte picks the stream (stdout, stderr), the
// flag (partial or full) and whether the line is written well-formed or as
// the bytes themselves (mostly malformed); the rest is the message. The
// shipped events must be exactly what reassembly by the rules gives: a
// full line ends its stream's open group; the pieces of a group are
// dropped and its final event carries their message concatenated, cut to
// max_line_bytes and then counted once as truncated; malformed lines pass
// as they are and do not break a group; a group still open at the end is
// not shipped. No shipped message exceeds the cap or holds more bytes than
// its pieces, and every rebuilt line parses back to its message.
func FuzzJoin(f *testing.F) {
	const maxLine = 64
	specs := map[bool]pipeline.ParserSpec{}
	for _, docker := range []bool{false, true} {
		name := "cri"
		if docker {
			name = "docker"
		}
		specs[docker] = spec(f, name, func(s *pipeline.InputSettings) {
			s.MaxLineBytes = maxLine
			s.Parse.PartialTimeout = config.Dur(time.Hour) // no expiry: the fuzzer drives every line
		})
	}
	f.Add(false, uint64(1), []byte("\x02a\n\x02b\n\x00c\n\x00plain"))
	f.Add(false, uint64(3), []byte("\x02out-a\n\x03err-a\n\x02out-b\n\x01err-end\n\x00out-end"))
	f.Add(false, uint64(5), []byte("\x02"+strings.Repeat("x", 40)+"\n\x02"+strings.Repeat("y", 40)+"\n\x00tail"))
	f.Add(false, uint64(7), []byte("\x02a\n\x04garbage line\n\x00b\n\x04"+ts+" stdout P raw piece\n\x04"+ts+" stdout F raw end"))
	f.Add(true, uint64(1), []byte("\x02first \"quoted\" \n\x02second\t\n\x00end\n\x01alone"))
	f.Add(true, uint64(9), []byte("\x02\xff\xfe\n\x00\xe2\x82\n\x04{\"log\":1}\n\x04not json"))
	f.Add(true, uint64(2), []byte("\x02"+strings.Repeat("é", 40)+"\n\x00z"))
	f.Fuzz(func(t *testing.T, docker bool, cuts uint64, data []byte) {
		ps := specs[docker]
		p := ps.New()
		stats := &pipeline.Stats{}
		stage := ps.NewOrdered(stats)
		defer stage.(interface{ Close() }).Close()

		var lines [][]byte
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			ctl, msg := l[0], l[1:]
			stream, tag, logEnd := "stdout", "F", "\n"
			if ctl&1 != 0 {
				stream = "stderr"
			}
			if ctl&2 != 0 {
				tag, logEnd = "P", ""
			}
			switch {
			case ctl&4 != 0:
				lines = append(lines, msg)
			case docker:
				b, _ := json.Marshal(map[string]string{"log": string(msg) + logEnd, "stream": stream, "time": ts})
				lines = append(lines, b)
			default:
				lines = append(lines, []byte(cri(stream, tag, string(msg))))
			}
		}

		// The rules, applied to what the parser makes of each line.
		type open struct {
			msg       []byte
			truncated bool
		}
		groups := map[string]*open{}
		streams := map[string]bool{} // the joiner keeps a group per stream, at most maxGroups
		var want []string
		var merged []bool // want[i] is a reassembled line
		wantTruncated := 0
		given := 0
		parsed := func(ev *pipeline.Event, a *pipeline.Arena) (stream, msg []byte, partial, ok bool) {
			a.Begin()
			if err := p.Parse(ev, a); err != nil {
				ev.Fields = []pipeline.Field{{Key: "parse_error", Value: err.Error()}}
				return nil, nil, false, false
			}
			ev.Fields = a.Fields()
			s, _ := field(ev.Fields, "stream")
			m, _ := field(ev.Fields, "message")
			stream, _ = pipeline.Bytes(s)
			msg, _ = pipeline.Bytes(m)
			_, partial = field(ev.Fields, "partial")
			return stream, msg, partial, true
		}

		rng := rand.New(rand.NewPCG(cuts, 0))
		src := &pipeline.Source{}
		var got []string
		var gotLen []int // message bytes of got[i]
		shipped := 0
		for rest := lines; len(rest) > 0; {
			n := min(1+rng.IntN(4), len(rest))
			c := &pipeline.Chunk{Source: src}
			a := c.Arena()
			for _, l := range rest[:n] {
				c.Buf = append(append(c.Buf, l...), '\n')
			}
			for i, pos := 0, 0; i < n; i++ {
				c.Events = append(c.Events, pipeline.Event{Raw: c.Buf[pos : pos+len(rest[i]) : pos+len(rest[i])]})
				pos += len(rest[i]) + 1
			}
			for i := range c.Events {
				ev := &c.Events[i]
				stream, msg, partial, ok := parsed(ev, a)
				if !ok {
					want = append(want, fmt.Sprintf("raw:%q", ev.Raw))
					merged = append(merged, false)
					continue
				}
				given += len(msg)
				if !streams[string(stream)] && len(streams) == 8 {
					// Beyond the joiner's bound on streams: shipped as
					// parsed, a piece included.
					want = append(want, fmt.Sprintf("msg:%q partial:%v", msg, partial))
					merged = append(merged, false)
					continue
				}
				streams[string(stream)] = true
				g := groups[string(stream)]
				if partial {
					if g == nil {
						g = &open{}
						groups[string(stream)] = g
					}
					room := maxLine - len(g.msg)
					if len(msg) > room {
						msg, g.truncated = msg[:max(room, 0)], true
					}
					g.msg = append(g.msg, msg...)
					continue
				}
				if g == nil {
					want = append(want, fmt.Sprintf("msg:%q partial:false", msg))
					merged = append(merged, false)
					continue
				}
				room := maxLine - len(g.msg)
				if len(msg) > room {
					msg, g.truncated = msg[:max(room, 0)], true
				}
				want = append(want, fmt.Sprintf("msg:%q partial:false", string(g.msg)+string(msg)))
				merged = append(merged, true)
				if g.truncated {
					wantTruncated++
				}
				delete(groups, string(stream))
			}
			rest = rest[n:]
			stage.Process(c)
			for _, ev := range c.Events {
				if ev.Drop {
					continue
				}
				if _, failed := field(ev.Fields, "parse_error"); failed {
					got = append(got, fmt.Sprintf("raw:%q", ev.Raw))
					gotLen = append(gotLen, 0)
					continue
				}
				m, _ := field(ev.Fields, "message")
				msg, _ := pipeline.Bytes(m)
				_, partial := field(ev.Fields, "partial")
				got = append(got, fmt.Sprintf("msg:%q partial:%v", msg, partial))
				gotLen = append(gotLen, len(msg))
				shipped += len(msg)
				if partial {
					continue
				}
				// The rebuilt line is a valid line of the format, with the
				// merged message (docker replaces invalid UTF-8 in it).
				back := pipeline.Event{Raw: slices.Clone(ev.Raw)}
				_, bm, bp, ok := parsed(&back, new(pipeline.Arena))
				if !ok || bp {
					t.Fatalf("shipped line %q does not parse back as a full line", ev.Raw)
				}
				if !docker && !bytes.Equal(bm, msg) || docker && !bytes.Equal(bm, bytes.ToValidUTF8(msg, []byte("\uFFFD"))) && !bytes.Equal(bm, perByteValid(msg)) {
					t.Fatalf("shipped line %q parses back to %q, the event says %q", ev.Raw, bm, msg)
				}
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("shipped\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for i, n := range gotLen {
			if merged[i] && n > maxLine {
				t.Fatalf("reassembled line of %d bytes, past the cap of %d: %s", n, maxLine, got[i])
			}
		}
		if shipped > given {
			t.Fatalf("shipped %d message bytes, given %d", shipped, given)
		}
		if n := stats.LinesTruncated.Load(); n != int64(wantTruncated) {
			t.Fatalf("LinesTruncated = %d, want %d", n, wantTruncated)
		}
	})
}

// perByteValid is msg with each byte that is not part of valid UTF-8
// replaced by U+FFFD, as the docker joiner writes a rebuilt line.
func perByteValid(msg []byte) []byte {
	var out []byte
	for i := 0; i < len(msg); {
		r, n := utf8.DecodeRune(msg[i:])
		if r == utf8.RuneError && n == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, msg[i:i+n]...)
		}
		i += n
	}
	return out
}
