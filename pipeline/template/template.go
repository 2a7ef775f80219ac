// Package template owns the name patterns that outputs fill in per event:
// an Elasticsearch index, a Redis key, an AMQP routing key. A pattern is
// literal text with %{field} (a field of the event, else of its source),
// the UTC time tokens %Y %m %d %H, and %% for a percent sign.
//
// Patterns are parsed once, at config time, so a typo is a config error
// with its position, and expansion per event only appends bytes.
package template

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// Missing is what a field that the event and its source lack expands to:
// a visible name to look for, where an empty one could make two
// patterns collide ("logs-" for every service).
const Missing = "unknown"

// Template is a parsed pattern.
type Template []part

type part struct {
	lit   string
	field string // %{field}
	verb  byte   // 'Y', 'm', 'd', 'H' (UTC), or 0
}

// Parse parses a pattern; the error says what is wrong and where, for a
// config.Errorf on the key that holds it.
func Parse(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, errors.New("ends in a lone '%' (write %% for a percent sign)")
		}
		i++
		switch c := s[i]; c {
		case '%':
			lit.WriteByte('%')
		case 'Y', 'm', 'd', 'H':
			flush()
			t = append(t, part{verb: c})
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return nil, fmt.Errorf("%%{ at %d is not closed by }", i-1)
			}
			name := s[i+1 : i+end]
			if name == "" {
				return nil, errors.New("%{} names no field")
			}
			flush()
			t = append(t, part{field: name})
			i += end
		default:
			return nil, fmt.Errorf("unknown token %%%c (known: %%{field}, %%Y %%m %%d %%H, and %%%% for a percent sign)", c)
		}
	}
	flush()
	if len(t) == 0 {
		return nil, errors.New("is empty")
	}
	return t, nil
}

// Static reports whether the pattern names no field, so an output can
// expand it once per batch instead of once per event.
func (t Template) Static() bool {
	for _, p := range t {
		if p.field != "" {
			return false
		}
	}
	return true
}

// Shape returns the pattern's fixed text with every field and time token
// replaced by token: Shape("") is the literal text alone, for checking it
// against what a name may contain; Shape("x") shows where values go.
func (t Template) Shape(token string) string {
	var b strings.Builder
	for _, p := range t {
		if p.field != "" || p.verb != 0 {
			b.WriteString(token)
		} else {
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// String returns the pattern as it would be written.
func (t Template) String() string {
	var b strings.Builder
	for _, p := range t {
		switch {
		case p.field != "":
			b.WriteString("%{" + p.field + "}")
		case p.verb != 0:
			b.WriteByte('%')
			b.WriteByte(p.verb)
		default:
			b.WriteString(strings.ReplaceAll(p.lit, "%", "%%"))
		}
	}
	return b.String()
}

// Literal returns the pattern's text when it has neither fields nor time
// tokens (a fixed key), and false otherwise.
func (t Template) Literal() (string, bool) {
	if len(t) == 1 && t[0].field == "" && t[0].verb == 0 {
		return t[0].lit, true
	}
	return "", false
}

// Append appends the pattern expanded for one event. fold, when not nil,
// rewrites each field value into the shape the receiver accepts (an
// Elasticsearch index is lowercase); literals are left as written. A field
// that is missing or empty expands to Missing.
func (t Template) Append(dst []byte, src *pipeline.Source, ev *pipeline.Event, now time.Time, fold func(dst []byte, v string) []byte) []byte {
	now = now.UTC()
	for _, p := range t {
		switch {
		case p.field != "":
			v, ok := FieldValue(src, ev, p.field)
			if !ok || v == "" {
				v = Missing
			}
			if fold != nil {
				dst = fold(dst, v)
			} else {
				dst = append(dst, v...)
			}
		case p.verb != 0:
			n, width := 0, 2
			switch p.verb {
			case 'Y':
				n, width = now.Year(), 4
			case 'm':
				n = int(now.Month())
			case 'd':
				n = now.Day()
			case 'H':
				n = now.Hour()
			}
			s := strconv.Itoa(n)
			for range width - len(s) {
				dst = append(dst, '0')
			}
			dst = append(dst, s...)
		default:
			dst = append(dst, p.lit...)
		}
	}
	return dst
}

// FieldValue finds a field of the event, then of its source, as text. A
// dotted key (metadata.routing_key) that names no field as written reaches
// into the event's nested fields.
func FieldValue(src *pipeline.Source, ev *pipeline.Event, key string) (string, bool) {
	return fieldValue(src, ev, key)
}

func fieldValue(src *pipeline.Source, ev *pipeline.Event, key string) (string, bool) {
	if ev != nil {
		for i := range ev.Fields {
			if ev.Fields[i].Key == key {
				return valueText(ev.Fields[i].Value), true
			}
		}
	}
	if src != nil {
		for i := range src.Fields {
			if src.Fields[i].Key == key {
				return valueText(src.Fields[i].Value), true
			}
		}
	}
	// A dotted key reaches into an object field: %{metadata.topic}.
	if ev != nil && strings.IndexByte(key, '.') > 0 {
		if v, ok := pipeline.Lookup(src, ev, key); ok {
			return valueText(v), true
		}
	}
	return "", false
}

func valueText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}
