package parse

import (
	"bytes"
	"errors"

	"github.com/tailship/tailship/pipeline"
)

// syslogParser reads RFC 5424 and RFC 3164 (BSD) messages, telling them
// apart by the version digit after <PRI>. The <PRI> is optional for 3164,
// because files written by a local syslog daemon (/var/log/syslog) drop it.
// 3164 timestamps may also be RFC 3339, as rsyslog writes by default.
//
// Fields: facility and severity (from PRI), timestamp, hostname, appname,
// procid, msgid and structured_data (5424, the raw SD text), message.
// A "-" (5424's NILVALUE) makes no field.
type syslogParser struct{}

var (
	errSyslogPRI  = errors.New("syslog: bad <PRI> (1 to 3 digits, at most 191)")
	errSyslog5424 = errors.New("syslog: RFC 5424 header needs VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA")
	errSyslogSD   = errors.New("syslog: malformed structured data")
	errSyslogTime = errors.New("syslog: no RFC 3164 or RFC 3339 timestamp")
)

func (syslogParser) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	b := ev.Raw
	if len(b) > 0 && b[0] == '<' {
		end := bytes.IndexByte(b, '>')
		if end < 2 || end > 4 {
			return errSyslogPRI
		}
		pri := 0
		for _, c := range b[1:end] {
			if c < '0' || c > '9' {
				return errSyslogPRI
			}
			pri = pri*10 + int(c-'0')
		}
		if pri > 191 || (end > 2 && b[1] == '0') {
			return errSyslogPRI
		}
		a.Add("facility", int64(pri>>3))
		a.Add("severity", int64(pri&7))
		b = b[end+1:]
		if len(b) >= 2 && b[0] >= '1' && b[0] <= '9' && (b[1] == ' ' || (b[1] >= '0' && b[1] <= '9' && len(b) >= 3 && b[2] == ' ')) {
			return parse5424(b, a)
		}
	}
	return parse3164(b, a)
}

// token cuts b at the next space; ok is false when there is none.
func token(b []byte) (tok, rest []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return b, nil, false
	}
	return b[:i], b[i+1:], true
}

func addNil(a *pipeline.Arena, key string, v []byte) {
	if len(v) == 1 && v[0] == '-' {
		return
	}
	a.Add(key, a.Text(v))
}

func parse5424(b []byte, a *pipeline.Arena) error {
	_, b, _ = token(b) // version, checked by the caller
	keys := [...]string{"timestamp", "hostname", "appname", "procid", "msgid"}
	for _, k := range keys {
		tok, rest, ok := token(b)
		if !ok || len(tok) == 0 {
			return errSyslog5424
		}
		addNil(a, k, tok)
		b = rest
	}
	sd, rest, err := structuredData(b)
	if err != nil {
		return err
	}
	addNil(a, "structured_data", sd)
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return errSyslogSD
		}
		msg := bytes.TrimPrefix(rest[1:], []byte("\xef\xbb\xbf")) // RFC 5424 allows a BOM before UTF-8 text
		a.Add("message", a.Text(msg))
	}
	return nil
}

// structuredData cuts the STRUCTURED-DATA off b: "-" or one or more
// [id param="value" ...] elements, where a value may escape '"', '\' and ']'.
func structuredData(b []byte) (sd, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, errSyslog5424
	}
	if b[0] == '-' {
		return b[:1], b[1:], nil
	}
	i := 0
	for i < len(b) && b[i] == '[' {
		i++
		quoted := false
		for {
			if i >= len(b) {
				return nil, nil, errSyslogSD
			}
			c := b[i]
			i++
			if quoted {
				if c == '\\' {
					i++
				} else if c == '"' {
					quoted = false
				}
				continue
			}
			if c == '"' {
				quoted = true
			} else if c == ']' {
				break
			}
		}
	}
	if i == 0 || i > len(b) {
		return nil, nil, errSyslogSD
	}
	return b[:i], b[i:], nil
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// stamp3164 returns the length of a "Mmm dd hh:mm:ss" or RFC 3339
// timestamp at the start of b, or 0.
func stamp3164(b []byte) int {
	if len(b) >= 15 && b[0] >= 'A' && b[0] <= 'Z' {
		okMonth := false
		for _, m := range months {
			if string(b[:3]) == m {
				okMonth = true
				break
			}
		}
		if !okMonth || b[3] != ' ' || b[6] != ' ' || b[9] != ':' || b[12] != ':' ||
			(b[4] != ' ' && !digit(b[4])) || !digit(b[5]) ||
			!digit(b[7]) || !digit(b[8]) || !digit(b[10]) || !digit(b[11]) || !digit(b[13]) || !digit(b[14]) {
			return 0
		}
		return 15
	}
	if len(b) >= 19 && digit(b[0]) && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' {
		n := bytes.IndexByte(b, ' ')
		if n < 0 {
			n = len(b)
		}
		return n
	}
	return 0
}

func digit(c byte) bool { return c >= '0' && c <= '9' }

func parse3164(b []byte, a *pipeline.Arena) error {
	n := stamp3164(b)
	if n == 0 {
		return errSyslogTime
	}
	a.Add("timestamp", a.Text(b[:n]))
	b = b[n:]
	if len(b) == 0 {
		return nil
	}
	if b[0] != ' ' {
		return errSyslogTime
	}
	b = b[1:]
	// HOSTNAME, unless the next token is already the TAG (some senders
	// leave the host out).
	if tok, rest, ok := token(b); ok && !isTag(tok) {
		if len(tok) > 0 {
			a.Add("hostname", a.Text(tok))
		}
		b = rest
	}
	// TAG[PID]: MSG; a line without a tag is all message.
	i := 0
	for i < len(b) && b[i] != '[' && b[i] != ':' && b[i] != ' ' {
		i++
	}
	tag, pid, j := b[:i], []byte(nil), i
	if j < len(b) && b[j] == '[' {
		k := bytes.IndexByte(b[j:], ']')
		if k > 0 {
			pid = b[j+1 : j+k]
			j += k + 1
		}
	}
	if len(tag) > 0 && j < len(b) && b[j] == ':' {
		a.Add("appname", a.Text(tag))
		if pid != nil {
			a.Add("procid", a.Text(pid))
		}
		b = bytes.TrimPrefix(b[j+1:], []byte(" "))
	}
	a.Add("message", a.Text(b))
	return nil
}

// isTag reports whether tok looks like "tag:" or "tag[pid]:" rather than a
// host name.
func isTag(tok []byte) bool {
	return len(tok) > 0 && (tok[len(tok)-1] == ':' || bytes.IndexByte(tok, '[') >= 0)
}
