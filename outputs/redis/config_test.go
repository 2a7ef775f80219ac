package redis_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/outputs/redis"
)

const good = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]

[outputs.queue]
type = "redis"
inputs = ["app"]
address = "127.0.0.1:6379"
mode = "stream"
key = "logs:%{service}"
max_len = 100000
password = "${REDIS_PASSWORD}"
format = "json"

[outputs.list]
type = "redis"
inputs = ["app"]
key = "logs"
password_file = "PWFILE"
`

func load(t *testing.T, doc string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	doc = strings.ReplaceAll(doc, "PWFILE", pw)
	env := func(k string) (string, bool) {
		if k == "REDIS_PASSWORD" {
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
	q := cfg.Outputs["queue"].(*redis.Config)
	if q.Mode != "stream" || q.Key != "logs:%{service}" || q.MaxLen != 100000 || q.Password != "from-env" || q.Format != "json" {
		t.Errorf("queue: %+v", q)
	}
	l := cfg.Outputs["list"].(*redis.Config)
	if l.Mode != "list" || l.Address != "127.0.0.1:6379" || l.StreamField != "message" || l.Timeout.D().String() != "30s" {
		t.Errorf("list defaults: %+v", l)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"bad mode", `mode = "stream"`, `mode = "queue"`, `t.toml:13: outputs.queue.mode: must be "list", "stream" or "pubsub", got "queue"`},
		{"empty key", `key = "logs:%{service}"`, `key = ""`, "t.toml:14: outputs.queue.key: required"},
		{"key missing", `key = "logs"`, ``, "outputs.list.key: required"},
		{"bad key template", `key = "logs:%{service}"`, `key = "logs:%{service"`, "t.toml:14: outputs.queue.key: %{ at 5 is not closed"},
		{"address without port", `address = "127.0.0.1:6379"`, `address = "127.0.0.1"`, "t.toml:12: outputs.queue.address: want host:port"},
		{"max_len outside stream", `mode = "stream"`, `mode = "list"`, "t.toml:15: outputs.queue.max_len: only applies to mode = \"stream\""},
		{"max_len negative", `max_len = 100000`, `max_len = -1`, "t.toml:15: outputs.queue.max_len: must not be negative"},
		{"password twice", `password = "${REDIS_PASSWORD}"`, "password = \"x\"\npassword_file = \"/etc/passwd\"", "outputs.queue.password_file: password is set too"},
		{"password_file missing", `password_file = "PWFILE"`, `password_file = "/nonexistent/pw"`, "t.toml:23: outputs.list.password_file: cannot read secret file"},
		{"format", `format = "json"`, `format = "xml"`, "t.toml:17: outputs.queue.format: must be \"raw\" or \"json\""},
		{"compression", `format = "json"`, "format = \"json\"\ncompression = \"lz4\"", "t.toml:18: outputs.queue.compression: must be one of"},
		{"tls not enabled", `format = "json"`, "format = \"json\"\ntls = { ca_file = \"/x.pem\" }", "outputs.queue.tls.enabled: TLS settings are given"},
		{"timeout", `format = "json"`, "format = \"json\"\ntimeout = \"0\"", "t.toml:18: outputs.queue.timeout: must be above 0"},
		{"unknown key", `max_len = 100000`, `maxlen = 100000`, "t.toml:15: outputs.queue.maxlen: unknown key"},
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
