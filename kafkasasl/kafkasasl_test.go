package kafkasasl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	good := filepath.Join(dir, "pw")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	for _, tc := range []struct {
		name string
		c    Config
		want string // "" = valid; else a key the error names
	}{
		{"none", Config{}, ""},
		{"scram from a file", Config{Mechanism: ScramSHA512, Username: "u", PasswordFile: good}, ""},
		{"no mechanism", Config{Username: "u", Password: "p"}, "mechanism"},
		{"unknown mechanism", Config{Mechanism: "GSSAPI", Username: "u", Password: "p"}, "mechanism"},
		{"no user", Config{Mechanism: Plain, Password: "p"}, "username"},
		{"no password", Config{Mechanism: Plain, Username: "u"}, "password"},
		{"both passwords", Config{Mechanism: Plain, Username: "u", Password: "p", PasswordFile: good}, "password_file"},
		{"empty file", Config{Mechanism: Plain, Username: "u", PasswordFile: empty}, "password_file"},
		{"missing file", Config{Mechanism: Plain, Username: "u", PasswordFile: filepath.Join(dir, "nope")}, "password_file"},
	} {
		err := tc.c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v does not name %s", tc.name, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("%s: error carries the password: %v", tc.name, err)
		}
	}
	m, pw, err := (&Config{Mechanism: ScramSHA256, Username: "u", PasswordFile: good}).Auth()
	if err != nil || pw != "s3cret" || m.Name() != ScramSHA256 {
		t.Fatalf("Auth: %v %q %v", m, pw, err)
	}
	if m, _, err := (&Config{}).Auth(); m != nil || err != nil {
		t.Fatalf("Auth without sasl: %v %v", m, err)
	}
}
