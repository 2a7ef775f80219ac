package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tailship/tailship/config/configtest"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestExampleConfigChecks(t *testing.T) {
	// The example must validate as shipped; check creates its data_dir, so
	// run it from a copy of the repository root's files in a temp dir.
	dir := t.TempDir()
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.example.toml")
	os.WriteFile(path, data, 0o644)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	code, out, errOut := runCLI("check", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "ok (1 inputs, 2 outputs)") {
		t.Errorf("stdout = %q", out)
	}
}

func TestCheckReportsFileLineKey(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]struct{ doc, want string }{
		"misspelled key": {
			"[agent]\ndata_dir = \"" + dir + "\"\n[inputs.a]\ntype = \"file\"\ninclude = [\"/x/*.log\"]\nstart_att = \"end\"\n",
			"bad.toml:6: inputs.a.start_att: unknown key"},
		"wrong type": {
			"[agent]\ndata_dir = \"" + dir + "\"\nworkers = \"four\"\n",
			"bad.toml:3: agent.workers:"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "bad.toml")
			os.WriteFile(path, []byte(tc.doc), 0o644)
			code, _, errOut := runCLI("check", "--config", path)
			if code != exitConfig {
				t.Fatalf("exit %d, want %d", code, exitConfig)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not contain %q", errOut, tc.want)
			}
		})
	}
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "tailship ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, _ := runCLI("frobnicate"); code != exitConfig {
		t.Errorf("unknown command exit %d", code)
	}
	if code, _, errOut := runCLI("check", "--config", "/nonexistent/tailship.toml"); code != exitConfig || !strings.Contains(errOut, "/nonexistent/tailship.toml") {
		t.Errorf("missing file: %d %q", code, errOut)
	}
}

// TestExampleNetworkOutputsCheck: the commented network outputs of the
// example, uncommented as its instructions say, validate too, so the
// documentation of every key stays true.
func TestExampleNetworkOutputsCheck(t *testing.T) {
	data, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "# ---------------------------------------------------------------- network outputs"
	head, tail, ok := strings.Cut(string(data), marker)
	if !ok {
		t.Fatal("config.example.toml has no network outputs section")
	}
	var b strings.Builder
	b.WriteString(head)
	for _, l := range strings.Split(tail, "\n") {
		if rest, ok := strings.CutPrefix(l, "# "); ok {
			l = rest
		}
		b.WriteString(l + "\n")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "password")
	os.WriteFile(secret, []byte("pw\n"), 0o600)
	doc := strings.ReplaceAll(b.String(), "/run/secrets/collector-password", secret)
	doc = strings.ReplaceAll(doc, "/etc/tailship/ca.pem", configtest.NewCA(t).CAFile)
	path := filepath.Join(dir, "network.toml")
	os.WriteFile(path, []byte(doc), 0o644)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	code, out, errOut := runCLI("check", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	// Every output table of the example, whatever outputs it documents.
	outputs := 0
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(l, "[outputs.") && !strings.Contains(l, "].") {
			outputs++
		}
	}
	if !strings.Contains(out, fmt.Sprintf("ok (1 inputs, %d outputs)", outputs)) || outputs < 9 {
		t.Errorf("stdout = %q", out)
	}
}

// TestExampleConsumerInputsCheck: the commented consumer inputs of the
// example, uncommented, validate: every key documented there exists.
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
	dir := t.TempDir()
	doc := strings.ReplaceAll(b.String(), "/etc/tailship/ca.pem", configtest.NewCA(t).CAFile)
	path := filepath.Join(dir, "consumers.toml")
	os.WriteFile(path, []byte(doc), 0o644)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	code, out, errOut := runCLI("check", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "ok (4 inputs,") {
		t.Errorf("stdout = %q", out)
	}
}
