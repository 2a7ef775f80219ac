// Package kafkasasl owns the sasl table of the kafka input and output
// ([inputs.NAME.sasl], [outputs.NAME.sasl]): its keys, their checks, and
// the franz-go mechanism they make. It sits apart from both so neither
// reaches into the other.
package kafkasasl

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tailship/tailship/config"
)

// Mechanisms.
const (
	Plain       = "PLAIN"
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
)

// Config is the sasl table. The mechanism is required with credentials:
// PLAIN sends the password as it is, so it is never chosen silently.
type Config struct {
	Mechanism    string `toml:"mechanism"` // PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
}

// Configured reports whether any key is set.
func (s *Config) Configured() bool {
	return s.Mechanism != "" || s.Username != "" || s.Password != "" || s.PasswordFile != ""
}

// Validate checks the keys; an empty table is valid (no SASL).
func (s *Config) Validate() error {
	if !s.Configured() {
		return nil
	}
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	switch s.Mechanism {
	case Plain, ScramSHA256, ScramSHA512:
	case "":
		add("mechanism", "required with SASL credentials: %q, %q or %q", Plain, ScramSHA256, ScramSHA512)
	default:
		add("mechanism", "must be %q, %q or %q, got %q", Plain, ScramSHA256, ScramSHA512, s.Mechanism)
	}
	if s.Username == "" {
		add("username", "required with sasl")
	}
	switch {
	case s.Password != "" && s.PasswordFile != "":
		add("password_file", "password is set too; use one")
	case s.Password == "" && s.PasswordFile == "":
		add("password", "required with sasl (or password_file)")
	case s.PasswordFile != "":
		// Only the path and the OS error: never the contents.
		if pw, err := config.ReadSecret(s.PasswordFile); err != nil {
			add("password_file", "%v", err)
		} else if pw == "" {
			add("password_file", "%s is empty", s.PasswordFile)
		}
	}
	return errors.Join(errs...)
}

// Auth returns the mechanism for a validated, configured table and the
// password it uses (callers mask it in errors); nil when not configured.
func (s *Config) Auth() (sasl.Mechanism, string, error) {
	if !s.Configured() {
		return nil, "", nil
	}
	pw := s.Password
	if s.PasswordFile != "" {
		var err error
		if pw, err = config.ReadSecret(s.PasswordFile); err != nil {
			return nil, "", fmt.Errorf("sasl.password_file: %w", err)
		}
	}
	return Mechanism(s.Mechanism, s.Username, pw), pw, nil
}

// Mechanism makes the named mechanism (PLAIN for an unknown name; Validate
// refuses those).
func Mechanism(name, user, pw string) sasl.Mechanism {
	switch name {
	case ScramSHA256:
		return scram.Auth{User: user, Pass: pw}.AsSha256Mechanism()
	case ScramSHA512:
		return scram.Auth{User: user, Pass: pw}.AsSha512Mechanism()
	}
	return plain.Auth{User: user, Pass: pw}.AsMechanism()
}
