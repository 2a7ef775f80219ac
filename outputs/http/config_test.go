package http_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/config/configtest"
	_ "github.com/tailship/tailship/inputs/file"
	httpout "github.com/tailship/tailship/outputs/http"
	"github.com/tailship/tailship/pipeline"
)

const good = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]

[outputs.web]
type = "http"
inputs = ["app"]
url = "https://logs.example.com:9200"
format = "elasticsearch"
compression = "gzip"
index = "logs-%{service}-%Y.%m.%d"
pipeline = "access"
timeout = "10s"
max_in_flight = 2
dead_letter_path = "DATADIR/web-dead.jsonl"
headers = { X-Team = "logs" }
auth = { user = "shipper", password_file = "SECRET" }
tls = { ca_file = "CAFILE", insecure_skip_verify = false }

[outputs.loki]
type = "http"
inputs = ["app"]
url = "http://loki:3100/loki/api/v1/push"
format = "loki"
labels = ["service", "level"]
static_labels = { job = "tailship" }
tenant_id = "${TENANT:-team-a}"
`

func load(t *testing.T, doc string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	os.WriteFile(secret, []byte("pw\n"), 0o600)
	ca := configtest.NewCA(t).CAFile
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	doc = strings.ReplaceAll(doc, "EMPTY", empty)
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	doc = strings.ReplaceAll(doc, "SECRET", secret)
	doc = strings.ReplaceAll(doc, "CAFILE", ca)
	return agent.Load("t.toml", []byte(doc), func(string) (string, bool) { return "", false })
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(t, good)
	if err != nil {
		t.Fatal(err)
	}
	web := cfg.Outputs["web"].(*httpout.Config)
	if web.Compression != "gzip" || web.Index != "logs-%{service}-%Y.%m.%d" || web.MaxInFlight != 2 ||
		web.Auth.User != "shipper" || web.Headers["X-Team"] != "logs" || !strings.HasSuffix(web.DeadLetterPath, "web-dead.jsonl") {
		t.Errorf("web: %+v", web)
	}
	loki := cfg.Outputs["loki"].(*httpout.Config)
	if loki.TenantID != "team-a" || len(loki.Labels) != 2 || loki.Compression != "gzip" || loki.Timeout.D().String() != "30s" {
		t.Errorf("loki: %+v", loki)
	}
	if _, err := web.Build(pipeline.BuildContext{Name: "web"}); err != nil {
		t.Errorf("build: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, old, new, want string
	}{
		{"missing url", `url = "https://logs.example.com:9200"`, ``, "t.toml:9: outputs.web.url: required"},
		{"bad scheme", `url = "https://logs.example.com:9200"`, `url = "ftp://x"`, "t.toml:12: outputs.web.url: must start with http:// or https://"},
		{"format", `format = "elasticsearch"`, `format = "gelf"`, "t.toml:13: outputs.web.format: must be one of"},
		{"compression", `compression = "gzip"`, `compression = "snappy"`, "t.toml:14: outputs.web.compression: must be"},
		{"zstd to elasticsearch", `compression = "gzip"`, `compression = "zstd"`, "t.toml:14: outputs.web.compression: elasticsearch does not decode zstd"},
		{"index template", `index = "logs-%{service}-%Y.%m.%d"`, `index = "logs-%{service"`, "t.toml:15: outputs.web.index: %{ at 5 is not closed"},
		{"index missing", `index = "logs-%{service}-%Y.%m.%d"`, ``, "outputs.web.index: required with format = \"elasticsearch\""},
		{"timeout", `timeout = "10s"`, `timeout = 10`, "t.toml:17: outputs.web.timeout: invalid duration"},
		{"max_in_flight", `max_in_flight = 2`, `max_in_flight = 0`, "t.toml:18: outputs.web.max_in_flight: must be between 1 and 256"},
		{"dead_letter_path dir", `dead_letter_path = "DATADIR/web-dead.jsonl"`, `dead_letter_path = "/tmp"`, "t.toml:19: outputs.web.dead_letter_path: \"/tmp\" is a directory"},
		{"header name", `X-Team = "logs"`, `"X Team" = "logs"`, "t.toml:20: outputs.web.headers: \"X Team\" is not a valid header name"},
		{"password_file missing", `password_file = "SECRET"`, `password_file = "/nonexistent/pw"`, "t.toml:21: outputs.web.auth.password_file: cannot read secret file"},
		{"password and file", `password_file = "SECRET"`, `password_file = "SECRET", password = "x"`, "t.toml:21: outputs.web.auth.password_file: password is set too"},
		{"basic and bearer", `user = "shipper",`, `user = "shipper", bearer_token = "t",`, "t.toml:21: outputs.web.auth.bearer_token: basic auth"},
		{"auth unknown key", `user = "shipper",`, `username = "shipper",`, "t.toml:21: outputs.web.auth.username: unknown key"},
		{"ca_file", `ca_file = "CAFILE"`, `ca_file = "/nonexistent/ca.pem"`, "t.toml:22: outputs.web.tls.ca_file: open /nonexistent/ca.pem"},
		{"cert without key", `ca_file = "CAFILE"`, `cert_file = "CAFILE"`, "t.toml:22: outputs.web.tls.key_file: required with cert_file"},
		{"tls unknown key", `insecure_skip_verify = false`, `verify = false`, "t.toml:22: outputs.web.tls.verify: unknown key"},
		{"labels on elasticsearch", `pipeline = "access"`, `labels = ["x"]`, "t.toml:16: outputs.web.labels: only used with format = \"loki\""},
		{"bad label", `labels = ["service", "level"]`, `labels = ["service.name"]`, "t.toml:29: outputs.loki.labels: \"service.name\" is not a valid Loki label name"},
		{"bad static label", `static_labels = { job = "tailship" }`, `static_labels = { "the job" = "tailship" }`, "t.toml:30: outputs.loki.static_labels: \"the job\" is not a valid"},
		{"no labels", "labels = [\"service\", \"level\"]\nstatic_labels = { job = \"tailship\" }", `static_labels = {}`, "outputs.loki.labels: Loki needs at least one label"},
		{"static_labels on elasticsearch", `pipeline = "access"`, `static_labels = { a = "b" }`, "t.toml:16: outputs.web.static_labels: only used with format = \"loki\""},
		{"tenant on ndjson", `format = "loki"`, `format = "ndjson"`, "t.toml:31: outputs.loki.tenant_id: only used with format = \"loki\""},
		{"pipeline on loki", `format = "loki"`, "format = \"loki\"\npipeline = \"p\"", "t.toml:29: outputs.loki.pipeline: only used with format = \"elasticsearch\""},
		{"password without user", `user = "shipper", `, ``, "t.toml:21: outputs.web.auth.user: required with a password"},
		{"empty bearer_token_file", `user = "shipper", password_file = "SECRET"`, `bearer_token_file = "EMPTY"`, "t.toml:21: outputs.web.auth.bearer_token_file: "},
		{"bad client certificate", `ca_file = "CAFILE"`, `cert_file = "CAFILE", key_file = "CAFILE"`, "t.toml:22: outputs.web.tls.cert_file: cannot load the client certificate and key"},
		{"timeout zero", `timeout = "10s"`, `timeout = "0s"`, "t.toml:17: outputs.web.timeout: must be above 0"},
		{"reserved header", `X-Team = "logs"`, `Content-Encoding = "br"`, "t.toml:20: outputs.web.headers: Content-Encoding is set by the output"},
		{"tls on http url", `tenant_id = "${TENANT:-team-a}"`, `tenant_id = "a"` + "\ntls = { enabled = true }", "t.toml:32: outputs.loki.tls: TLS settings with an http:// url"},
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
		})
	}
}
