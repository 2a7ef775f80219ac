package agent

import (
	"bytes"
	"fmt"
	"strings"
)

// interpolate replaces ${VAR} and ${VAR:-default} with environment values,
// and $$ with $. Comment lines are left alone so documentation can show the
// syntax. Lines are kept intact, so positions after interpolation still
// point at the user's file. An unset variable without a default is a
// problem named by line and key.
func interpolate(data []byte, lookup func(string) (string, bool)) ([]byte, []Problem) {
	if !bytes.Contains(data, []byte("$")) {
		return data, nil
	}
	var out bytes.Buffer
	var problems []Problem
	lines := bytes.SplitAfter(data, []byte("\n"))
	for n, line := range lines {
		if t := bytes.TrimLeft(line, " \t"); len(t) > 0 && t[0] == '#' || !bytes.Contains(line, []byte("$")) {
			out.Write(line)
			continue
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c != '$' || i+1 >= len(line) {
				out.WriteByte(c)
				continue
			}
			switch line[i+1] {
			case '$':
				out.WriteByte('$')
				i++
				continue
			case '{':
			default:
				out.WriteByte(c)
				continue
			}
			end := bytes.IndexByte(line[i:], '}')
			if end < 0 {
				problems = append(problems, Problem{Line: n + 1, Key: lineKey(line), Msg: "unterminated ${ in value"})
				out.Write(line[i:])
				break
			}
			expr := string(line[i+2 : i+end])
			name, def, hasDef := strings.Cut(expr, ":-")
			if !validVarName(name) {
				problems = append(problems, Problem{Line: n + 1, Key: lineKey(line), Msg: fmt.Sprintf("invalid variable name %q", name)})
			} else if v, ok := lookup(name); ok && (v != "" || !hasDef) {
				out.WriteString(v)
			} else if hasDef {
				out.WriteString(def)
			} else {
				problems = append(problems, Problem{Line: n + 1, Key: lineKey(line), Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} for a fallback)", name, name)})
			}
			i += end
		}
	}
	return out.Bytes(), problems
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// lineKey returns the key written on a line, for messages.
func lineKey(line []byte) string {
	k, _, ok := bytes.Cut(line, []byte("="))
	if !ok {
		return ""
	}
	return strings.TrimSpace(string(k))
}
