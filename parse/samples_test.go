package parse_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// nginxCombined is Fluent Bit's nginx parser expression, for nginx's
// default "combined" log_format.
const nginxCombined = `^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \[(?<time>[^\]]*)\] "(?<method>\S+)(?: +(?<path>[^\"]*?)(?: +\S*)?)?" (?<code>[^ ]*) (?<size>[^ ]*)(?: "(?<referer>[^\"]*)" "(?<agent>[^\"]*)")`

// TestRegexNginx: real nginx access lines with the expression users copy
// from Fluent Bit, including what scanners and health checks produce.
func TestRegexNginx(t *testing.T) {
	p := spec(t, "regex", func(s *pipeline.InputSettings) {
		s.Parse.Pattern = nginxCombined
		s.Parse.Timestamp = pipeline.TimestampSettings{Field: "time", Layout: "02/Jan/2006:15:04:05 -0700"}
	}).New()
	runCases(t, p, []parseCase{
		{"combined", `93.184.216.34 - - [22/Nov/2026:10:00:00 +0000] "GET /index.html?q=1 HTTP/1.1" 200 612 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"`,
			[]string{`remote="93.184.216.34"`, `host="-"`, `user="-"`, `time="22/Nov/2026:10:00:00 +0000"`, `method="GET"`, `path="/index.html?q=1"`, `code="200"`, `size="612"`, `referer="https://example.com/"`, `agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"`}, ""},
		{"ipv6 and basic auth user", `2001:db8::1 - alice [22/Nov/2026:10:00:01 +0100] "POST /api/v1/orders HTTP/2.0" 201 48 "-" "curl/8.5.0"`,
			[]string{`remote="2001:db8::1"`, `host="-"`, `user="alice"`, `time="22/Nov/2026:10:00:01 +0100"`, `method="POST"`, `path="/api/v1/orders"`, `code="201"`, `size="48"`, `referer="-"`, `agent="curl/8.5.0"`}, ""},
		{"scanner sends no request line", `198.51.100.7 - - [22/Nov/2026:10:00:02 +0000] "-" 400 0 "-" "-"`,
			[]string{`remote="198.51.100.7"`, `host="-"`, `user="-"`, `time="22/Nov/2026:10:00:02 +0000"`, `method="-"`, `code="400"`, `size="0"`, `referer="-"`, `agent="-"`}, ""},
		{"request without protocol", `198.51.100.7 - - [22/Nov/2026:10:00:03 +0000] "GET /" 400 150 "-" "-"`,
			[]string{`remote="198.51.100.7"`, `host="-"`, `user="-"`, `time="22/Nov/2026:10:00:03 +0000"`, `method="GET"`, `path="/"`, `code="400"`, `size="150"`, `referer="-"`, `agent="-"`}, ""},
		{"common format (no referer, agent)", `10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 612`, nil, "does not match"},
		{"error log line", `2026/11/22 10:00:00 [error] 31#31: *1 open() "/usr/share/nginx/html/x" failed (2: No such file or directory)`, nil, "does not match"},
		{"bad time", `10.0.0.1 - - [yesterday] "GET / HTTP/1.1" 200 1 "-" "-"`, nil, "timestamp"},
	})
	_, ev, err := parseLine(p, `10.0.0.1 - - [22/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200 1 "-" "-"`)
	if err != nil || !ev.Time.Equal(time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("event time %v, %v", ev.Time, err)
	}
}

// TestSyslog5424StructuredData: several SD elements, escapes inside
// values, and a message that looks like SD.
func TestSyslog5424StructuredData(t *testing.T) {
	p := spec(t, "syslog", nil).New()
	runCases(t, p, []parseCase{
		{"two elements", `<165>1 2026-11-22T10:00:00.003Z web-1 orders 1234 ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"] order 1000 failed`,
			[]string{`facility=20(int64)`, `severity=5(int64)`, `timestamp="2026-11-22T10:00:00.003Z"`, `hostname="web-1"`, `appname="orders"`, `procid="1234"`, `msgid="ID47"`,
				`structured_data="[exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]"`, `message="order 1000 failed"`}, ""},
		{"escaped bracket, quote and backslash", `<13>1 2026-11-22T10:00:00Z h a - - [x@1 path="C:\\logs\\a.log" q="say \"hi\"" b="a\]b"] m`,
			[]string{`facility=1(int64)`, `severity=5(int64)`, `timestamp="2026-11-22T10:00:00Z"`, `hostname="h"`, `appname="a"`,
				`structured_data="[x@1 path=\"C:\\\\logs\\\\a.log\" q=\"say \\\"hi\\\"\" b=\"a\\]b\"]"`, `message="m"`}, ""},
		{"no SD, message with brackets", `<13>1 2026-11-22T10:00:00Z h a - - - [not sd] text`,
			[]string{`facility=1(int64)`, `severity=5(int64)`, `timestamp="2026-11-22T10:00:00Z"`, `hostname="h"`, `appname="a"`, `message="[not sd] text"`}, ""},
		{"SD element without params", `<13>1 2026-11-22T10:00:00Z h a - - [meta] m`,
			[]string{`facility=1(int64)`, `severity=5(int64)`, `timestamp="2026-11-22T10:00:00Z"`, `hostname="h"`, `appname="a"`, `structured_data="[meta]"`, `message="m"`}, ""},
		{"unterminated value", `<13>1 2026-11-22T10:00:00Z h a - - [x a="b] m`, nil, "structured"},
		{"SD missing space before message", `<13>1 2026-11-22T10:00:00Z h a - - [x a="b"]m`, nil, "structured"},
	})
}

// TestMalformedLinesShippedRaw: lines of every kind that a parser cannot
// read (empty, blank, binary, invalid UTF-8, NUL bytes, cut anywhere, a
// different format) go through the pool: each is shipped once, in order,
// as read (invalid UTF-8 as U+FFFD in JSON) with a parse_error that says
// what is wrong, and counted; the good lines around them parse.
func TestMalformedLinesShippedRaw(t *testing.T) {
	for _, name := range []string{"json", "logfmt", "regex", "cri", "docker", "syslog"} {
		t.Run(name, func(t *testing.T) {
			var mod func(s *pipeline.InputSettings)
			if name == "regex" {
				mod = func(s *pipeline.InputSettings) { s.Parse.Pattern = benchPattern }
			}
			good := benchLines[name][0]
			bad := []string{"", "   ", "\x00\x01\x02", "\xff\xfe\xfd", "bin\x00ary", good[:len(good)/2], good[:1]}
			for _, other := range []string{"json", "regex", "cri"} {
				// (A CRI line is an rsyslog line with an RFC 3339 time.)
				if other != name && !(name == "syslog" && other == "cri") {
					bad = append(bad, benchLines[other][1])
				}
			}
			var lines []string
			for _, b := range bad {
				lines = append(lines, good, b)
			}
			pl := newPool(t, 2, name, mod)
			pl.out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
				return string(codec.AppendJSON(nil, src, ev))
			}
			var chunks [][]string
			for i := 0; i < len(lines); i += 3 {
				chunks = append(chunks, lines[i:min(i+3, len(lines))])
			}
			src, ends := pl.emit(chunks...)
			pl.stop()
			got := pl.out.Lines()
			if len(got) != len(lines) {
				t.Fatalf("%d events for %d lines:\n%s", len(got), len(lines), strings.Join(got, "\n"))
			}
			failed := 0
			for i, g := range got {
				isBad := i%2 == 1
				if !isBad {
					if strings.Contains(g, "parse_error") {
						t.Errorf("good line %d failed: %s", i, g)
					}
					continue
				}
				// Some are valid after all: logfmt reads any word as a
				// bare key, and half a CRI line is a CRI line with half
				// its message.
				if !strings.Contains(g, `"parse_error":"`) {
					if name == "logfmt" || (name == "cri" && lines[i] == good[:len(good)/2]) {
						continue
					}
					t.Errorf("line %d %q parsed: %s", i, lines[i], g)
					continue
				}
				failed++
				want, _ := codecString(lines[i])
				if !strings.HasPrefix(g, `{"message":`+want+`,"parse_error":"`+name) && !strings.HasPrefix(g, `{"message":`+want+`,"parse_error":"`) {
					t.Errorf("line %d: %s\nwant the line as read %s with a parse_error", i, g, want)
				}
			}
			if n := pl.stats.ParseErrors.Load(); n != int64(failed) || failed == 0 {
				t.Errorf("ParseErrors = %d, %d lines failed of %d bad", n, failed, len(bad))
			}
			if c := src.Committed(); c != ends[len(ends)-1] {
				t.Errorf("committed %d, want %d", c, ends[len(ends)-1])
			}
		})
	}
}
