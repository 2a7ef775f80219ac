package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(p, []byte("s3cret\r\n"), 0o600)
	if s, err := ReadSecret(p); err != nil || s != "s3cret" {
		t.Fatalf("ReadSecret = %q, %v", s, err)
	}
	if _, err := ReadSecret(p + "-missing"); err == nil {
		t.Fatal("missing file read")
	}
	for raw, want := range map[string]string{
		"amqp://u:s3cret@h:5672/v": "amqp://u:xxxxx@h:5672/v",
		"amqp://u@h/":              "amqp://u@h/",
		"amqp://u:s3cret@h:bad%/":  "amqp://u:xxxxx@h:bad%/",
	} {
		if got := MaskURL(raw); got != want {
			t.Errorf("MaskURL(%q) = %q, want %q", raw, got, want)
		}
	}
	msg := RedactURL(`dial "amqp://u:s3cret@h:bad%/": bad port; password s3cret`, "amqp://u:s3cret@h:bad%/")
	if strings.Contains(msg, "s3cret") {
		t.Fatalf("RedactURL left the password: %s", msg)
	}
}
