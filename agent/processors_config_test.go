package agent_test

import (
	"strings"
	"testing"

	"github.com/tailship/tailship/processors"
)

const withProcessors = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]
parser = "logfmt"

[[inputs.app.processors]]
type = "filter"
field = "level"
equals = "debug"
action = "drop"

[[inputs.app.processors]]
type = "redact"
pattern = 'password=\S+'
replacement = "password=[REDACTED]"

[[inputs.app.processors]]
type = "aggregate"
name = "requests"
group_by = ["route"]
field = "ms"
width = "1m"
interval = "10s"

[outputs.errors]
type = "null"
inputs = ["app"]
when = { field = "level", match = "^(error|fatal)$" }

[outputs.all]
type = "null"
inputs = ["app"]
processors = [
  { type = "add_fields", fields = { team = "ops" } },
  { type = "sample", rate = 10, field = "trace_id" },
]
`

// TestLoadProcessors: processor tables, as arrays of tables or inline,
// decode into their types' configs in order; when decodes on the output.
func TestLoadProcessors(t *testing.T) {
	cfg, err := load(t, withProcessors, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := cfg.Inputs["app"].Common().ProcessorConfigs
	if len(in) != 3 {
		t.Fatalf("%d input processors", len(in))
	}
	f, ok := in[0].(*processors.FilterConfig)
	if !ok || f.Field != "level" || f.Equals != "debug" || f.Action != "drop" {
		t.Fatalf("filter %#v", in[0])
	}
	if r, ok := in[1].(*processors.RedactConfig); !ok || r.Pattern != `password=\S+` || strings.Join(r.Fields, ",") != "message" {
		t.Fatalf("redact %#v", in[1])
	}
	if a, ok := in[2].(*processors.AggregateConfig); !ok || a.Width.D().String() != "1m0s" || a.Interval.D().String() != "10s" || a.MaxKeys != 10000 {
		t.Fatalf("aggregate %#v", in[2])
	}
	out := cfg.Outputs["all"].Common().ProcessorConfigs
	if len(out) != 2 {
		t.Fatalf("%d output processors", len(out))
	}
	if s, ok := out[1].(*processors.SampleConfig); !ok || s.Rate != 10 || s.Field != "trace_id" {
		t.Fatalf("sample %#v", out[1])
	}
	if w := cfg.Outputs["errors"].Common().When; w == nil || w.Field != "level" || w.Match != "^(error|fatal)$" {
		t.Fatalf("when %#v", w)
	}
}

// TestLoadProcessorErrors: a bad processor setting is reported with the
// file, the line it is written on, and its key with the element's index.
func TestLoadProcessorErrors(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"bad pattern", strings.Replace(withProcessors, `'password=\S+'`, `'password=(\S+'`, 1),
			`t.toml:18: inputs.app.processors[1].pattern: invalid regular expression`},
		{"unknown key", strings.Replace(withProcessors, `replacement =`, `replacment =`, 1),
			`t.toml:19: inputs.app.processors[1].replacment: unknown key`},
		{"unknown type", strings.Replace(withProcessors, `type = "filter"`, `type = "grep"`, 1),
			`t.toml:11: inputs.app.processors[0].type: unknown type "grep"; one of add_fields, aggregate,`},
		{"missing type", strings.Replace(withProcessors, `type = "filter"`, ``, 1),
			`t.toml:10: inputs.app.processors[0].type: missing`},
		{"bad action", strings.Replace(withProcessors, `action = "drop"`, `action = "discard"`, 1),
			`t.toml:14: inputs.app.processors[0].action: must be "keep" or "drop"`},
		{"bad duration", strings.Replace(withProcessors, `interval = "10s"`, `interval = "10 parsecs"`, 1),
			`t.toml:27: inputs.app.processors[2].interval: invalid duration "10 parsecs"`},
		{"interval not dividing", strings.Replace(withProcessors, `interval = "10s"`, `interval = "7s"`, 1),
			`t.toml:27: inputs.app.processors[2].interval: must divide width`},
		{"wrong type", strings.Replace(withProcessors, `group_by = ["route"]`, `group_by = "route"`, 1),
			`t.toml:24: inputs.app.processors[2].group_by:`},
		{"inline element", strings.Replace(withProcessors, `rate = 10,`, `rate = 0,`, 1),
			`t.toml:39: outputs.all.processors[1].rate: must be at least 1`},
		{"inline unknown key", strings.Replace(withProcessors, `fields = { team = "ops" }`, `field = "x"`, 1),
			`t.toml:38: outputs.all.processors[0].field: unknown key`},
		{"when regex", strings.Replace(withProcessors, `match = "^(error|fatal)$"`, `match = "^(error"`, 1),
			`t.toml:32: outputs.errors.when.match: invalid regular expression`},
		{"when without field", strings.Replace(withProcessors, `when = { field = "level", match`, `when = { match`, 1),
			`outputs.errors.when.field: is required`},
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
