package parse

import (
	"fmt"

	"github.com/valyala/fastjson"

	"github.com/tailship/tailship/pipeline"
)

// jsonParser reads one JSON object per line. Top-level members become
// fields: strings as *Text, numbers, objects and arrays as *RawJSON (their
// JSON text, so numbers keep their digits and nested values their shape),
// true and false as bool, null as nil.
type jsonParser struct {
	p     fastjson.Parser
	keys  keyCache
	arena *pipeline.Arena // the chunk's, during Parse
	err   error           // the first invalid value Visit met
	visit func(k []byte, v *fastjson.Value)
}

func newJSON() *jsonParser {
	j := &jsonParser{}
	// Bound once: a closure made per Parse would escape and allocate.
	j.visit = j.field
	return j
}

func (j *jsonParser) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	v, err := j.p.ParseBytes(ev.Raw)
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return fmt.Errorf("json: the line is a JSON %s, not an object", v.Type())
	}
	j.arena, j.err = a, nil
	j.keys.nextLine()
	o.Visit(j.visit)
	j.arena = nil
	return j.err
}

func (j *jsonParser) field(k []byte, v *fastjson.Value) {
	a := j.arena
	switch v.Type() {
	case fastjson.TypeString:
		// The unescaped bytes live in the fastjson parser's buffer, which
		// the next line reuses.
		j.keys.add(a, k, a.Text(a.Copy(v.GetStringBytes())))
	case fastjson.TypeTrue:
		j.keys.add(a, k, true)
	case fastjson.TypeFalse:
		j.keys.add(a, k, false)
	case fastjson.TypeNull:
		j.keys.add(a, k, nil)
	default: // number, object, array
		raw := a.Claim(v.MarshalTo(a.Tail()))
		if err := validRaw(raw); err != nil {
			if j.err == nil {
				j.err = fmt.Errorf("json: member %q: %w", k, err)
			}
			return
		}
		j.keys.add(a, k, a.RawJSON(raw))
	}
}

// validRaw checks a value before it is copied into outputs as JSON:
// fastjson's parser takes any run of digits, dots, signs and exponents,
// and NaN or Inf, as a number ("1.2.3", "."), which would make the
// encoded event invalid. Its validator is strict, and allocates nothing
// for valid input.
func validRaw(raw []byte) error {
	if err := fastjson.ValidateBytes(raw); err != nil {
		return fmt.Errorf("invalid JSON value %q", raw)
	}
	return nil
}
