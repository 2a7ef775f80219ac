package parse_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
)

// spec builds the parser name with mod applied to default input settings,
// failing the test when the settings do not validate.
func spec(t testing.TB, name string, mod func(s *pipeline.InputSettings)) pipeline.ParserSpec {
	t.Helper()
	s := pipeline.DefaultInputSettings()
	s.Parser = name
	if mod != nil {
		mod(&s)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("settings do not validate: %v", err)
	}
	ps, err := pipeline.BuildParser(&s)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// parseLine runs p on line the way the pool does, and renders the fields
// as key=value strings in order: strings quoted, raw JSON as is.
func parseLine(p pipeline.Parser, line string) (fields []string, ev pipeline.Event, err error) {
	a := new(pipeline.Arena)
	ev = pipeline.Event{Raw: []byte(line)}
	a.Begin()
	err = p.Parse(&ev, a)
	for _, f := range a.Fields() {
		fields = append(fields, f.Key+"="+render(f.Value))
	}
	return fields, ev, err
}

func render(v any) string {
	switch v := v.(type) {
	case *pipeline.Text:
		return fmt.Sprintf("%q", string(*v))
	case *pipeline.RawJSON:
		return string(*v)
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%v(%T)", v, v)
	}
}

type parseCase struct {
	name   string
	line   string
	want   []string // fields in order; nil with wantErr
	errHas string   // non-empty: Parse must fail with this in the message
}

func runCases(t *testing.T, p pipeline.Parser, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := parseLine(p, tc.line)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("Parse(%q) error = %v, want one containing %q (fields %v)", tc.line, err, tc.errHas, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.line, err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Parse(%q)\n got %v\nwant %v", tc.line, got, tc.want)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	p := spec(t, "json", nil).New()
	runCases(t, p, []parseCase{
		{"types", `{"s":"a","i":42,"f":-1.5e3,"t":true,"F":false,"n":null}`,
			[]string{`s="a"`, `i=42`, `f=-1.5e3`, `t=true(bool)`, `F=false(bool)`, `n=null`}, ""},
		{"nested kept as raw JSON", `{"o":{"a":[1, 2 ,{"b":"c"}]},"arr":[]}`,
			[]string{`o={"a":[1,2,{"b":"c"}]}`, `arr=[]`}, ""},
		{"escapes unescaped", `{"m":"a\"b\\c\n\u00e9\ud83d\ude00","k\u00e9y":"v"}`,
			[]string{`m="a\"b\\c\né😀"`, `kéy="v"`}, ""},
		{"big integer keeps digits", `{"id":123456789012345678901234567890}`,
			[]string{`id=123456789012345678901234567890`}, ""},
		{"whitespace", " \t{ \"a\" : 1 } ", []string{`a=1`}, ""},
		{"empty object", `{}`, nil, ""},
		{"repeated key keeps the last value in the first place", `{"a":1,"b":2,"a":"x"}`, []string{`a="x"`, `b=2`}, ""},
		{"empty line", ``, nil, "json:"},
		{"not an object", `[1,2]`, nil, "not an object"},
		{"string top level", `"x"`, nil, "not an object"},
		{"truncated", `{"a":1`, nil, "json:"},
		{"trailing garbage", `{"a":1} x`, nil, "json:"},
		{"plain text", `hello world`, nil, "json:"},
		{"lenient number", `{"a":1.2.3}`, nil, "invalid JSON value"},
		{"NaN", `{"a":NaN}`, nil, "invalid JSON value"},
		{"bad number nested", `{"a":[.]}`, nil, "invalid JSON value"},
		// fastjson keeps an unknown escape as written rather than failing
		// the line; the value is still valid text.
		{"unknown escape kept", `{"a":"\x"}`, []string{`a="\\x"`}, ""},
	})
}

// TestKeysInChangingOrder: the key cache predicts each line's keys from the
// previous line's order; lines that repeat, reorder, drop or repeat keys
// within a line must still come out right, one after the other.
func TestKeysInChangingOrder(t *testing.T) {
	for _, name := range []string{"json", "logfmt"} {
		t.Run(name, func(t *testing.T) {
			line := func(kv ...string) string {
				var b strings.Builder
				for i := 0; i < len(kv); i += 2 {
					if name == "json" {
						if b.Len() > 0 {
							b.WriteString(",")
						}
						fmt.Fprintf(&b, "%q:%q", kv[i], kv[i+1])
					} else {
						fmt.Fprintf(&b, "%s=%s ", kv[i], kv[i+1])
					}
				}
				if name == "json" {
					return "{" + b.String() + "}"
				}
				return b.String()
			}
			p := spec(t, name, nil).New()
			runCases(t, p, []parseCase{
				{"first", line("a", "1", "b", "2", "c", "3"), []string{`a="1"`, `b="2"`, `c="3"`}, ""},
				{"same order", line("a", "4", "b", "5", "c", "6"), []string{`a="4"`, `b="5"`, `c="6"`}, ""},
				{"reordered", line("c", "1", "a", "2"), []string{`c="1"`, `a="2"`}, ""},
				{"repeat in line", line("a", "1", "a", "2", "b", "3"), []string{`a="2"`, `b="3"`}, ""},
				{"repeat after prediction", line("a", "1", "b", "2", "b", "3", "a", "4"), []string{`a="4"`, `b="3"`}, ""},
				{"new key", line("a", "1", "d", "2"), []string{`a="1"`, `d="2"`}, ""},
				{"longer again", line("a", "1", "d", "2", "c", "3", "b", "4"), []string{`a="1"`, `d="2"`, `c="3"`, `b="4"`}, ""},
			})
		})
	}
}

func TestJSONReusesParserSafely(t *testing.T) {
	// Values must survive the next line: fastjson reuses its buffer.
	p := spec(t, "json", nil).New()
	a := new(pipeline.Arena)
	ev1 := pipeline.Event{Raw: []byte(`{"m":"first\tline"}`)}
	a.Begin()
	if err := p.Parse(&ev1, a); err != nil {
		t.Fatal(err)
	}
	f1 := a.Fields()
	ev2 := pipeline.Event{Raw: []byte(`{"m":"SECOND\tLINE, longer than the first"}`)}
	a.Begin()
	if err := p.Parse(&ev2, a); err != nil {
		t.Fatal(err)
	}
	if got := render(f1[0].Value); got != `"first\tline"` {
		t.Errorf("first line's value became %s after parsing the second", got)
	}
}

func TestLogfmt(t *testing.T) {
	p := spec(t, "logfmt", nil).New()
	runCases(t, p, []parseCase{
		{"pairs", `level=info msg=hello n=3`, []string{`level="info"`, `msg="hello"`, `n="3"`}, ""},
		{"quoted", `msg="hello world" at=x`, []string{`msg="hello world"`, `at="x"`}, ""},
		{"escapes", `msg="say \"hi\"\n\\ \u00e9" x=1`, []string{`msg="say \"hi\"\n\\ é"`, `x="1"`}, ""},
		{"bare key is true", `debug level=warn`, []string{`debug=true(bool)`, `level="warn"`}, ""},
		{"empty values", `a= b="" c=d`, []string{`a=""`, `b=""`, `c="d"`}, ""},
		{"extra spaces and tabs", "  a=1 \t b=2  ", []string{`a="1"`, `b="2"`}, ""},
		{"utf8 key", `clé=v`, []string{`clé="v"`}, ""},
		{"repeated key", `a=1 b=2 a=3`, []string{`a="3"`, `b="2"`}, ""},
		{"empty line", ``, nil, "no key=value"},
		{"only spaces", `   `, nil, "no key=value"},
		{"missing key", `=v`, nil, "expected a key"},
		{"unterminated", `msg="oops`, nil, "unterminated"},
		{"unterminated after escape", `msg="oops\`, nil, "unterminated"},
		{"quote in bare value", `a=b"c`, nil, "unexpected"},
		{"junk after quote", `a="b"c`, nil, "expected a space"},
		{"bad unicode escape", `a="\u12"`, nil, "bad \\u"},
	})
}

func TestRegex(t *testing.T) {
	p := spec(t, "regex", func(s *pipeline.InputSettings) {
		s.Parse.Pattern = `^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+)[^"]*" (?P<status>\d+)(?: (?P<bytes>\d+))?`
	}).New()
	runCases(t, p, []parseCase{
		{"access log", `10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /api HTTP/1.1" 200 3334 "-"`,
			[]string{`ip="10.0.0.1"`, `time="22/Nov/2026:10:00:00 +0000"`, `method="GET"`, `path="/api"`, `status="200"`, `bytes="3334"`}, ""},
		{"optional group absent", `10.0.0.1 - - [t] "GET / HTTP/1.1" 304`,
			[]string{`ip="10.0.0.1"`, `time="t"`, `method="GET"`, `path="/"`, `status="304"`}, ""},
		{"no match", `garbage`, nil, "does not match"},
		{"empty", ``, nil, "does not match"},
	})
	// Go allows a name on several groups; the one that matched wins.
	alt := spec(t, "regex", func(s *pipeline.InputSettings) { s.Parse.Pattern = `^(?:(?P<v>\d+)|x(?P<v>\w+))$` }).New()
	runCases(t, alt, []parseCase{
		{"first alternative", `42`, []string{`v="42"`}, ""},
		{"second alternative", `xab`, []string{`v="ab"`}, ""},
		{"empty", ``, nil, "does not match"},
	})
}

func TestCRI(t *testing.T) {
	p := spec(t, "cri", nil).New()
	runCases(t, p, []parseCase{
		{"full", `2024-01-02T03:04:05.123456789Z stdout F hello world`,
			[]string{`time="2024-01-02T03:04:05.123456789Z"`, `stream="stdout"`, `message="hello world"`}, ""},
		{"partial", `2024-01-02T03:04:05Z stderr P first half`,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stderr"`, `message="first half"`, `partial=true(bool)`}, ""},
		{"extra tags", `2024-01-02T03:04:05Z stdout F:x msg`,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stdout"`, `message="msg"`}, ""},
		{"empty message", `2024-01-02T03:04:05Z stdout F`,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stdout"`, `message=""`}, ""},
		{"message keeps spaces", `2024-01-02T03:04:05Z stdout F  two  spaces `,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stdout"`, `message=" two  spaces "`}, ""},
		{"bad stream", `2024-01-02T03:04:05Z stdin F x`, nil, "stream"},
		{"bad tag", `2024-01-02T03:04:05Z stdout X x`, nil, "tag"},
		{"too short", `2024-01-02T03:04:05Z`, nil, "expected"},
		{"empty", ``, nil, "expected"},
		{"bad time", `yesterday stdout F x`, nil, "timestamp"},
	})
}

func TestDocker(t *testing.T) {
	p := spec(t, "docker", nil).New()
	runCases(t, p, []parseCase{
		{"full", `{"log":"hello\n","stream":"stdout","time":"2024-01-02T03:04:05.5Z"}`,
			[]string{`time="2024-01-02T03:04:05.5Z"`, `stream="stdout"`, `message="hello"`}, ""},
		{"partial", `{"log":"part","stream":"stderr","time":"2024-01-02T03:04:05Z"}`,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stderr"`, `message="part"`, `partial=true(bool)`}, ""},
		{"attrs", `{"log":"x\n","stream":"stdout","attrs":{"tag":"a"},"time":"2024-01-02T03:04:05Z"}`,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stdout"`, `message="x"`, `attrs={"tag":"a"}`}, ""},
		{"escaped log", `{"log":"\"q\"\t\u00e9\n","stream":"stdout","time":"2024-01-02T03:04:05Z"}`,
			[]string{`time="2024-01-02T03:04:05Z"`, `stream="stdout"`, `message="\"q\"\té"`}, ""},
		{"no log", `{"stream":"stdout","time":"2024-01-02T03:04:05Z"}`, nil, `"log"`},
		{"log not a string", `{"log":1,"time":"2024-01-02T03:04:05Z"}`, nil, `"log"`},
		{"not json", `hello`, nil, "docker:"},
		{"array", `[]`, nil, "not an object"},
		{"no time", `{"log":"x\n"}`, nil, "timestamp"},
	})
}

func TestSyslog(t *testing.T) {
	p := spec(t, "syslog", nil).New()
	runCases(t, p, []parseCase{
		{"5424 full", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event`,
			[]string{`facility=20(int64)`, `severity=5(int64)`, `timestamp="2003-10-11T22:14:15.003Z"`, `hostname="mymachine.example.com"`, `appname="evntslog"`, `procid="1234"`, `msgid="ID47"`,
				`structured_data="[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"]"`, `message="An application event"`}, ""},
		{"5424 nil values, no msg", `<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 -`,
			[]string{`facility=4(int64)`, `severity=2(int64)`, `timestamp="2003-10-11T22:14:15.003Z"`, `hostname="mymachine.example.com"`, `appname="su"`, `msgid="ID47"`}, ""},
		{"5424 BOM and SD escapes", "<13>1 - host app - - [a x=\"q\\]\\\"\"][b] \xef\xbb\xbfhello",
			[]string{`facility=1(int64)`, `severity=5(int64)`, `hostname="host"`, `appname="app"`, `structured_data="[a x=\"q\\]\\\"\"][b]"`, `message="hello"`}, ""},
		{"3164", `<34>Oct 11 22:14:15 mymachine su[42]: 'su root' failed`,
			[]string{`facility=4(int64)`, `severity=2(int64)`, `timestamp="Oct 11 22:14:15"`, `hostname="mymachine"`, `appname="su"`, `procid="42"`, `message="'su root' failed"`}, ""},
		{"3164 no PRI, day padded", `Nov  2 10:00:00 web sshd: accepted`,
			[]string{`timestamp="Nov  2 10:00:00"`, `hostname="web"`, `appname="sshd"`, `message="accepted"`}, ""},
		{"3164 no host", `<13>Nov 22 10:00:00 cron[7]: job`,
			[]string{`facility=1(int64)`, `severity=5(int64)`, `timestamp="Nov 22 10:00:00"`, `appname="cron"`, `procid="7"`, `message="job"`}, ""},
		{"3164 no tag", `<13>Nov 22 10:00:00 host just text`,
			[]string{`facility=1(int64)`, `severity=5(int64)`, `timestamp="Nov 22 10:00:00"`, `hostname="host"`, `message="just text"`}, ""},
		{"rsyslog RFC 3339", `2026-11-22T10:00:00.123+01:00 host app[1]: m`,
			[]string{`timestamp="2026-11-22T10:00:00.123+01:00"`, `hostname="host"`, `appname="app"`, `procid="1"`, `message="m"`}, ""},
		{"PRI too big", `<192>1 - - - - - -`, nil, "PRI"},
		{"PRI leading zero", `<013>1 - - - - - -`, nil, "PRI"},
		{"PRI not closed", `<13 x`, nil, "PRI"},
		{"PRI letters", `<ab>x`, nil, "PRI"},
		{"5424 short header", `<13>1 2003-10-11T22:14:15Z host`, nil, "5424"},
		{"5424 bad SD", `<13>1 - h a p m [x y="z`, nil, "structured"},
		{"5424 junk after SD", `<13>1 - h a p m [x]junk`, nil, "structured"},
		{"no timestamp", `hello world`, nil, "timestamp"},
		{"bad month", `Foo 11 22:14:15 host x: y`, nil, "timestamp"},
		{"empty", ``, nil, "timestamp"},
	})
}

func TestTimestamp(t *testing.T) {
	layouts := []struct {
		name, line, layout string
		want               time.Time
		errHas             string
	}{
		{"rfc3339", `{"time":"2026-11-22T10:00:01Z"}`, time.RFC3339, time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC), ""},
		{"offset", `{"time":"2026-11-22T11:00:01+01:00"}`, time.RFC3339, time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC), ""},
		{"unix", `{"time":1700000000}`, "unix", time.Unix(1700000000, 0), ""},
		{"unix fraction", `{"time":1700000000.5}`, "unix", time.Unix(1700000000, 5e8), ""},
		{"unix_ms string", `{"time":"1700000000123"}`, "unix_ms", time.UnixMilli(1700000000123), ""},
		{"unix out of range", `{"time":1e300}`, "unix", time.Time{}, "out of range"},
		{"unix not a number", `{"time":"soon"}`, "unix", time.Time{}, "not a number"},
		{"missing field", `{"other":1}`, time.RFC3339, time.Time{}, `"time" missing`},
		{"wrong layout", `{"time":"22/11/2026"}`, time.RFC3339, time.Time{}, "cannot parse"},
		{"no year takes this year", `{"time":"Jan  2 15:04:05"}`, time.Stamp, withThisYear(time.January, 2, 15, 4, 5), ""},
	}
	for _, tc := range layouts {
		t.Run(tc.name, func(t *testing.T) {
			p := spec(t, "json", func(s *pipeline.InputSettings) {
				s.Parse.Timestamp = pipeline.TimestampSettings{Field: "time", Layout: tc.layout}
			}).New()
			_, ev, err := parseLine(p, tc.line)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error = %v, want %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Time.Equal(tc.want) {
				t.Errorf("time = %v, want %v", ev.Time, tc.want)
			}
		})
	}
}

// withThisYear is what a yearless timestamp becomes: this year, or last
// year if that is more than a day ahead.
func withThisYear(m time.Month, d, h, min, sec int) time.Time {
	now := time.Now()
	t := time.Date(now.Year(), m, d, h, min, sec, 0, time.UTC)
	if t.After(now.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return t
}

// TestDefaultTimestamps: cri and docker read their own "time" field.
func TestDefaultTimestamps(t *testing.T) {
	want := time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for name, line := range map[string]string{
		"cri":    `2024-01-02T03:04:05.123456789Z stdout F x`,
		"docker": `{"log":"x\n","stream":"stdout","time":"2024-01-02T03:04:05.123456789Z"}`,
	} {
		_, ev, err := parseLine(spec(t, name, nil).New(), line)
		if err != nil || !ev.Time.Equal(want) {
			t.Errorf("%s: time %v, err %v; want %v", name, ev.Time, err, want)
		}
	}
}

// TestSettingsErrors: parser problems are config errors naming the key.
func TestSettingsErrors(t *testing.T) {
	cases := []struct {
		name string
		mod  func(s *pipeline.InputSettings)
		key  string
		has  string
	}{
		{"unknown parser", func(s *pipeline.InputSettings) { s.Parser = "yaml" }, "parser", `unknown parser "yaml"`},
		{"regex without pattern", func(s *pipeline.InputSettings) { s.Parser = "regex" }, "parse.pattern", "required"},
		{"bad regex", func(s *pipeline.InputSettings) { s.Parser = "regex"; s.Parse.Pattern = "(" }, "parse.pattern", "missing closing"},
		{"regex without names", func(s *pipeline.InputSettings) { s.Parser = "regex"; s.Parse.Pattern = "(a)" }, "parse.pattern", "named groups"},
		{"pattern with json", func(s *pipeline.InputSettings) { s.Parser = "json"; s.Parse.Pattern = "(?P<a>a)" }, "parse.pattern", "only used by"},
		{"pattern with none", func(s *pipeline.InputSettings) { s.Parse.Pattern = "(?P<a>a)" }, "parse.pattern", "only used by"},
		{"timestamp with none", func(s *pipeline.InputSettings) { s.Parse.Timestamp.Field = "t" }, "parse.timestamp", "needs a parser"},
		{"timestamp without field", func(s *pipeline.InputSettings) { s.Parser = "json"; s.Parse.Timestamp.Layout = "unix" }, "parse.timestamp.field", "required"},
		{"timestamp without layout", func(s *pipeline.InputSettings) { s.Parser = "json"; s.Parse.Timestamp.Field = "t" }, "parse.timestamp.layout", "required"},
		{"layout without elements", func(s *pipeline.InputSettings) {
			s.Parser = "json"
			s.Parse.Timestamp = pipeline.TimestampSettings{Field: "t", Layout: "iso"}
		}, "parse.timestamp.layout", "no time elements"},
		{"partial timeout zero", func(s *pipeline.InputSettings) { s.Parser = "cri"; s.Parse.PartialTimeout = config.Dur(0) }, "parse.partial_timeout", "above 0"},
		{"partial timeout on json", func(s *pipeline.InputSettings) { s.Parser = "json"; s.Parse.PartialTimeout = config.Dur(time.Second) }, "parse.partial_timeout", "only used by"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := pipeline.DefaultInputSettings()
			tc.mod(&s)
			err := s.Validate()
			if err == nil {
				t.Fatal("Validate() = nil")
			}
			found := false
			for _, e := range config.Flatten(err) {
				if ce, ok := e.(*config.Error); ok && ce.Key == tc.key && strings.Contains(e.Error(), tc.has) {
					found = true
				}
			}
			if !found {
				t.Errorf("Validate() = %v; want an error on key %q containing %q", err, tc.key, tc.has)
			}
		})
	}
	if got := pipeline.ParserNames(); !slices.Equal(got, []string{"cri", "docker", "json", "logfmt", "none", "regex", "syslog"}) {
		t.Errorf("ParserNames() = %v", got)
	}
}
