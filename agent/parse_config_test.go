package agent_test

import (
	"strings"
	"testing"

	_ "github.com/tailship/tailship/parse"
)

const parsed = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]
parser = "regex"

[inputs.app.parse]
pattern = '^(?P<level>\w+) (?P<msg>.*)$'
timestamp = { field = "time", layout = "2006-01-02T15:04:05Z07:00" }

[inputs.pods]
type = "file"
include = ["/var/log/pods/**/*.log"]
parser = "cri"
parse = { partial_timeout = "3s" }

[outputs.out]
type = "null"
inputs = ["app", "pods"]
`

// TestLoadParserSettings: parser and its [inputs.NAME.parse] options are
// common input keys, as a table or inline.
func TestLoadParserSettings(t *testing.T) {
	cfg, err := load(t, parsed, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := cfg.Inputs["app"].Common()
	if app.Parser != "regex" || app.Parse.Pattern != `^(?P<level>\w+) (?P<msg>.*)$` ||
		app.Parse.Timestamp.Field != "time" || app.Parse.Timestamp.Layout != "2006-01-02T15:04:05Z07:00" {
		t.Errorf("app settings = %+v", app)
	}
	pods := cfg.Inputs["pods"].Common()
	if pods.Parser != "cri" || pods.Parse.PartialTimeout.D().String() != "3s" || pods.Parse.KeepRaw {
		t.Errorf("pods settings = %+v", pods)
	}
	c, err := load(t, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Inputs["app"].Common().Parser; p != "none" {
		t.Errorf("default parser = %q, want none", p)
	}
}

// TestLoadParserErrors: parser problems are reported with file, line and
// the full key.
func TestLoadParserErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"unknown parser", strings.Replace(parsed, `parser = "cri"`, `parser = "yaml"`, 1),
			`t.toml:17: inputs.pods.parser: unknown parser "yaml"`},
		{"bad pattern", strings.Replace(parsed, `(?P<msg>.*)$`, `(?P<msg>.*$`, 1),
			`t.toml:11: inputs.app.parse.pattern: error parsing regexp`},
		{"unknown parse key", strings.Replace(parsed, "pattern =", "patern =", 1),
			`t.toml:11: inputs.app.parse.patern: unknown key`},
		{"pattern on cri", strings.Replace(parsed, `parse = { partial_timeout = "3s" }`, `parse = { pattern = "(?P<a>a)" }`, 1),
			`inputs.pods.parse.pattern: is only used by parser = "regex"`},
		{"bad layout", strings.Replace(parsed, `layout = "2006-01-02T15:04:05Z07:00"`, `layout = "iso8601"`, 1),
			`inputs.app.parse.timestamp.layout: "iso8601" has no time elements`},
		{"keep_raw without a parser", strings.Replace(strings.Replace(parsed, `parser = "cri"`, `parser = "none"`, 1), `parse = { partial_timeout = "3s" }`, `parse = { keep_raw = true }`, 1),
			`t.toml:18: inputs.pods.parse.keep_raw: needs a parser`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.doc, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}
