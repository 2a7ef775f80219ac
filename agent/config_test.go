package agent_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/pipeline"
)

// nullOutput is a minimal output type so config tests do not depend on the
// real output plugins.
type nullOutput struct {
	pipeline.OutputSettings
	Target string `toml:"target"`
}

func (c *nullOutput) Validate() error                                      { return nil }
func (c *nullOutput) Build(pipeline.BuildContext) (pipeline.Output, error) { return nil, nil }

func init() {
	pipeline.RegisterOutput("null", func() pipeline.OutputConfig {
		return &nullOutput{OutputSettings: pipeline.DefaultOutputSettings()}
	})
}

func load(t *testing.T, doc string, env map[string]string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	return agent.Load("t.toml", []byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

const good = `
[agent]
data_dir = "DATADIR"
shutdown_timeout = "3s"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]
max_line_bytes = "64KiB"
fields = { service = "app" }

[outputs.out]
type = "null"
inputs = ["app"]
batch = { max_events = 10, timeout = "200ms" }
`

func TestLoadGood(t *testing.T) {
	cfg, err := load(t, good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Agent.ShutdownTimeout.D().String(); got != "3s" {
		t.Errorf("shutdown_timeout = %s", got)
	}
	in := cfg.Inputs["app"].Common()
	if in.MaxLineBytes != 64<<10 || in.Fields["service"] != "app" {
		t.Errorf("input settings not decoded: %+v", in)
	}
	out := cfg.Outputs["out"].Common()
	if out.Batch.MaxEvents != 10 || out.Batch.Timeout.D().String() != "200ms" {
		t.Errorf("batch not decoded: %+v", out.Batch)
	}
	if out.Batch.MaxBytes != 1<<20 || out.Queue.WhenFull != "block" {
		t.Errorf("defaults lost: %+v %+v", out.Batch, out.Queue)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", cfg.Warnings)
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, doc string
		want      []string // substrings of the error, in any order
	}{
		{"misspelled input key", strings.Replace(good, "include =", "incldue =", 1),
			[]string{"t.toml:8: inputs.app.incldue: unknown key"}},
		{"misspelled agent key", strings.Replace(good, "shutdown_timeout", "shutdown_timout", 1),
			[]string{"t.toml:4: agent.shutdown_timout: unknown key"}},
		{"unknown nested key", strings.Replace(good, "max_events = 10", "max_event = 10", 1),
			[]string{"t.toml:15: outputs.out.batch.max_event: unknown key"}},
		{"wrong type", strings.Replace(good, `include = ["/tmp/x/*.log"]`, `include = 5`, 1),
			[]string{"t.toml:8: inputs.app.include: cannot decode"}},
		{"bare integer duration", strings.Replace(good, `timeout = "200ms"`, `timeout = 200`, 1),
			[]string{"t.toml:15: outputs.out.batch.timeout: invalid duration \"200\""}},
		{"bad size", strings.Replace(good, `"64KiB"`, `"64 parsecs"`, 1),
			[]string{"t.toml:9: inputs.app.max_line_bytes: invalid size"}},
		{"unknown type", strings.Replace(good, `type = "null"`, `type = "nul"`, 1),
			[]string{"t.toml:13: outputs.out.type: unknown type \"nul\""}},
		{"missing type", strings.Replace(good, "type = \"file\"\n", "", 1),
			[]string{"inputs.app.type: missing"}},
		{"output reads unknown input", strings.Replace(good, `inputs = ["app"]`, `inputs = ["ap"]`, 1),
			[]string{"t.toml:14: outputs.out.inputs: names input \"ap\""}},
		{"invalid glob", strings.Replace(good, `/tmp/x/*.log`, `/tmp/x/[.log`, 1),
			[]string{"t.toml:8: inputs.app.include: invalid glob"}},
		{"bad when_full", strings.Replace(good, `batch = {`, "queue = { when_full = \"explode\" }\nbatch = {", 1),
			[]string{"t.toml:15: outputs.out.queue.when_full: must be"}},
		{"bad log level", strings.Replace(good, "[agent]\n", "[agent]\nlog_level = \"loud\"\n", 1),
			[]string{"t.toml:3: agent.log_level: must be"}},
		{"syntax error", good + "\n[broken\n", []string{"t.toml:17: expected ']'"}},
		{"unset env", strings.Replace(good, `/tmp/x/*.log`, `${LOGDIR}/*.log`, 1),
			[]string{"t.toml:8: inputs.app.include: environment variable LOGDIR is not set"}},
		{"unwritable data_dir", strings.Replace(good, "DATADIR", "/proc/tailship-test", 1),
			[]string{"agent.data_dir: cannot create"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.doc, nil)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestEnvInterpolation(t *testing.T) {
	doc := strings.Replace(good, `/tmp/x/*.log`, `${LOGDIR}/*.log`, 1)
	doc = strings.Replace(doc, `service = "app"`, `service = "${SVC:-fallback}", cost = "$$5"`, 1)
	doc = "# comments keep ${UNSET} as written\n" + doc
	cfg, err := load(t, doc, map[string]string{"LOGDIR": "/var/log/app"})
	if err != nil {
		t.Fatal(err)
	}
	fc := cfg.Inputs["app"].Common()
	if fc.Fields["service"] != "fallback" || fc.Fields["cost"] != "$5" {
		t.Errorf("fields = %v", fc.Fields)
	}
}

func TestWarnsOnUnreadInput(t *testing.T) {
	doc := good + "\n[inputs.lonely]\ntype = \"file\"\ninclude = [\"/tmp/y/*.log\"]\n"
	cfg, err := load(t, doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].String(), "inputs.lonely: no output reads") {
		t.Errorf("warnings = %v", cfg.Warnings)
	}
}
