package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is the client side of TLS for network outputs: [outputs.NAME.tls].
// The server's certificate is verified against the system roots, or against
// CAFile when it is set; turning verification off takes an explicit
// insecure_skip_verify = true.
type TLS struct {
	// Enabled turns TLS on for outputs that do not have a URL scheme to say
	// it (tcp). The http output takes it from https:// instead.
	Enabled            bool   `toml:"enabled"`
	CAFile             string `toml:"ca_file"`   // PEM roots to trust instead of the system's
	CertFile           string `toml:"cert_file"` // PEM client certificate, with key_file
	KeyFile            string `toml:"key_file"`
	ServerName         string `toml:"server_name"` // overrides the name checked in the certificate
	InsecureSkipVerify bool   `toml:"insecure_skip_verify"`
}

// Configured reports whether any key other than enabled was set, so an
// output can point out TLS settings that would be ignored.
func (t *TLS) Configured() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Validate loads the files now, so that `tailship check` finds a missing or
// malformed certificate rather than the first connection attempt. Keys are
// relative to the tls table; wrap with Prefix("tls", ...).
func (t *TLS) Validate() error {
	var errs []error
	if t.CAFile != "" {
		if _, err := loadPool(t.CAFile); err != nil {
			errs = append(errs, Errorf("ca_file", "%v", err))
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		errs = append(errs, Errorf("key_file", "required with cert_file"))
	case t.CertFile == "" && t.KeyFile != "":
		errs = append(errs, Errorf("cert_file", "required with key_file"))
	case t.CertFile != "":
		// The key's contents must never reach an error message, and
		// crypto/tls does not put them there.
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			errs = append(errs, Errorf("cert_file", "cannot load the client certificate and key: %v", err))
		}
	}
	return errors.Join(errs...)
}

// ClientConfig builds the crypto/tls client config. serverName is the host
// to verify when server_name is not set.
func (t *TLS) ClientConfig(serverName string) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         serverName,
		InsecureSkipVerify: t.InsecureSkipVerify,
	}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// ExplainTLSError adds a hint to a handshake error that a user can act on:
// an unknown authority or a name mismatch is almost always a missing
// tls.ca_file or tls.server_name.
func ExplainTLSError(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w (the server's certificate is not signed by a trusted CA: set tls.ca_file to the CA that signed it)", err)
	case errors.As(err, &host):
		return fmt.Errorf("%w (the certificate does not name this host: fix the address or set tls.server_name)", err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%w (the server's certificate is not valid)", err)
	}
	return err
}
