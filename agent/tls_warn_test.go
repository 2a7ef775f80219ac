package agent_test

import (
	"strings"
	"testing"

	_ "github.com/tailship/tailship/outputs/amqp"
	_ "github.com/tailship/tailship/outputs/http"
	_ "github.com/tailship/tailship/outputs/redis"
	_ "github.com/tailship/tailship/outputs/tcp"
)

// insecure_skip_verify = true is accepted but warned about, with file, line
// and key, for every output that has a tls table; verification that is on
// (the default) gets no warning.
func TestInsecureSkipVerifyWarns(t *testing.T) {
	const outputs = `
[outputs.web]
type = "http"
inputs = ["app"]
url = "https://127.0.0.1:9/"
tls = { insecure_skip_verify = true }

[outputs.sys]
type = "tcp"
inputs = ["app"]
address = "127.0.0.1:9"
tls = { enabled = true, insecure_skip_verify = true }

[outputs.cache]
type = "redis"
inputs = ["app"]
address = "127.0.0.1:9"
key = "logs"
tls = { enabled = true, insecure_skip_verify = true }

[outputs.mq]
type = "amqp"
inputs = ["app"]
url = "amqps://guest:guest@127.0.0.1:9/"
routing_key = "logs"
exchange_declare = "none"
tls = { insecure_skip_verify = true }

[outputs.verified]
type = "http"
inputs = ["app"]
url = "https://127.0.0.1:9/"
`
	cfg, err := load(t, good+outputs, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, w := range cfg.Warnings {
		if strings.HasSuffix(w.Key, "tls.insecure_skip_verify") {
			got[w.Key] = w.String()
		}
	}
	for _, name := range []string{"web", "sys", "cache", "mq"} {
		key := "outputs." + name + ".tls.insecure_skip_verify"
		w, ok := got[key]
		if !ok {
			t.Errorf("no warning for %s; warnings %v", key, cfg.Warnings)
			continue
		}
		if !strings.HasPrefix(w, "t.toml:") || !strings.Contains(w, "certificate verification is off") {
			t.Errorf("warning %q does not name file:line or say what is off", w)
		}
		delete(got, key)
	}
	if len(got) != 0 {
		t.Errorf("unexpected TLS warnings: %v", got)
	}
}
