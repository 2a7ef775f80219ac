package codec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/tailship/tailship/pipeline"
)

// AppendJSON appends ev as one JSON object, without a trailing newline:
// "message" (the raw line, left out when ev.Parsed says the fields stand
// for it), then the static fields of src (which may be nil), then the
// event's own fields.
//
// Every key appears once, so that receivers which keep the first or the
// last duplicate agree: an event field wins over "message" and over a
// source field of the same name, and "message" wins over a source field.
// That lets a parser that extracted a cleaner "message" replace the raw
// line, and keeps a static field from hiding what the line said.
//
// The output is always valid JSON: invalid UTF-8 becomes U+FFFD, and values
// of types JSON cannot express are written as their fmt.Sprint text.
func AppendJSON(dst []byte, src *pipeline.Source, ev *pipeline.Event) []byte {
	dst = append(dst, '{')
	first := true
	raw := !ev.Parsed && !hasKey(ev.Fields, "message")
	if raw {
		dst = append(dst, `"message":`...)
		dst = appendString(dst, ev.Raw)
		first = false
	}
	if src != nil {
		for i := range src.Fields {
			f := &src.Fields[i]
			if (raw && f.Key == "message") || hasKey(ev.Fields, f.Key) {
				continue
			}
			dst = appendField(dst, f, first)
			first = false
		}
	}
	for i := range ev.Fields {
		dst = appendField(dst, &ev.Fields[i], first)
		first = false
	}
	return append(dst, '}')
}

func hasKey(fs []pipeline.Field, key string) bool {
	for i := range fs {
		if fs[i].Key == key {
			return true
		}
	}
	return false
}

func appendField(dst []byte, f *pipeline.Field, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = appendString(dst, f.Key)
	dst = append(dst, ':')
	return appendValue(dst, f.Value)
}

func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return appendString(dst, v)
	case []byte:
		return appendString(dst, v)
	case *pipeline.Text:
		return appendString(dst, []byte(*v))
	case pipeline.Text:
		return appendString(dst, []byte(v))
	case *pipeline.RawJSON:
		// Parsers hand over JSON they validated; an empty one would make
		// the object invalid.
		if len(*v) == 0 {
			return append(dst, "null"...)
		}
		return append(dst, *v...)
	case bool:
		return strconv.AppendBool(dst, v)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10)
	case float64:
		return appendFloat(dst, v, 64)
	case float32:
		return appendFloat(dst, float64(v), 32)
	case time.Time:
		dst = append(dst, '"')
		dst = v.AppendFormat(dst, time.RFC3339Nano)
		return append(dst, '"')
	case []pipeline.Field:
		dst = append(dst, '{')
		for i := range v {
			dst = appendField(dst, &v[i], i == 0)
		}
		return append(dst, '}')
	case map[string]any:
		// Sorted so equal events encode to equal bytes (dedup, tests).
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendValue(dst, v[k])
		}
		return append(dst, '}')
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case []string:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, e)
		}
		return append(dst, ']')
	default:
		return appendString(dst, fmt.Sprint(v))
	}
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...) // JSON has no NaN or infinity
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// AppendString appends s as a quoted JSON string, the way AppendJSON writes
// strings: invalid UTF-8 becomes U+FFFD. Outputs that build their own JSON
// bodies (Elasticsearch actions, Loki streams) use it.
func AppendString[S string | []byte](dst []byte, s S) []byte { return appendString(dst, s) }

// safe marks the bytes that go into a JSON string as they are.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// load8 reads s[i:i+8] as a little-endian word.
func load8[S string | []byte](s S, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// plain8 reports whether none of the eight bytes of w is a control byte,
// '"', '\\' or non-ASCII (the bytes the safe table does not pass).
func plain8(w uint64) bool {
	hasZero := func(v uint64) uint64 { return (v - lsb) & ^v & msb }
	bad := w & msb                   // non-ASCII
	bad |= (w - 0x20*lsb) & ^w & msb // below 0x20
	bad |= hasZero(w ^ ('"' * lsb))  // '"'
	bad |= hasZero(w ^ ('\\' * lsb)) // '\\'
	return bad == 0
}

// appendString appends s as a quoted JSON string (RFC 8259). Runs of bytes
// that need no escaping are copied at once, which is the common case for
// log lines.
func appendString[S string | []byte](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none of them needs attention: log
		// lines are mostly plain ASCII, and this is the encoder's hot loop.
		for i+8 <= len(s) && plain8(load8(s, i)) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		// At most UTFMax bytes: for []byte the conversion then uses a
		// stack buffer instead of allocating.
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
