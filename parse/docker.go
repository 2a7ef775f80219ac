package parse

import (
	"errors"
	"fmt"

	"github.com/valyala/fastjson"

	"github.com/tailship/tailship/pipeline"
)

// dockerParser reads Docker's json-file lines:
// {"log":"text\n","stream":"stdout","time":"2024-...Z"}. Docker splits
// lines longer than 16 KiB into pieces whose "log" lacks the trailing
// newline; such a piece gets partial = true and the joiner merges it with
// what follows. Fields: time, stream, message (log without its newline),
// and attrs (raw JSON) when present.
type dockerParser struct {
	p fastjson.Parser
}

func newDocker() *dockerParser { return &dockerParser{} }

var errDockerLog = errors.New(`docker: "log" must be a string`)

func (d *dockerParser) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	v, err := d.p.ParseBytes(ev.Raw)
	if err != nil {
		return fmt.Errorf("docker: %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return fmt.Errorf("docker: the line is a JSON %s, not an object", v.Type())
	}
	lv := v.Get("log")
	if lv == nil || lv.Type() != fastjson.TypeString {
		return errDockerLog
	}
	msg := lv.GetStringBytes()
	partial := true
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg, partial = msg[:n-1], false
	}
	if t := v.GetStringBytes("time"); t != nil {
		a.Add("time", a.Text(a.Copy(t)))
	}
	if s := v.GetStringBytes("stream"); s != nil {
		a.Add("stream", a.Text(a.Copy(s)))
	}
	a.Add("message", a.Text(a.Copy(msg)))
	if at := v.Get("attrs"); at != nil {
		raw := a.Claim(at.MarshalTo(a.Tail()))
		if err := validRaw(raw); err != nil {
			return fmt.Errorf("docker: attrs: %w", err)
		}
		a.Add("attrs", a.RawJSON(raw))
	}
	if partial {
		a.Add("partial", true)
	}
	return nil
}
