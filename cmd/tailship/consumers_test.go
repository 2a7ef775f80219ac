package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/config/configtest"
)

// TestExampleConsumerInputsCheck: the commented consumer inputs of the
// example, uncommented as its instructions say and routed to an output,
// validate, so the documentation of their keys stays true.
func TestExampleConsumerInputsCheck(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "# ---------------------------------------------------------------- consumer inputs"
	const end = "# ---------------------------------------------------------------- outputs"
	head, rest, ok := strings.Cut(string(data), marker)
	section, tail, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatal("config.example.toml has no consumer inputs section before the outputs")
	}
	var b strings.Builder
	b.WriteString(head)
	for _, l := range strings.Split(section, "\n") {
		if r, ok := strings.CutPrefix(l, "# "); ok {
			l = r
		}
		b.WriteString(l + "\n")
	}
	b.WriteString(end + tail)
	b.WriteString("\n[outputs.consumed]\ntype = \"stdout\"\ninputs = [\"events\", \"jetstream\", \"syslog\", \"rabbit\", \"queue\", \"pipe\"]\n")

	dir := t.TempDir()
	secret := filepath.Join(dir, "password")
	os.WriteFile(secret, []byte("pw\n"), 0o600)
	ca := configtest.NewCA(t)
	cert := ca.Server()
	var certPEM []byte
	for _, der := range cert.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	doc := strings.NewReplacer(
		"/run/secrets/kafka-password", secret,
		"/etc/tailship/ca.pem", ca.CAFile,
		"/etc/tailship/server.pem", certFile,
		"/etc/tailship/server-key.pem", keyFile,
	).Replace(b.String())
	path := filepath.Join(dir, "consumers.toml")
	os.WriteFile(path, []byte(doc), 0o644)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	code, out, errOut := runCLI("check", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "ok (7 inputs, 3 outputs)") {
		t.Errorf("stdout = %q", out)
	}
}
