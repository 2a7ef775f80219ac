package kafka

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// template is a name pattern filled in per event: literals, %{field} (from
// the event, then its source; "unknown" when missing) and %Y %m %d %H (UTC).
// It is the syntax of the http output's Elasticsearch index, kept in this
// package until the outputs share one implementation.
type template []tmplPart

type tmplPart struct {
	lit   string
	field string // %{field}
	verb  byte   // 'Y', 'm', 'd', 'H', or 0
}

func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t = append(t, tmplPart{lit: lit.String()})
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
			t = append(t, tmplPart{verb: c})
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
			t = append(t, tmplPart{field: name})
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

// literal returns the pattern's text when nothing in it varies per event.
func (t template) literal() (string, bool) {
	var b strings.Builder
	for _, p := range t {
		if p.field != "" || p.verb != 0 {
			return "", false
		}
		b.WriteString(p.lit)
	}
	return b.String(), true
}

// literals returns the fixed text of the pattern, for checking it against
// what a name may contain.
func (t template) literals() string {
	var b strings.Builder
	for _, p := range t {
		b.WriteString(p.lit)
	}
	return b.String()
}

// appendTo appends the pattern expanded for one event; fold rewrites a
// field value into what a name may contain (literals are checked at config
// time instead).
func (t template) appendTo(dst []byte, src *pipeline.Source, ev *pipeline.Event, now time.Time, fold func(dst []byte, v string) []byte) []byte {
	now = now.UTC()
	for _, p := range t {
		switch {
		case p.field != "":
			v, ok := fieldValue(src, ev, p.field)
			if !ok || v == "" {
				v = "unknown"
			}
			dst = fold(dst, v)
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

// fieldValue finds a field of the event, then of its source, as text.
func fieldValue(src *pipeline.Source, ev *pipeline.Event, key string) (string, bool) {
	for i := range ev.Fields {
		if ev.Fields[i].Key == key {
			return valueText(ev.Fields[i].Value), true
		}
	}
	if src != nil {
		for i := range src.Fields {
			if src.Fields[i].Key == key {
				return valueText(src.Fields[i].Value), true
			}
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
	case *pipeline.Text:
		return v.String()
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
