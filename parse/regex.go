package parse

import (
	"errors"
	"regexp"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// regexSpec is a compiled `pattern`: its named groups become fields.
type regexSpec struct {
	re      *regexp.Regexp
	names   []string // by group index; "" for unnamed groups
	repeats bool     // a name is used twice, as in (?P<x>a)|(?P<x>b)
}

func compileRegex(pattern string) (*regexSpec, error) {
	if pattern == "" {
		return nil, config.Errorf("parse.pattern", "is required with parser = \"regex\"")
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, config.Errorf("parse.pattern", "%v", err)
	}
	named := 0
	for _, n := range re.SubexpNames() {
		if n != "" {
			named++
		}
	}
	if named == 0 {
		return nil, config.Errorf("parse.pattern", "has no named groups ((?P<name>...)), so it would produce no fields")
	}
	seen := map[string]bool{}
	repeats := false
	for _, n := range re.SubexpNames() {
		repeats = repeats || (n != "" && seen[n])
		seen[n] = true
	}
	return &regexSpec{re: re, names: re.SubexpNames(), repeats: repeats}, nil
}

func (s *regexSpec) parser() pipeline.Parser { return regexParser{s} }

// regexParser is stateless: regexp.Regexp is safe for concurrent use and
// pools its own matchers.
type regexParser struct{ *regexSpec }

var errNoMatch = errors.New("regex: the line does not match the pattern")

func (r regexParser) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	// FindSubmatchIndex allocates its result: the one allocation per line
	// of this parser (regexp has no variant that appends to a buffer).
	m := r.re.FindSubmatchIndex(ev.Raw)
	if m == nil {
		return errNoMatch
	}
	for g := 1; g < len(r.names); g++ {
		if r.names[g] == "" || m[2*g] < 0 {
			continue // unnamed, or an optional group that did not take part
		}
		if v := a.Text(ev.Raw[m[2*g]:m[2*g+1]]); r.repeats {
			a.Set(r.names[g], v)
		} else {
			a.Add(r.names[g], v)
		}
	}
	return nil
}
