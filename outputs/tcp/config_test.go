package tcp_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/config/configtest"
	_ "github.com/tailship/tailship/inputs/file"
	"github.com/tailship/tailship/outputs/tcp"
)

const good = `
[agent]
data_dir = "DATADIR"

[inputs.app]
type = "file"
include = ["/tmp/x/*.log"]

[outputs.central]
type = "tcp"
inputs = ["app"]
address = "127.0.0.1:5170"
compression = "zstd"
connect_timeout = "3s"
write_timeout = "10s"
tls = { enabled = true, ca_file = "CAFILE" }

[outputs.syslog]
type = "tcp"
inputs = ["app"]
address = "syslog.example.com:6514"
framing = "octet_counted"
syslog = { facility = "local3", severity = "notice", app_name = "billing", hostname = "web-1", msg_id = "ACCESS" }
`

func load(t *testing.T, doc string) (*agent.Config, error) {
	t.Helper()
	dir := t.TempDir()
	doc = strings.ReplaceAll(doc, "DATADIR", filepath.Join(dir, "data"))
	doc = strings.ReplaceAll(doc, "CAFILE", configtest.NewCA(t).CAFile)
	return agent.Load("t.toml", []byte(doc), func(string) (string, bool) { return "", false })
}

func TestConfigGood(t *testing.T) {
	cfg, err := load(t, good)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Outputs["central"].(*tcp.Config)
	if c.Framing != "newline" || c.Compression != "zstd" || !c.TLS.Enabled || c.WriteTimeout.D().String() != "10s" {
		t.Errorf("central: %+v", c)
	}
	s := cfg.Outputs["syslog"].(*tcp.Config)
	if s.Syslog.Facility != "local3" || s.Syslog.Hostname != "web-1" || s.ConnectTimeout.D().String() != "10s" {
		t.Errorf("syslog: %+v", s)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct{ name, old, new, want string }{
		{"address missing", `address = "127.0.0.1:5170"`, ``, "outputs.central.address: required"},
		{"address without port", `address = "127.0.0.1:5170"`, `address = "127.0.0.1"`, "t.toml:12: outputs.central.address: want host:port"},
		{"compression", `compression = "zstd"`, `compression = "lz4"`, "t.toml:13: outputs.central.compression: must be one of"},
		{"connect_timeout", `connect_timeout = "3s"`, `connect_timeout = "0"`, "t.toml:14: outputs.central.connect_timeout: must be above 0"},
		{"write_timeout", `write_timeout = "10s"`, `write_timeout = "soon"`, "t.toml:15: outputs.central.write_timeout: invalid duration"},
		{"tls ca_file", `ca_file = "CAFILE"`, `ca_file = "/nonexistent.pem"`, "t.toml:16: outputs.central.tls.ca_file: open /nonexistent.pem"},
		{"tls not enabled", `enabled = true, `, ``, "t.toml:16: outputs.central.tls.enabled: TLS settings are given"},
		{"max_in_flight", `write_timeout = "10s"`, "write_timeout = \"10s\"\nmax_in_flight = 4", "t.toml:16: outputs.central.max_in_flight: tcp writes one connection"},
		{"format", `compression = "zstd"`, "compression = \"zstd\"\nformat = \"xml\"", "t.toml:14: outputs.central.format: must be \"raw\" or \"json\""},
		{"framing", `framing = "octet_counted"`, `framing = "lines"`, "t.toml:22: outputs.syslog.framing: must be"},
		{"compression with syslog", `framing = "octet_counted"`, "framing = \"octet_counted\"\ncompression = \"gzip\"", "t.toml:23: outputs.syslog.compression: syslog receivers expect plain text"},
		{"facility", `facility = "local3"`, `facility = "local9"`, "t.toml:23: outputs.syslog.syslog.facility: unknown facility \"local9\""},
		{"severity", `severity = "notice"`, `severity = "8"`, "t.toml:23: outputs.syslog.syslog.severity: unknown severity"},
		{"app_name", `app_name = "billing"`, `app_name = "my app"`, "t.toml:23: outputs.syslog.syslog.app_name: \"my app\": only printable ASCII"},
		{"hostname", `hostname = "web-1"`, `hostname = "web 1"`, "t.toml:23: outputs.syslog.syslog.hostname:"},
		{"msg_id", `msg_id = "ACCESS"`, `msg_id = ""`, "t.toml:23: outputs.syslog.syslog.msg_id: must not be empty"},
		{"syslog unknown key", `msg_id = "ACCESS"`, `msgid = "ACCESS"`, "t.toml:23: outputs.syslog.syslog.msgid: unknown key"},
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
