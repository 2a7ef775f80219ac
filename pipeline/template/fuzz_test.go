package template

import (
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// FuzzTemplate: patterns come from configs and values from logs. Parse
// never panics; a parsed pattern written back with String parses to one
// that expands the same; an expansion holds every literal of the pattern
// in order, and fold sees every field value.
func FuzzTemplate(f *testing.F) {
	for _, tc := range [][2]string{
		{"logs-%{service}-%Y.%m.%d", "web"},
		{"%{metadata.topic}:%{a.b.c}", "x"},
		{"100%%%{x}%%", "%{y}"},
		{"%{", ""}, {"%{}", ""}, {"x%", ""}, {"%q", ""},
		{"%{a}%{b}%H", "\x00\xff"},
		{"%{service}", ""},
	} {
		f.Add(tc[0], tc[1], int64(1764720000))
	}
	f.Fuzz(func(t *testing.T, pat, val string, unix int64) {
		tm, err := Parse(pat)
		if err != nil {
			return
		}
		now := time.Unix(unix%(1<<34), 0)
		src := &pipeline.Source{Fields: []pipeline.Field{{Key: "host", Value: val}}}
		ev := &pipeline.Event{Fields: []pipeline.Field{
			{Key: "service", Value: val},
			{Key: "metadata", Value: []pipeline.Field{{Key: "topic", Value: val}}},
			{Key: val, Value: int64(7)},
		}}
		folds := 0
		got := string(tm.Append(nil, src, ev, now, func(dst []byte, v string) []byte {
			folds++
			return append(dst, v...)
		}))
		fields := 0
		for _, p := range tm {
			if p.field != "" {
				fields++
			}
		}
		if folds != fields {
			t.Fatalf("%q: fold called %d times for %d fields", pat, folds, fields)
		}
		if plain := string(tm.Append(nil, src, ev, now, nil)); plain != got {
			t.Fatalf("%q: %q without fold, %q with an identity fold", pat, plain, got)
		}
		rest := got
		for _, p := range tm {
			if p.lit == "" {
				continue
			}
			i := strings.Index(rest, p.lit)
			if i < 0 {
				t.Fatalf("%q expands to %q, missing literal %q", pat, got, p.lit)
			}
			rest = rest[i+len(p.lit):]
		}
		again, err := Parse(tm.String())
		if err != nil {
			t.Fatalf("%q written back as %q does not parse: %v", pat, tm.String(), err)
		}
		if a := string(again.Append(nil, src, ev, now, nil)); a != got {
			t.Fatalf("%q written back as %q expands to %q, want %q", pat, tm.String(), a, got)
		}
		if tm.Static() != again.Static() || tm.Shape("x") != again.Shape("x") {
			t.Fatalf("%q and its String %q differ in shape", pat, tm.String())
		}
		if lit, ok := tm.Literal(); ok && lit != got {
			t.Fatalf("%q: literal %q, expands to %q", pat, lit, got)
		}
	})
}
