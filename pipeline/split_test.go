package pipeline

import (
	"slices"
	"testing"
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
			p.split(c, tc.maxLine)
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

// TestSplitEnds: a chunk with event boundaries (a broker input) keeps
// newlines inside an event, cuts events longer than max_line_bytes, and
// addMeta gives each event its metadata after parsing.
func TestSplitEnds(t *testing.T) {
	p := New(Options{Workers: 1})
	buf := []byte("one\ntwo lines\n\nthree is long\n")
	//             0123 4567890123 4 5678901234567 8
	c := &Chunk{Buf: buf, Ends: []int{3, 13, 14, 28}}
	c.Meta = [][]Field{{{Key: "id", Value: "1"}}, {{Key: "id", Value: "2"}}, nil, {{Key: "id", Value: "4"}}}
	// "one", "two\nlines" (the \n at 7 is inside), "" and "three is long".
	c.Buf[7] = '\n'
	p.split(c, 10)
	want := []string{"one", "two\nlines", "", "three is l"}
	if got := rawsOf(c); !slices.Equal(got, want) {
		t.Fatalf("events %q, want %q", got, want)
	}
	if n := p.stats.LinesTruncated.Load(); n != 1 {
		t.Fatalf("truncated %d, want 1", n)
	}
	c.Events[0].Fields = []Field{{Key: "parsed", Value: true}}
	addMeta(c)
	if f := c.Events[0].Fields; len(f) != 2 || f[1].Key != "metadata" || f[1].Value.([]Field)[0].Value != "1" {
		t.Fatalf("event 0 fields %v", f)
	}
	if c.Events[2].Fields != nil {
		t.Fatalf("event without metadata got fields %v", c.Events[2].Fields)
	}
}
