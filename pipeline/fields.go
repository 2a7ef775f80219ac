package pipeline

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tailship/tailship/config"
)

// Lookup returns the value of key for ev: the event's own fields first,
// then the source's static fields, then "message" as the raw line when no
// field of that name exists. A dotted key ("http.status") also walks nested
// []Field values, so an object a processor built can be reached; a field
// whose name itself has a dot wins over the walk.
func Lookup(src *Source, ev *Event, key string) (any, bool) {
	if v, ok := lookupIn(ev.Fields, key); ok {
		return v, true
	}
	if src != nil {
		if v, ok := lookupIn(src.Fields, key); ok {
			return v, true
		}
	}
	if key == "message" {
		return Text(ev.Raw), true
	}
	return nil, false
}

// LookupText returns the text form (AppendText) of key's value for ev,
// as Lookup finds it. Text values and the raw line are returned as they
// are, without boxing or copying; other values are appended to dst.
func LookupText(dst []byte, src *Source, ev *Event, key string) ([]byte, bool) {
	v, ok := lookupIn(ev.Fields, key)
	if !ok && src != nil {
		v, ok = lookupIn(src.Fields, key)
	}
	if !ok {
		if key == "message" {
			return ev.Raw, true
		}
		return dst, false
	}
	switch t := v.(type) {
	case *Text:
		return *t, true
	case Text:
		return t, true
	}
	return AppendText(dst, v)
}

func lookupIn(fs []Field, key string) (any, bool) {
	for i := range fs {
		if fs[i].Key == key {
			return fs[i].Value, true
		}
	}
	for dot := strings.IndexByte(key, '.'); dot > 0; {
		for i := range fs {
			if fs[i].Key == key[:dot] {
				if sub, ok := fs[i].Value.([]Field); ok {
					return lookupIn(sub, key[dot+1:])
				}
			}
		}
		next := strings.IndexByte(key[dot+1:], '.')
		if next < 0 {
			break
		}
		dot += 1 + next
	}
	return nil, false
}

// AppendText appends the text form of a field value, the one conditions,
// hashes and keys compare: strings as they are (unquoted), a *RawJSON
// string unquoted and other JSON as written, numbers and booleans as Go
// formats them. It reports false for values without a text form (nested
// fields, nil).
func AppendText(dst []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case *Text:
		return append(dst, *v...), true
	case Text:
		return append(dst, v...), true
	case string:
		return append(dst, v...), true
	case []byte:
		return append(dst, v...), true
	case *RawJSON:
		r := []byte(*v)
		if len(r) >= 2 && r[0] == '"' {
			if s, err := strconv.Unquote(string(r)); err == nil {
				return append(dst, s...), true
			}
			return append(dst, r[1:len(r)-1]...), true
		}
		if string(r) == "null" {
			return dst, false
		}
		return append(dst, r...), true
	case bool:
		return strconv.AppendBool(dst, v), true
	case int64:
		return strconv.AppendInt(dst, v, 10), true
	case int:
		return strconv.AppendInt(dst, int64(v), 10), true
	case float64:
		return strconv.AppendFloat(dst, v, 'g', -1, 64), true
	case time.Time:
		return v.AppendFormat(dst, time.RFC3339Nano), true
	}
	return dst, false
}

// Number returns a field value as a float64: numbers, and strings or JSON
// text that parse as one.
func Number(v any) (float64, bool) {
	switch v := v.(type) {
	case int64:
		return float64(v), true
	case int:
		return float64(v), true
	case float64:
		return v, true
	}
	var tmp [64]byte
	b, ok := AppendText(tmp[:0], v)
	if !ok || len(b) == 0 {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return f, err == nil
}

// Condition is a test on one field of an event: `match` (a regular
// expression, unanchored as in Go's regexp) or `equals` (the field's text
// form equals the value's). Output routing (`when`) and the filter
// processor share it. An event without the field does not match.
//
// Negate turns the test around: the condition holds for the events that do
// not match, those without the field included. RE2 regular expressions
// have no negative lookahead, so this is how "all but debug" is written.
type Condition struct {
	Field  string `toml:"field"`
	Match  string `toml:"match"`
	Equals any    `toml:"equals"`
	Negate bool   `toml:"negate"`

	re       *regexp.Regexp
	equals   string
	compiled bool
}

// Compile validates the condition and prepares it for Matches; errors name
// the keys relative to where the condition sits.
func (c *Condition) Compile() error {
	var errs []error
	if c.Field == "" {
		errs = append(errs, config.Errorf("field", "is required: the event field to test (\"message\" is the line)"))
	}
	switch {
	case c.Match != "" && c.Equals != nil:
		errs = append(errs, config.Errorf("match", "set either match or equals, not both"))
	case c.Match != "":
		re, err := regexp.Compile(c.Match)
		if err != nil {
			errs = append(errs, config.Errorf("match", "invalid regular expression: %v", err))
		}
		c.re = re
	case c.Equals != nil:
		b, ok := AppendText(nil, c.Equals)
		if !ok {
			errs = append(errs, config.Errorf("equals", "must be a string, number or boolean"))
		}
		c.equals = string(b)
	default:
		errs = append(errs, config.Errorf("match", "one of match or equals is required"))
	}
	c.compiled = len(errs) == 0
	return errors.Join(errs...)
}

// Matches reports whether ev satisfies the condition; Compile must have
// succeeded. It allocates nothing for text fields (what parsers produce)
// and the line, one small buffer for other values.
func (c *Condition) Matches(src *Source, ev *Event) bool {
	if !c.compiled {
		// Not validated (a config built in code): never match rather
		// than match everything.
		return false
	}
	// No scratch buffer of our own: the regexp keeps its input
	// reachable, so it would escape to the heap for every event. Only
	// non-text values allocate.
	b, ok := LookupText(nil, src, ev, c.Field)
	return (ok && c.matchText(b)) != c.Negate
}

func (c *Condition) matchText(b []byte) bool {
	if c.re != nil {
		return c.re.Match(b)
	}
	return string(b) == c.equals
}

// String describes the condition for logs.
func (c *Condition) String() string {
	op := [2][2]string{{"==", "!="}, {"=~", "!~"}}
	neg := 0
	if c.Negate {
		neg = 1
	}
	if c.re != nil || c.Match != "" {
		return fmt.Sprintf("%s %s /%s/", c.Field, op[1][neg], c.Match)
	}
	return fmt.Sprintf("%s %s %q", c.Field, op[0][neg], c.equals)
}

// Grow copies fs into the arena with room for n more fields, so a
// processor can append to an event's fields without a heap allocation.
// The result is capped at len(fs)+n: appending past that reallocates
// instead of overwriting a neighbour.
func (a *Arena) Grow(fs []Field, n int) []Field {
	s := len(a.fields)
	a.fields = append(a.fields, fs...)
	for range n {
		a.fields = append(a.fields, Field{})
	}
	a.start = len(a.fields)
	return a.fields[s : s+len(fs) : s+len(fs)+n]
}
