package nats_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/config/configtest"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/outputs/nats"
)

const good = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]

[outputs.bus]
type = "nats"
inputs = ["app"]
url = "tls://n1:4222,tls://n2:4222"
subject = "logs.%{service}.app"
format = "json"
ack_timeout = "5s"
token_file = "SECRET"
tls = { enabled = true, ca_file = "CAFILE" }

[outputs.plain]
type = "nats"
inputs = ["app"]
subject = "logs"
`

func load(t *testing.T, doc string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "tok")
	os.WriteFile(secret, []byte("tok\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	doc = strings.ReplaceAll(doc, "SECRET", secret)
	doc = strings.ReplaceAll(doc, "EMPTY", empty)
	doc = strings.ReplaceAll(doc, "CAFILE", configtest.NewCA(t).CAFile)
	env := map[string]string{"NATS_TOKEN": "from-env"}
	return agent.Load("t.toml", []byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(t, good)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Outputs["bus"].(*nats.Config)
	if c.URL != "tls://n1:4222,tls://n2:4222" || c.Subject != "logs.%{service}.app" || c.Format != "json" ||
		c.AckTimeout.D().String() != "5s" || c.TokenFile == "" || !c.TLS.Enabled {
		t.Errorf("bus: %+v", c)
	}
	p := cfg.Outputs["plain"].(*nats.Config)
	if p.URL != "nats://127.0.0.1:4222" || p.Format != "raw" || p.AckTimeout.D().String() != "10s" || p.Name != "tailship" {
		t.Errorf("defaults: %+v", p)
	}
}

func TestConfigTokenFromEnv(t *testing.T) {
	cfg, err := load(t, strings.Replace(good, `token_file = "SECRET"`, `token = "${NATS_TOKEN}"`, 1))
	if err != nil {
		t.Fatal(err)
	}
	if tok := cfg.Outputs["bus"].(*nats.Config).Token; tok != "from-env" {
		t.Fatalf("token %q", tok)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"url scheme", `url = "tls://n1:4222,tls://n2:4222"`, `url = "http://n1:4222"`, "t.toml:12: outputs.bus.url: want nats://host:port"},
		{"url no host", `url = "tls://n1:4222,tls://n2:4222"`, `url = "nats://"`, "t.toml:12: outputs.bus.url: \"nats://\" names no host"},
		{"url password hidden", `url = "tls://n1:4222,tls://n2:4222"`, `url = "http://me:hunter2@n1:4222"`, "http://me:xxxxx@n1:4222"},
		{"subject missing", `subject = "logs.%{service}.app"`, ``, "outputs.bus.subject: required"},
		{"subject template", `subject = "logs.%{service}.app"`, `subject = "logs.%{service"`, "t.toml:13: outputs.bus.subject: %{ at 5 is not closed"},
		{"subject wildcard", `subject = "logs.%{service}.app"`, `subject = "logs.*.app"`, "t.toml:13: outputs.bus.subject: \"logs.*.app\": a subject to publish to has no spaces or wildcards"},
		{"subject empty token", `subject = "logs.%{service}.app"`, `subject = "logs..%{service}"`, "t.toml:13: outputs.bus.subject: \"logs..%{service}\" has an empty token"},
		{"subject trailing dot", `subject = "logs.%{service}.app"`, `subject = "logs.%{service}."`, "has an empty token"},
		{"format", `format = "json"`, `format = "xml"`, "t.toml:14: outputs.bus.format: must be \"raw\" or \"json\""},
		{"ack_timeout", `ack_timeout = "5s"`, `ack_timeout = "0"`, "t.toml:15: outputs.bus.ack_timeout: must be above 0"},
		{"token twice", `token_file = "SECRET"`, "token_file = \"SECRET\"\ntoken = \"x\"", "outputs.bus.token_file: token is set too"},
		{"token file missing", `token_file = "SECRET"`, `token_file = "/nonexistent/tok"`, "t.toml:16: outputs.bus.token_file: cannot read secret file"},
		{"token file empty", `token_file = "SECRET"`, `token_file = "EMPTY"`, "is empty"},
		{"user without password", `token_file = "SECRET"`, `user = "me"`, "t.toml:9: outputs.bus.password: required with user"},
		{"password without user", `token_file = "SECRET"`, `password = "pw"`, "t.toml:9: outputs.bus.user: required with a password"},
		{"two auth kinds", `token_file = "SECRET"`, "token_file = \"SECRET\"\nuser = \"me\"\npassword = \"pw\"", "outputs.bus.credentials_file: user/password, token and credentials_file are different ways"},
		{"tls not enabled", `enabled = true, `, ``, "t.toml:17: outputs.bus.tls.enabled: TLS settings are given"},
		{"unknown key", `ack_timeout = "5s"`, `timeout = "5s"`, "t.toml:15: outputs.bus.timeout: unknown key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(good, tc.old, tc.new, 1)
			if doc == good {
				t.Fatalf("replacement of %q did nothing", tc.old)
			}
			_, err := load(t, doc)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not contain %q:\n%v", tc.want, err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
