package amqp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/outputs/amqp"
)

const good = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]

[outputs.rabbit]
type = "amqp"
inputs = ["app"]
url = "amqp://tailship:${RABBIT_PASSWORD}@rabbit.example.com:5672/logs"
exchange = "logs"
exchange_type = "topic"
routing_key = "app.%{service}"
mandatory = true
unroutable = "retry"
format = "json"

[outputs.secret]
type = "amqp"
inputs = ["app"]
url_file = "URLFILE"
exchange = "amq.topic"
exchange_declare = "passive"
`

func load(t *testing.T, doc string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	uf := filepath.Join(dir, "url")
	if err := os.WriteFile(uf, []byte("amqps://u:from-file@rabbit:5671/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	doc = strings.ReplaceAll(doc, "URLFILE", uf)
	env := func(k string) (string, bool) {
		if k == "RABBIT_PASSWORD" {
			return "from-env", true
		}
		return "", false
	}
	return agent.Load("t.toml", []byte(doc), env)
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(t, good)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Outputs["rabbit"].(*amqp.Config)
	if r.URL != "amqp://tailship:from-env@rabbit.example.com:5672/logs" || r.ExchangeType != "topic" || !r.Mandatory || r.Unroutable != "retry" || !r.Persistent || r.ExchangeDeclare != "declare" || !r.ExchangeDurable {
		t.Errorf("rabbit: %+v", r)
	}
	s := cfg.Outputs["secret"].(*amqp.Config)
	if s.ExchangeDeclare != "passive" || s.RoutingKey != "" || s.Timeout.D().String() != "30s" {
		t.Errorf("secret: %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"bad url scheme", `url = "amqp://tailship:${RABBIT_PASSWORD}@rabbit.example.com:5672/logs"`, `url = "http://rabbit:5672/"`, "t.toml:12: outputs.rabbit.url: invalid: AMQP scheme must be either 'amqp://' or 'amqps://'"},
		{"bad url port", `rabbit.example.com:5672`, `rabbit.example.com:port`, "t.toml:12: outputs.rabbit.url: invalid"},
		{"url error hides password", `rabbit.example.com:5672`, `rabbit.example.com:port`, "xxxxx"},
		{"url missing", `url = "amqp://tailship:${RABBIT_PASSWORD}@rabbit.example.com:5672/logs"`, ``, "outputs.rabbit.url: required"},
		{"url twice", `url_file = "URLFILE"`, "url_file = \"URLFILE\"\nurl = \"amqp://x/\"", "outputs.secret.url_file: url is set too"},
		{"url_file missing", `url_file = "URLFILE"`, `url_file = "/nonexistent/url"`, "t.toml:23: outputs.secret.url_file: cannot read secret file"},
		{"exchange_declare", `exchange_declare = "passive"`, `exchange_declare = "maybe"`, "t.toml:25: outputs.secret.exchange_declare: must be"},
		{"declare built-in", `exchange_declare = "passive"`, ``, "outputs.secret.exchange_declare: \"amq.topic\" is a built-in exchange"},
		{"declare default exchange", `exchange = "logs"`, `exchange = ""`, "outputs.rabbit.exchange_declare: the default exchange"},
		{"routing_key template", `routing_key = "app.%{service}"`, `routing_key = "app.%{service"`, "t.toml:15: outputs.rabbit.routing_key: %{ at 4 is not closed"},
		{"unroutable", `unroutable = "retry"`, `unroutable = "drop"`, "t.toml:17: outputs.rabbit.unroutable: must be \"dead_letter\" or \"retry\""},
		{"format", `format = "json"`, `format = "avro"`, "t.toml:18: outputs.rabbit.format: must be \"raw\" or \"json\""},
		{"max_in_flight", `format = "json"`, "format = \"json\"\nmax_in_flight = 2", "t.toml:19: outputs.rabbit.max_in_flight: amqp publishes on one channel"},
		{"tls with amqp://", `format = "json"`, "format = \"json\"\ntls = { ca_file = \"/x.pem\" }", "outputs.rabbit.tls: TLS settings with an amqp:// url"},
		{"unknown key", `mandatory = true`, `mandatory_flag = true`, "t.toml:16: outputs.rabbit.mandatory_flag: unknown key"},
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
			if strings.Contains(err.Error(), "from-env") || strings.Contains(err.Error(), "from-file") {
				t.Errorf("error shows a password:\n%v", err)
			}
		})
	}
}
