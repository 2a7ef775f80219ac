// Package config holds the value types that plugin config structs share
// (durations, sizes) and the error shape that lets the loader in package agent
// point at the file, line and key of a bad setting. Loading the TOML file
// itself lives in package agent; this package is a leaf so that pipeline and
// every plugin can import it.
package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written as text ("500ms", "1m"). A bare integer
// is rejected: `timeout = 30` means nothing a reader can trust.
// It is a struct, not an integer kind, so that the TOML decoder cannot
// quietly take an integer as nanoseconds.
type Duration struct{ d time.Duration }

// Dur makes a Duration, for defaults in plugin configs.
func Dur(d time.Duration) Duration { return Duration{d} }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "0" {
		d.d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return &ValueError{Raw: s, Msg: fmt.Sprintf("invalid duration %q (want a number with a unit, like \"500ms\" or \"1m\")", s)}
	}
	if v < 0 {
		return &ValueError{Raw: s, Msg: fmt.Sprintf("invalid duration %q: must not be negative", s)}
	}
	d.d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.d.String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return d.d }

func (d Duration) String() string { return d.d.String() }

// Size is a byte count written as text ("64KiB", "5MiB", "1GB") or as a bare
// integer number of bytes.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

// ParseSize parses "64KiB", "5MiB", "1GB", "512" (bytes).
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" {
		return 0, &ValueError{Raw: s, Msg: fmt.Sprintf("invalid size %q (want a number with a unit, like \"64KiB\" or \"5MiB\")", s)}
	}
	if n < 0 {
		return 0, &ValueError{Raw: s, Msg: fmt.Sprintf("invalid size %q: must not be negative", s)}
	}
	return Size(n * float64(mult)), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

func (s Size) String() string {
	switch {
	case s >= 1<<30 && s%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", s>>30)
	case s >= 1<<20 && s%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", s>>20)
	case s >= 1<<10 && s%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", s>>10)
	}
	return fmt.Sprintf("%dB", int64(s))
}

// ValueError is a value that does not parse. It carries the raw text because
// the TOML decoder reports some of these without a position, and the loader
// finds the key by its value.
type ValueError struct {
	Raw string
	Msg string
}

func (e *ValueError) Error() string { return e.Msg }

// Error is a problem with one key of a plugin's config. Key is relative to the
// plugin's table ("include", "batch.max_bytes"); the loader prefixes the table
// path and adds file and line.
type Error struct {
	Key string
	Msg string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return e.Msg
	}
	return e.Key + ": " + e.Msg
}

// Errorf returns an *Error for key.
func Errorf(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Prefix returns err with its key (or keys, for a joined error) placed under
// prefix, so nested structs can validate themselves and still name the full key.
func Prefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var errs []error
	for _, e := range Flatten(err) {
		var ce *Error
		if errors.As(e, &ce) {
			k := prefix
			if ce.Key != "" {
				k = prefix + "." + ce.Key
			}
			errs = append(errs, &Error{Key: k, Msg: ce.Msg})
		} else {
			errs = append(errs, &Error{Key: prefix, Msg: e.Error()})
		}
	}
	return errors.Join(errs...)
}

// Flatten unpacks errors.Join trees into a flat list.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}
