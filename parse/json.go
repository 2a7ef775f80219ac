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
	j.arena = a
	o.Visit(j.visit)
	j.arena = nil
	return nil
}

func (j *jsonParser) field(k []byte, v *fastjson.Value) {
	a := j.arena
	key := j.keys.get(k)
	switch v.Type() {
	case fastjson.TypeString:
		// The unescaped bytes live in the fastjson parser's buffer, which
		// the next line reuses.
		a.Add(key, a.Text(a.Copy(v.GetStringBytes())))
	case fastjson.TypeTrue:
		a.Add(key, true)
	case fastjson.TypeFalse:
		a.Add(key, false)
	case fastjson.TypeNull:
		a.Add(key, nil)
	default: // number, object, array
		a.Add(key, a.RawJSON(a.Claim(v.MarshalTo(a.Tail()))))
	}
}
