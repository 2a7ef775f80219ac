package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// ReadSecret reads a secret file (password_file, url_file), trimming one
// trailing newline (and a CR before it), as secret mounts usually have one.
func ReadSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file: %w", err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	return strings.TrimSuffix(s, "\r"), nil
}

// MaskURL returns the URL with its password replaced, for logs and errors.
// A URL that does not parse is masked by hand, since its parse error is
// shown to the user.
func MaskURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "(unparsable url)"
	}
	authority := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority = rest[:i]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return raw
	}
	user, _, hasPW := strings.Cut(authority[:at], ":")
	if !hasPW {
		return raw
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}

// RedactURL removes the URL's password (and the URL itself, which holds
// it) from s, an error message that may quote either.
func RedactURL(s, rawURL string) string {
	if rawURL == "" {
		return s
	}
	s = strings.ReplaceAll(s, rawURL, MaskURL(rawURL))
	if pw := urlPassword(rawURL); pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}

func urlPassword(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		pw, _ := u.User.Password()
		return pw
	}
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return ""
	}
	_, pw, _ := strings.Cut(rest[:at], ":")
	return pw
}
