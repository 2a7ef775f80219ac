package file

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// FuzzParsePattern: any path either is refused at config time or expands
// for every hour; a time pattern's tokens expand to digits only, so the
// directory a pattern names is fixed by its configured literals and no
// time can move it.
func FuzzParsePattern(f *testing.F) {
	for _, s := range []string{
		"/var/log/out/app.log", "/var/log/%Y/%m/%d/app-%H.log", "100%%.log", "x%", "%q", "%%%Y%%", "", "/a/%Y/../b",
	} {
		f.Add(s, int64(1764720000))
	}
	f.Fuzz(func(t *testing.T, s string, unix int64) {
		p, err := parsePattern(s)
		if err != nil {
			return
		}
		tm := time.Unix(unix%(1<<34), 0).UTC()
		got := p.expand(tm)
		// The same pattern with each token as its digits, written by
		// hand: the expansion adds nothing else.
		var want strings.Builder
		for _, seg := range p {
			if seg.verb == 0 {
				want.WriteString(seg.lit)
				continue
			}
			switch seg.verb {
			case 'Y':
				fmt.Fprintf(&want, "%04d", tm.Year())
			case 'm':
				fmt.Fprintf(&want, "%02d", tm.Month())
			case 'd':
				fmt.Fprintf(&want, "%02d", tm.Day())
			case 'H':
				fmt.Fprintf(&want, "%02d", tm.Hour())
			}
		}
		if got != want.String() {
			t.Fatalf("%q expands to %q, want %q", s, got, want.String())
		}
		if strings.Count(got, "/") != strings.Count(strings.ReplaceAll(s, "%%", ""), "/") {
			t.Fatalf("%q expands to %q: a time token added a separator", s, got)
		}
	})
}

// FuzzFieldPath: a %{field} path is fed field values from the logs, which
// anyone who can write a log line controls. Whatever the pattern and the
// value, a path the output accepts is inside the directory the pattern's
// leading literal names.
func FuzzFieldPath(f *testing.F) {
	for _, tc := range [][2]string{
		{"/var/log/out/%{service}/app.log", "web"},
		{"/var/log/out/%{service}/app.log", "../../etc"},
		{"/var/log/out/%{service}.log", ".."},
		{"/var/log/out/%{a}/%{b}/x.log", "a/b"},
		{"/var/log/out/%Y/../../%{service}", "x"},
		{"/var/log/out/%{service}/..", "web"},
		{"out/%{service}", "..\\x"},
		{"/%{service}", "etc"},
		{"/var/log/out%{service}", "\x00"},
		{"/var/log/%%{service}/%{service}", "."},
	} {
		f.Add(tc[0], tc[1])
	}
	f.Fuzz(func(t *testing.T, pat, val string) {
		tmpl, base, err := parseFieldPath(pat)
		if err != nil {
			return
		}
		o := &output{tmpl: tmpl, base: base, now: func() time.Time { return time.Unix(1764720000, 0) }}
		ev := &pipeline.Event{Fields: []pipeline.Field{{Key: "service", Value: val}, {Key: "a", Value: val}, {Key: "b", Value: val}}}
		src := &pipeline.Source{Fields: []pipeline.Field{{Key: "host", Value: val}}}
		expanded, err := o.expandPath(src, ev, nil)
		if err != nil {
			return
		}
		p, err := o.cleanPath(expanded)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(base, p)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			t.Fatalf("pattern %q with value %q gives %q, outside %q (rel %q, %v)", pat, val, p, base, rel, err)
		}
		if filepath.IsAbs(pat) != filepath.IsAbs(p) {
			t.Fatalf("pattern %q gives %q: absolute became relative or back", pat, p)
		}
	})
}

// TestFieldPathAtRootOrDot: a base directory of "/" or "." is a valid
// one; its files were refused as escapes before cleanPath used Rel.
func TestFieldPathAtRootOrDot(t *testing.T) {
	for _, tc := range []struct{ pat, val, want string }{
		{"/%{service}.log", "web", "/web.log"},
		{"./%{service}.log", "web", "web.log"},
		{"./%{service}/../../x.log", "web", ""},
		{"/var/log/out/%{service}/..", "web", ""},
	} {
		tmpl, base, err := parseFieldPath(tc.pat)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		o := &output{tmpl: tmpl, base: base, now: time.Now}
		ev := &pipeline.Event{Fields: []pipeline.Field{{Key: "service", Value: tc.val}}}
		exp, err := o.expandPath(nil, ev, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.pat, err)
		}
		got, err := o.cleanPath(exp)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%q with %q: accepted %q, want it refused", tc.pat, tc.val, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q with %q = %q, %v; want %q", tc.pat, tc.val, got, err, tc.want)
		}
	}
}
