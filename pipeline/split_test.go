package pipeline

import (
	"bytes"
	"slices"
	"strconv"
	"testing"
	"unicode/utf8"
)

func rawsOf(c *Chunk) []string {
	out := make([]string, len(c.Events))
	for i, ev := range c.Events {
		out[i] = string(ev.Raw)
	}
	return out
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		buf       string
		maxLine   int
		readerCut int // Chunk.Truncated
		want      []string
		truncated int64
	}{
		{"empty", "", 0, 0, []string{}, 0},
		{"lines", "a\nbb\nccc\n", 0, 0, []string{"a", "bb", "ccc"}, 0},
		{"no final newline", "a\nbb", 0, 0, []string{"a", "bb"}, 0},
		{"empty lines", "\n\nx\n\n", 0, 0, []string{"", "", "x", ""}, 0},
		{"single unterminated", "abc", 0, 0, []string{"abc"}, 0},
		{"max line", "short\nthis line is long\nlast-unterminated", 6, 0, []string{"short", "this l", "last-u"}, 2},
		{"max line exact", "123456\n1234567\n", 6, 0, []string{"123456", "123456"}, 1},
		{"reader truncated too", "a\nb\n", 6, 3, []string{"a", "b"}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Options{Workers: 1})
			c := &Chunk{Buf: []byte(tc.buf), Truncated: tc.readerCut}
			p.split(c, tc.maxLine, LineOptions{})
			if got := rawsOf(c); !slices.Equal(got, tc.want) {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
			if n := p.stats.LinesTruncated.Load(); n != tc.truncated {
				t.Fatalf("LinesTruncated = %d, want %d", n, tc.truncated)
			}
			for _, ev := range c.Events {
				if ev.Fields != nil || ev.Drop {
					t.Fatalf("split left state from a pooled slice: %+v", ev)
				}
			}
			c.release() // back to the pools; the next case must see clean events
		})
	}
}

func TestBatchAddAndAll(t *testing.T) {
	src := &Source{Name: "s"}
	b := NewTestBatch(src, "one", "two", "three")
	if b.Len() != 3 || b.Bytes() != len("one\ntwo\nthree\n") {
		t.Fatalf("Len %d Bytes %d", b.Len(), b.Bytes())
	}
	if len(b.parts) != 1 {
		t.Fatalf("contiguous events of one chunk made %d parts, want 1", len(b.parts))
	}
	var got []string
	for s, ev := range b.All() {
		if s != src {
			t.Fatal("wrong source")
		}
		got = append(got, string(ev.Raw))
	}
	if !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Fatalf("All yielded %q", got)
	}
	// Early break stops the iteration.
	n := 0
	for range b.All() {
		n++
		break
	}
	if n != 1 {
		t.Fatalf("iterated %d after break", n)
	}
	// Dropped events are skipped; a gap starts a new part.
	c := b.parts[0].c
	c.Events = append(c.Events, Event{Raw: []byte("four")}, Event{Raw: []byte("five")})
	c.Events[1].Drop = true
	b.reset()
	b.add(c, 0)
	b.add(c, 2)
	b.add(c, 4)
	if len(b.parts) != 3 {
		t.Fatalf("non-contiguous events made %d parts, want 3", len(b.parts))
	}
	got = got[:0]
	for _, ev := range b.All() {
		got = append(got, string(ev.Raw))
	}
	if !slices.Equal(got, []string{"one", "three", "five"}) {
		t.Fatalf("All yielded %q", got)
	}
	b.reset()
	if b.Len() != 0 || b.Bytes() != 0 || len(b.parts) != 0 || len(b.acks) != 0 {
		t.Fatal("reset left state")
	}
}

func TestBufClasses(t *testing.T) {
	for _, tc := range []struct{ n, class int }{
		{0, 4 << 10}, {1, 4 << 10}, {4 << 10, 4 << 10}, {4<<10 + 1, 16 << 10},
		{256 << 10, 256 << 10}, {1 << 20, 1 << 20}, {1<<20 + 1, 1<<20 + 1},
	} {
		if c := BufClass(tc.n); c != tc.class {
			t.Errorf("BufClass(%d) = %d, want %d", tc.n, c, tc.class)
		}
		b := GetBuf(tc.n)
		if len(b) != 0 || cap(b) != tc.class {
			t.Errorf("GetBuf(%d): len %d cap %d, want 0, %d", tc.n, len(b), cap(b), tc.class)
		}
		putBuf(b)
	}
}

// TestSplitEnds: a source that marks event boundaries keeps a message with
// newlines as one event, and its per-event metadata lands in the fields.
func TestSplitEnds(t *testing.T) {
	p := New(Options{Workers: 1})
	buf := "one\ntwo lines\nthree"
	c := &Chunk{Buf: []byte(buf), Ends: []int{4, 14, 19},
		Meta: [][]Field{{{Key: "metadata", Value: "a"}}, nil, {{Key: "metadata", Value: "c"}}}}
	p.split(c, 0, LineOptions{})
	if got, want := rawsOf(c), []string{"one\n", "two lines\n", "three"}; !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	addMeta(c)
	if v, ok := Lookup(nil, &c.Events[0], "metadata"); !ok || v != "a" {
		t.Fatalf("event 0 metadata = %v, %v", v, ok)
	}
	if len(c.Events[1].Fields) != 0 {
		t.Fatalf("event 1 got fields %v", c.Events[1].Fields)
	}
	if v, ok := Lookup(nil, &c.Events[2], "metadata"); !ok || v != "c" {
		t.Fatalf("event 2 metadata = %v, %v", v, ok)
	}
	c.release()
	p.split(&Chunk{Buf: []byte("x"), Ends: []int{1}}, 0, LineOptions{})
	c = &Chunk{Buf: []byte("abcdef"), Ends: []int{6}}
	p.split(c, 3, LineOptions{})
	if got := rawsOf(c); !slices.Equal(got, []string{"abc"}) || p.stats.LinesTruncated.Load() != 1 {
		t.Fatalf("max line: %q, truncated %d", got, p.stats.LinesTruncated.Load())
	}
}

func TestSplitLineOptions(t *testing.T) {
	bad := "ok\xff\xfeend"
	for _, tc := range []struct {
		name    string
		buf     string
		o       LineOptions
		want    []string
		invalid int64
	}{
		{"crlf stripped", "a\r\nb\r\nc\r", LineOptions{}, []string{"a", "b", "c"}, 0},
		{"lone cr kept inside", "a\rb\r\n", LineOptions{}, []string{"a\rb"}, 0},
		{"crlf kept", "a\r\nb\r\n", LineOptions{KeepCR: true}, []string{"a\r", "b\r"}, 0},
		{"empty crlf line", "\r\n\r\n", LineOptions{}, []string{"", ""}, 0},
		{"invalid passed", "x\n" + bad + "\ny\n", LineOptions{}, []string{"x", bad, "y"}, 1},
		{"invalid replaced", "x\n" + bad + "\n\xc3\n", LineOptions{ReplaceInvalidUTF8: true}, []string{"x", "ok\uFFFDend", "\uFFFD"}, 2},
		{"valid multibyte untouched", "h\u00e9llo\n\u65e5\u672c\n", LineOptions{ReplaceInvalidUTF8: true}, []string{"h\u00e9llo", "\u65e5\u672c"}, 0},
		{"crlf then invalid", "\xff\r\n", LineOptions{ReplaceInvalidUTF8: true}, []string{"\uFFFD"}, 1},
		// max_line_bytes does not cut a rune in two.
		{"cut rune", "ab\u00e9\n", LineOptions{}, []string{"ab"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := New(Options{Workers: 1})
			c := &Chunk{Buf: []byte(tc.buf)}
			maxLine := 0
			if tc.name == "cut rune" {
				maxLine = 3
			}
			p.split(c, maxLine, tc.o)
			if got := rawsOf(c); !slices.Equal(got, tc.want) {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
			if n := p.stats.InvalidUTF8Lines.Load(); n != tc.invalid {
				t.Fatalf("InvalidUTF8Lines = %d, want %d", n, tc.invalid)
			}
			c.release()
		})
	}
}

func TestAppendValidUTF8(t *testing.T) {
	for _, s := range []string{"", "abc", "\xff", "a\xff\xfeb", "\xe2\x82", "\u20ac\xed\xa0\x80", "\xf0\x9f\x98\x80x"} {
		want := string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
		if got := string(appendValidUTF8([]byte("pre"), []byte(s))); got != "pre"+want {
			t.Errorf("appendValidUTF8(%q) = %q, want %q", s, got, "pre"+want)
		}
	}
}

func BenchmarkSplit(b *testing.B) {
	var buf []byte
	for i := 0; len(buf) < 256<<10; i++ {
		buf = append(buf, "2026-12-02T05:40:00Z level=info msg=\"request served\" path=/api/v1/items status=200 seq="...)
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, '\n')
	}
	p := New(Options{Workers: 1})
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c := &Chunk{Buf: buf}
		p.split(c, 1<<20, LineOptions{})
		c.release()
	}
}

// FuzzSplit: whatever the chunk holds, split yields one event per line,
// each the line's bytes (less a CR before LF, cut to max_line_bytes),
// valid UTF-8 when replacing, and counts what it saw.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"a\nb\n", "a\r\nb", "\xff\xfe\n\r\n", "h\u00e9llo\n", "\r", "\n\n", ""} {
		f.Add([]byte(s), uint8(0), false, false)
		f.Add([]byte(s), uint8(3), true, true)
	}
	f.Fuzz(func(t *testing.T, buf []byte, maxLine uint8, keepCR, replace bool) {
		p := New(Options{Workers: 1})
		c := &Chunk{Buf: append([]byte(nil), buf...)}
		o := LineOptions{KeepCR: keepCR, ReplaceInvalidUTF8: replace}
		p.split(c, int(maxLine), o)
		defer c.release()
		raw := bytes.Split(buf, []byte("\n"))
		if len(buf) > 0 && buf[len(buf)-1] == '\n' {
			raw = raw[:len(raw)-1]
		}
		if len(buf) == 0 {
			raw = nil
		}
		if len(c.Events) != len(raw) {
			t.Fatalf("%d events for %d lines", len(c.Events), len(raw))
		}
		var invalid int64
		for i, ev := range c.Events {
			want := raw[i]
			if !keepCR {
				want = bytes.TrimSuffix(want, []byte("\r"))
			}
			if maxLine > 0 && len(want) > int(maxLine) {
				if replace {
					// U+FFFD is 3 bytes where it replaces 1: the cut is
					// on the bytes read; validity is what counts here.
					if !utf8.Valid(ev.Raw) {
						t.Fatalf("line %d not valid UTF-8 after replace: %q", i, ev.Raw)
					}
					continue
				}
				// Cut at most utf8.UTFMax-1 bytes early, to keep a rune whole.
				if len(ev.Raw) > int(maxLine) || len(ev.Raw) < int(maxLine)-3 {
					t.Fatalf("line %d cut to %d bytes, max %d", i, len(ev.Raw), maxLine)
				}
				want = want[:len(ev.Raw)]
			}
			if !utf8.Valid(want) {
				invalid++
			}
			if replace {
				if !utf8.Valid(ev.Raw) {
					t.Fatalf("line %d not valid UTF-8 after replace: %q", i, ev.Raw)
				}
				want = bytes.ToValidUTF8(want, []byte("\uFFFD"))
			}
			if !bytes.Equal(ev.Raw, want) {
				t.Fatalf("line %d = %q, want %q", i, ev.Raw, want)
			}
		}
		if !replace && maxLine == 0 && p.stats.InvalidUTF8Lines.Load() != invalid {
			t.Fatalf("InvalidUTF8Lines = %d, want %d", p.stats.InvalidUTF8Lines.Load(), invalid)
		}
	})
}
