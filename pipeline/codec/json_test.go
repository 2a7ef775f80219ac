package codec

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tailship/tailship/pipeline"
)

func decodeObject(t *testing.T, b []byte) map[string]any {
	t.Helper()
	if !json.Valid(b) {
		t.Fatalf("invalid JSON: %q", b)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %q", err, b)
	}
	return m
}

func TestAppendJSONStrings(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"plain", "hello world", "hello world"},
		{"empty", "", ""},
		{"quotes and backslash", `say "hi" \ bye \"`, `say "hi" \ bye \"`},
		{"control chars", "a\x00b\x01c\x1fd\ne\rf\tg\x7f", "a\x00b\x01c\x1fd\ne\rf\tg\x7f"},
		{"unicode", "héllo wörld 日本語 🎉", "héllo wörld 日本語 🎉"},
		{"invalid utf8", "bad\xff\xfe byte \xc3 end", "bad\ufffd\ufffd byte \ufffd end"},
		{"truncated rune at end", "tail \xe6\x97", "tail \ufffd\ufffd"},
		{"surrogate half", "\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"line separators", "a\u2028b\u2029c", "a\u2028b\u2029c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := AppendJSON(nil, nil, &pipeline.Event{Raw: []byte(tt.raw)})
			m := decodeObject(t, out)
			if m["message"] != tt.want {
				t.Errorf("message = %q, want %q (json %s)", m["message"], tt.want, out)
			}
			// Our output for valid UTF-8 matches encoding/json's escaping of
			// the control characters it writes as \u00XX.
			if strings.Contains(string(out), "\x00") || strings.Contains(string(out), "\n") {
				t.Errorf("raw control character in %q", out)
			}
		})
	}
}

func TestAppendJSONControlEscapes(t *testing.T) {
	out := string(AppendJSON(nil, nil, &pipeline.Event{Raw: []byte("\x00\x1f\"\\\n\t\r")}))
	want := `{"message":"\u0000\u001f\"\\\n\t\r"}`
	if out != want {
		t.Errorf("got %s, want %s", out, want)
	}
}

func TestAppendJSONFields(t *testing.T) {
	src := &pipeline.Source{Name: "x", Fields: []pipeline.Field{
		{Key: "service", Value: "app"},
		{Key: "env", Value: "prod"},
		{Key: "message", Value: "a static message must not hide the line"},
	}}
	ev := &pipeline.Event{Raw: []byte(`{"level":"warn"}`), Fields: []pipeline.Field{
		{Key: "level", Value: "warn"},
		{Key: "env", Value: "staging"}, // overrides the source's
		{Key: "bytes", Value: []byte("b\"y\xfft")},
		{Key: "ok", Value: true},
		{Key: "n", Value: 42},
		{Key: "n64", Value: int64(-1 << 62)},
		{Key: "u", Value: uint64(math.MaxUint64)},
		{Key: "f", Value: 1.5},
		{Key: "tiny", Value: 1e-7},
		{Key: "huge", Value: 1e300},
		{Key: "nan", Value: math.NaN()},
		{Key: "inf", Value: math.Inf(-1)},
		{Key: "nil", Value: nil},
		{Key: "nested", Value: []pipeline.Field{
			{Key: "a", Value: "x"},
			{Key: "deeper", Value: []pipeline.Field{{Key: "b", Value: int64(2)}}},
		}},
		{Key: "map", Value: map[string]any{"z": 1, "a": "q\"", "m": map[string]any{"k": nil}}},
		{Key: "list", Value: []any{"s", int64(1), false, nil}},
		{Key: "strs", Value: []string{"a", "b\n"}},
		{Key: "time", Value: time.Date(2024, 5, 1, 12, 0, 0, 5, time.UTC)},
		{Key: "dur", Value: 1500 * time.Millisecond}, // fmt.Sprint fallback
		{Key: "quo\"te", Value: "key needs escaping"},
	}}
	out := AppendJSON(nil, src, ev)
	if !strings.HasPrefix(string(out), `{"message":`) {
		t.Errorf("message is not first: %s", out)
	}
	if n := strings.Count(string(out), `"env":`); n != 1 {
		t.Errorf("env appears %d times: %s", n, out)
	}
	m := decodeObject(t, out)
	want := map[string]any{
		"message": `{"level":"warn"}`,
		"service": "app",
		"env":     "staging",
		"level":   "warn",
		"bytes":   "b\"y\ufffdt",
		"ok":      true,
		"n":       42.0,
		"n64":     float64(-1 << 62),
		"u":       float64(math.MaxUint64),
		"f":       1.5,
		"tiny":    1e-7,
		"huge":    1e300,
		"nan":     nil,
		"inf":     nil,
		"nil":     nil,
		"nested":  map[string]any{"a": "x", "deeper": map[string]any{"b": 2.0}},
		"map":     map[string]any{"a": "q\"", "m": map[string]any{"k": nil}, "z": 1.0},
		"list":    []any{"s", 1.0, false, nil},
		"strs":    []any{"a", "b\n"},
		"time":    "2024-05-01T12:00:00.000000005Z",
		"dur":     "1.5s",
		"quo\"te": "key needs escaping",
	}
	for k, w := range want {
		if got, ok := m[k]; !ok || !jsonEqual(got, w) {
			t.Errorf("%s = %#v, want %#v", k, got, w)
		}
	}
	if len(m) != len(want) {
		t.Errorf("got %d keys, want %d: %s", len(m), len(want), out)
	}
	if !strings.Contains(string(out), `"map":{"a":"q\"","m":{"k":null},"z":1}`) {
		t.Errorf("map keys not sorted: %s", out)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// A parser that extracted "message" replaces the raw line, in its own place.
func TestAppendJSONEventMessage(t *testing.T) {
	src := &pipeline.Source{Fields: []pipeline.Field{{Key: "service", Value: "app"}, {Key: "message", Value: "static"}}}
	ev := &pipeline.Event{Raw: []byte(`{"message":"hi","x":1}`), Fields: []pipeline.Field{
		{Key: "message", Value: "hi"}, {Key: "x", Value: int64(1)},
	}}
	got := string(AppendJSON(nil, src, ev))
	want := `{"service":"app","message":"hi","x":1}`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// A parsed event is its fields: the line is not repeated as "message".
// One that failed to parse (Parsed false) keeps the line.
func TestAppendJSONParsedEvent(t *testing.T) {
	src := &pipeline.Source{Fields: []pipeline.Field{{Key: "service", Value: "app"}}}
	fields := []pipeline.Field{{Key: "level", Value: "info"}, {Key: "x", Value: int64(1)}}
	ev := &pipeline.Event{Raw: []byte(`{"level":"info","x":1}`), Fields: fields, Parsed: true}
	if got, want := string(AppendJSON(nil, src, ev)), `{"service":"app","level":"info","x":1}`; got != want {
		t.Errorf("parsed: got %s, want %s", got, want)
	}
	ev.Parsed = false
	if got, want := string(AppendJSON(nil, src, ev)), `{"message":"{\"level\":\"info\",\"x\":1}","service":"app","level":"info","x":1}`; got != want {
		t.Errorf("keep_raw: got %s, want %s", got, want)
	}
}

func TestAppendJSONAppends(t *testing.T) {
	dst := []byte("prefix ")
	out := AppendJSON(dst, nil, &pipeline.Event{Raw: []byte("x")})
	if string(out) != `prefix {"message":"x"}` {
		t.Errorf("got %q", out)
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	src := testSource()
	ev := &pipeline.Event{Raw: []byte("héllo \xff wörld \"quoted\" \t tab"), Fields: []pipeline.Field{
		{Key: "level", Value: "info"}, {Key: "n", Value: int64(3)}, {Key: "f", Value: 2.5}, {Key: "b", Value: []byte("bytes")},
	}}
	buf := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], src, ev) })
	if n != 0 {
		t.Errorf("AppendJSON allocates %v times per event", n)
	}
}

func FuzzAppendJSON(f *testing.F) {
	f.Add([]byte("plain line"), "key", "value", int64(1), 1.5)
	f.Add([]byte("bad \xff\xfe utf8 \xc3"), "k\x00ey", "v\"a\\l\n", int64(-1), math.Inf(1))
	f.Add([]byte("\x00\x01\x1f\x7f\u2028"), "message", "\xed\xa0\x80", int64(math.MinInt64), math.NaN())
	f.Add([]byte{}, "", "", int64(0), 0.0)
	f.Fuzz(func(t *testing.T, raw []byte, key, val string, i int64, fl float64) {
		src := &pipeline.Source{Fields: []pipeline.Field{{Key: key, Value: val}, {Key: "message", Value: raw}}}
		ev := &pipeline.Event{Raw: raw, Fields: []pipeline.Field{
			{Key: key, Value: []byte(val)},
			{Key: val, Value: i},
			{Key: "f", Value: fl},
			{Key: "nested", Value: []pipeline.Field{{Key: key, Value: string(raw)}}},
			{Key: "map", Value: map[string]any{key: val, val: []any{key, fl}}},
		}}
		out := AppendJSON(nil, src, ev)
		if !json.Valid(out) {
			t.Fatalf("invalid JSON for raw=%q key=%q val=%q: %q", raw, key, val, out)
		}
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8: %q", out)
		}
		var m map[string]any
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatal(err)
		}
		// A valid UTF-8 line round-trips exactly when it is the message.
		if key != "message" && val != "message" && utf8.Valid(raw) && m["message"] != string(raw) {
			t.Fatalf("message %q, want %q", m["message"], raw)
		}
	})
}
