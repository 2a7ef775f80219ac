package parse

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/tailship/tailship/pipeline"
)

// logfmtParser reads key=value pairs separated by spaces. A value is bare
// (up to the next space) or double-quoted with backslash escapes; a key
// without "=" is true, as in Heroku's and kr/logfmt's reading. Values are
// strings: logfmt has no types.
type logfmtParser struct {
	keys keyCache
}

var errLogfmtEmpty = errors.New("logfmt: no key=value pairs")

func (l *logfmtParser) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	b := ev.Raw
	l.keys.nextLine()
	n := 0
	for i := 0; ; {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i == len(b) {
			break
		}
		ks := i
		for i < len(b) && b[i] > ' ' && b[i] != '=' && b[i] != '"' {
			i++
		}
		if i == ks {
			return fmt.Errorf("logfmt: expected a key at byte %d, found %q", i, b[i])
		}
		key := b[ks:i]
		n++
		if i == len(b) || b[i] != '=' {
			if i < len(b) && b[i] == '"' {
				return fmt.Errorf("logfmt: unexpected quote in key at byte %d", i)
			}
			l.keys.add(a, key, true)
			continue
		}
		i++ // '='
		if i < len(b) && b[i] == '"' {
			v, next, err := unquote(b, i, a)
			if err != nil {
				return err
			}
			l.keys.add(a, key, a.Text(v))
			i = next
			if i < len(b) && !isSpace(b[i]) {
				return fmt.Errorf("logfmt: expected a space after the quoted value of %q at byte %d", key, i)
			}
			continue
		}
		vs := i
		for i < len(b) && !isSpace(b[i]) {
			if b[i] == '"' || b[i] == '=' {
				return fmt.Errorf("logfmt: unexpected %q in the value of %q at byte %d", b[i], key, i)
			}
			i++
		}
		l.keys.add(a, key, a.Text(b[vs:i]))
	}
	if n == 0 {
		return errLogfmtEmpty
	}
	return nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// unquote reads the quoted string starting at b[i] == '"'. Without escapes
// the value is a slice of the line (no copy); with escapes it is unescaped
// into the arena.
func unquote(b []byte, i int, a *pipeline.Arena) (v []byte, next int, err error) {
	start := i + 1
	j := start
	for j < len(b) && b[j] != '"' && b[j] != '\\' {
		j++
	}
	if j == len(b) {
		return nil, 0, fmt.Errorf("logfmt: unterminated quote at byte %d", i)
	}
	if b[j] == '"' {
		return b[start:j], j + 1, nil
	}
	out := append(a.Tail(), b[start:j]...)
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			return a.Claim(out), j + 1, nil
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 == len(b) {
			break
		}
		j++
		switch e := b[j]; e {
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'r':
			out = append(out, '\r')
		case 'u':
			r, ok := hex4(b[j+1:])
			if !ok {
				a.Claim(out)
				return nil, 0, fmt.Errorf("logfmt: bad \\u escape at byte %d", j-1)
			}
			out = utf8.AppendRune(out, r)
			j += 4
		default: // \" \\ and anything else stand for themselves
			out = append(out, e)
		}
		j++
	}
	a.Claim(out)
	return nil, 0, fmt.Errorf("logfmt: unterminated quote at byte %d", i)
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
