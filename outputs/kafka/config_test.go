package kafka_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/config/configtest"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/outputs/kafka"
)

const good = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]

[outputs.events]
type = "kafka"
inputs = ["app"]
brokers = ["k1:9092", "k2:9092"]
topic = "logs-%{service}"
key_field = "host"
format = "json"
compression = "lz4"
delivery_timeout = "1m"
sasl = { mechanism = "SCRAM-SHA-512", username = "shipper", password_file = "SECRET" }
tls = { enabled = true, ca_file = "CAFILE" }

[outputs.plain]
type = "kafka"
inputs = ["app"]
brokers = ["127.0.0.1:9092"]
topic = "logs"
`

func load(t *testing.T, doc string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "pw")
	os.WriteFile(secret, []byte("pw\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	doc = strings.ReplaceAll(doc, "SECRET", secret)
	doc = strings.ReplaceAll(doc, "EMPTY", empty)
	doc = strings.ReplaceAll(doc, "CAFILE", configtest.NewCA(t).CAFile)
	env := map[string]string{"KAFKA_PW": "from-env"}
	return agent.Load("t.toml", []byte(doc), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(t, good)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Outputs["events"].(*kafka.Config)
	if len(c.Brokers) != 2 || c.Topic != "logs-%{service}" || c.KeyField != "host" || c.Format != "json" ||
		c.Compression != "lz4" || c.DeliveryTimeout.D().String() != "1m0s" || c.SASL.Mechanism != "SCRAM-SHA-512" || !c.TLS.Enabled {
		t.Errorf("events: %+v", c)
	}
	p := cfg.Outputs["plain"].(*kafka.Config)
	if p.Compression != "zstd" || p.Acks != "all" || !p.Idempotent || p.Format != "raw" || p.KeyField != "" ||
		p.MaxMessageBytes != 1000012 || p.ClientID != "tailship" {
		t.Errorf("defaults: %+v", p)
	}
}

func TestConfigPasswordFromEnv(t *testing.T) {
	doc := strings.Replace(good, `password_file = "SECRET"`, `password = "${KAFKA_PW}"`, 1)
	cfg, err := load(t, doc)
	if err != nil {
		t.Fatal(err)
	}
	if pw := cfg.Outputs["events"].(*kafka.Config).SASL.Password; pw != "from-env" {
		t.Fatalf("password %q", pw)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"brokers missing", `brokers = ["k1:9092", "k2:9092"]`, ``, "outputs.events.brokers: required"},
		{"broker without port", `brokers = ["k1:9092", "k2:9092"]`, `brokers = ["k1"]`, "t.toml:12: outputs.events.brokers: want host:port, got \"k1\""},
		{"topic missing", `topic = "logs-%{service}"`, ``, "outputs.events.topic: required"},
		{"topic template", `topic = "logs-%{service}"`, `topic = "logs-%{service"`, "t.toml:13: outputs.events.topic: %{ at 5 is not closed"},
		{"topic characters", `topic = "logs-%{service}"`, `topic = "logs/%{service}"`, "t.toml:13: outputs.events.topic: \"logs/\": a topic name has only"},
		{"format", `format = "json"`, `format = "avro"`, "t.toml:15: outputs.events.format: must be \"raw\" or \"json\""},
		{"compression", `compression = "lz4"`, `compression = "brotli"`, "t.toml:16: outputs.events.compression: must be one of"},
		{"acks", `compression = "lz4"`, "compression = \"lz4\"\nacks = \"some\"", "t.toml:17: outputs.events.acks: must be"},
		{"acks with idempotent", `compression = "lz4"`, "compression = \"lz4\"\nacks = \"leader\"", "t.toml:17: outputs.events.acks: the idempotent producer needs acks = \"all\""},
		{"delivery_timeout", `delivery_timeout = "1m"`, `delivery_timeout = "100ms"`, "t.toml:17: outputs.events.delivery_timeout: must be at least 1s"},
		{"max_message_bytes", `delivery_timeout = "1m"`, "delivery_timeout = \"1m\"\nmax_message_bytes = 10", "t.toml:18: outputs.events.max_message_bytes: must be between"},
		{"sasl mechanism", `mechanism = "SCRAM-SHA-512"`, `mechanism = "GSSAPI"`, "t.toml:18: outputs.events.sasl.mechanism: must be"},
		{"sasl username", `username = "shipper", `, ``, "t.toml:18: outputs.events.sasl.username: required"},
		{"sasl password missing", `, password_file = "SECRET"`, ``, "t.toml:18: outputs.events.sasl.password: required"},
		{"sasl both passwords", `password_file = "SECRET"`, `password_file = "SECRET", password = "x"`, "t.toml:18: outputs.events.sasl.password_file: password is set too"},
		{"sasl password file unreadable", `password_file = "SECRET"`, `password_file = "/nonexistent/pw"`, "t.toml:18: outputs.events.sasl.password_file: cannot read secret file"},
		{"sasl password file empty", `password_file = "SECRET"`, `password_file = "EMPTY"`, "is empty"},
		{"tls not enabled", `enabled = true, `, ``, "t.toml:19: outputs.events.tls.enabled: TLS settings are given"},
		{"tls ca_file", `ca_file = "CAFILE"`, `ca_file = "/nonexistent.pem"`, "t.toml:19: outputs.events.tls.ca_file: open /nonexistent.pem"},
		{"unknown key", `key_field = "host"`, `key = "host"`, "t.toml:14: outputs.events.key: unknown key"},
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

// TestConfigErrorHidesPassword: a bad config never quotes the password.
func TestConfigErrorHidesPassword(t *testing.T) {
	doc := strings.Replace(good, `password_file = "SECRET"`, `password = "hunter2-secret", password_file = "SECRET"`, 1)
	_, err := load(t, doc)
	if err == nil || strings.Contains(err.Error(), "hunter2-secret") {
		t.Fatalf("error %v", err)
	}
}
