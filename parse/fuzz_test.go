package parse_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// fuzzParser checks what must hold for any input: Parse does not panic,
// an error says something, and a parsed event has non-empty keys (except
// from json, where "" is a valid member name kept as written) and encodes
// to valid JSON (so *RawJSON values are valid JSON and *Text values are
// whole). check adds the parser's own properties.
func fuzzParser(f *testing.F, name string, mod func(s *pipeline.InputSettings), seeds []string,
	check func(t *testing.T, line []byte, fs []pipeline.Field)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p := spec(f, name, mod).New()
	a := new(pipeline.Arena)
	f.Fuzz(func(t *testing.T, line []byte) {
		a.Reset()
		ev := pipeline.Event{Raw: line}
		a.Begin()
		err := p.Parse(&ev, a)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		ev.Fields = a.Fields()
		for _, fl := range ev.Fields {
			if fl.Key == "" && name != "json" {
				t.Fatalf("empty key in %q", line)
			}
		}
		if out := codec.AppendJSON(nil, nil, &ev); !json.Valid(out) {
			t.Fatalf("%q encodes to invalid JSON %s", line, out)
		}
		if check != nil {
			check(t, line, ev.Fields)
		}
	})
}

func field(fs []pipeline.Field, key string) (any, bool) {
	for _, f := range fs {
		if f.Key == key {
			return f.Value, true
		}
	}
	return nil, false
}

func FuzzJSON(f *testing.F) {
	fuzzParser(f, "json", nil, benchLines["json"], func(t *testing.T, line []byte, fs []pipeline.Field) {
		if !json.Valid(line) {
			// fastjson is more lenient than encoding/json only in
			// strings: unknown escapes and raw control characters are
			// kept as written. Anything else must be JSON.
			if !bytes.Contains(line, []byte(`\`)) && bytes.IndexFunc(line, func(r rune) bool { return r < 0x20 }) < 0 {
				t.Fatalf("accepted invalid JSON %q", line)
			}
		}
	})
}

func FuzzLogfmt(f *testing.F) {
	fuzzParser(f, "logfmt", nil, append(benchLines["logfmt"], `a="x\"y" b c=`, `k="\u00e9"`), func(t *testing.T, line []byte, fs []pipeline.Field) {
		if len(fs) == 0 {
			t.Fatalf("%q parsed to no fields", line)
		}
		for _, fl := range fs {
			if !bytes.Contains(line, []byte(fl.Key)) {
				t.Fatalf("key %q is not in the line %q", fl.Key, line)
			}
		}
	})
}

func FuzzRegex(f *testing.F) {
	fuzzParser(f, "regex", func(s *pipeline.InputSettings) { s.Parse.Pattern = benchPattern }, benchLines["regex"],
		func(t *testing.T, line []byte, fs []pipeline.Field) {
			for _, fl := range fs {
				v, _ := pipeline.Bytes(fl.Value)
				if !bytes.Contains(line, v) {
					t.Fatalf("%s=%q is not in the line %q", fl.Key, v, line)
				}
			}
		})
}

func FuzzCRI(f *testing.F) {
	fuzzParser(f, "cri", nil, append(benchLines["cri"], cri("stdout", "P", "x"), ts+" stderr F"), func(t *testing.T, line []byte, fs []pipeline.Field) {
		m, _ := field(fs, "message")
		msg, _ := pipeline.Bytes(m)
		if !bytes.HasSuffix(line, msg) {
			t.Fatalf("message %q is not the end of %q", msg, line)
		}
	})
}

func FuzzDocker(f *testing.F) {
	fuzzParser(f, "docker", nil, append(benchLines["docker"], `{"log":"part","stream":"stdout","time":"`+ts+`"}`),
		func(t *testing.T, line []byte, fs []pipeline.Field) {
			if _, ok := field(fs, "message"); !ok {
				t.Fatalf("%q parsed without a message", line)
			}
		})
}

func FuzzSyslog(f *testing.F) {
	fuzzParser(f, "syslog", nil, append(benchLines["syslog"], `<13>1 - h a - - [a b="\]"] m`, `Nov  2 10:00:00 h t: m`),
		func(t *testing.T, line []byte, fs []pipeline.Field) {
			if v, ok := field(fs, "severity"); ok && (v.(int64) < 0 || v.(int64) > 7) {
				t.Fatalf("severity %v from %q", v, line)
			}
			if v, ok := field(fs, "facility"); ok && (v.(int64) < 0 || v.(int64) > 23) {
				t.Fatalf("facility %v from %q", v, line)
			}
		})
}
