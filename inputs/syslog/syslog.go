// Package syslog owns the syslog input: a TCP (optionally TLS) or UDP
// listener that receives RFC 5424 and RFC 3164 messages, framed by newlines
// or by octet counting (RFC 6587) over TCP and one per datagram over UDP,
// and emits them to the pipeline, parsed by parser = "syslog" by default.
//
// What it cannot guarantee: syslog has no acknowledgements, so a message
// the agent has read is acknowledged to nobody; a crash loses what was
// read and not yet delivered. Over TCP backpressure works by not reading
// the socket, so the sender's buffers fill and it slows down or drops by
// its own rules. Over UDP the kernel drops datagrams when the agent
// cannot keep up; on Linux those drops are counted (SO_RXQ_OVFL).
package syslog

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// Config is [inputs.NAME] with type = "syslog".
type Config struct {
	pipeline.InputSettings
	// Mode is the transport: tcp or udp.
	Mode    string `toml:"mode"`
	Address string `toml:"address"` // host:port to listen on
	// Framing is how TCP messages are delimited: auto (octet-counted when
	// a frame begins with a digit, newline-terminated otherwise), newline
	// or octet_counted.
	Framing string `toml:"framing"`
	// MaxConnections bounds the TCP connections served at once; further
	// clients wait in the kernel's accept queue until one closes.
	MaxConnections int `toml:"max_connections"`
	// IdleTimeout closes a TCP connection that sent nothing for this long;
	// 0 keeps it open.
	IdleTimeout config.Duration `toml:"idle_timeout"`
	// ReceiveBuffer sets the socket's kernel receive buffer (SO_RCVBUF),
	// which absorbs UDP bursts; 0 keeps the system default.
	ReceiveBuffer config.Size `toml:"receive_buffer"`
	// Metadata adds a "metadata" object (peer, protocol) to every event.
	Metadata bool      `toml:"metadata"`
	TLS      ServerTLS `toml:"tls"`
}

// ServerTLS is [inputs.NAME.tls]: TLS for the TCP listener. With
// client_ca_file set, clients must present a certificate it signed.
type ServerTLS struct {
	CertFile     string `toml:"cert_file"`
	KeyFile      string `toml:"key_file"`
	ClientCAFile string `toml:"client_ca_file"`
}

func (t *ServerTLS) enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

func (t *ServerTLS) config() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		// crypto/tls never puts the key's contents in the error.
		return nil, config.Errorf("cert_file", "cannot load the server certificate and key: %v", err)
	}
	c := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, config.Errorf("client_ca_file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, config.Errorf("client_ca_file", "%s holds no PEM certificate", t.ClientCAFile)
		}
		c.ClientCAs, c.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func init() {
	pipeline.RegisterInput("syslog", func() pipeline.InputConfig { return defaults() })
}

func defaults() *Config {
	s := pipeline.DefaultInputSettings()
	s.Parser = "syslog"
	return &Config{InputSettings: s, Mode: "tcp", Framing: "auto", MaxConnections: 256, Metadata: true}
}

// Validate checks the syslog input's own keys.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, f string, a ...any) { errs = append(errs, config.Errorf(key, f, a...)) }
	// Multiline and the cri/docker reassembly place checkpoints by byte
	// position in a line buffer; a message source's offsets are not bytes.
	if c.Multiline.Enabled() {
		add("multiline", "is for line sources (files): a syslog message is already one event")
	}
	if c.Parser == "cri" || c.Parser == "docker" {
		add("parser", "%q reassembles container runtime log lines in files; use json or none for messages", c.Parser)
	}
	switch c.Mode {
	case "tcp", "udp":
	default:
		add("mode", "must be \"tcp\" or \"udp\", got %q", c.Mode)
	}
	if c.Address == "" {
		add("address", "a host:port to listen on is required")
	} else if _, _, err := net.SplitHostPort(c.Address); err != nil {
		add("address", "%v", err)
	}
	switch c.Framing {
	case "auto", "newline", "octet_counted":
	default:
		add("framing", "must be \"auto\", \"newline\" or \"octet_counted\", got %q", c.Framing)
	}
	if c.MaxConnections < 1 {
		add("max_connections", "must be at least 1")
	}
	if c.IdleTimeout.D() < 0 {
		add("idle_timeout", "must not be negative")
	}
	if c.ReceiveBuffer < 0 {
		add("receive_buffer", "must not be negative")
	}
	if c.TLS.enabled() || c.TLS.ClientCAFile != "" {
		switch {
		case c.Mode == "udp":
			add("tls", "TLS needs mode = \"tcp\"")
		case c.TLS.CertFile == "" || c.TLS.KeyFile == "":
			add("tls.cert_file", "TLS needs both cert_file and key_file")
		default:
			if _, err := c.TLS.config(); err != nil {
				errs = append(errs, config.Prefix("tls", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Build implements pipeline.InputConfig.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	stats := bc.Stats
	if stats == nil {
		stats = &pipeline.Stats{}
	}
	in := &Input{cfg: *c, name: bc.Name, log: log, stats: stats, ready: make(chan struct{})}
	if c.TLS.enabled() {
		tc, err := c.TLS.config()
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		in.tls = tc
	}
	return in, nil
}

// Input is a running syslog listener.
type Input struct {
	cfg   Config
	name  string
	log   *zap.Logger
	stats *pipeline.Stats
	tls   *tls.Config
	ready chan struct{} // closed once the socket listens
	addr  net.Addr
}

// Addr waits until the input listens and returns its address (tests listen
// on port 0).
func (in *Input) Addr() net.Addr {
	<-in.ready
	return in.addr
}

// chunkBytes bounds what one chunk gathers before it is emitted.
const chunkBytes = 256 << 10

// flushAfter is how long a UDP reader waits for a further datagram to add
// to the chunk before it emits what it has.
const flushAfter = time.Millisecond
