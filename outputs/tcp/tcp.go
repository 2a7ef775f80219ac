// Package tcp is the TCP output: it writes each batch to one long-lived
// connection, as newline-delimited lines (raw or json, optionally
// compressed) or as RFC 5424 syslog messages with octet-counting framing
// (RFC 6587) for syslog receivers; optionally over TLS.
//
// # Delivery, and the limit of plain TCP
//
// A batch counts as delivered once it has been written completely to a
// connection that was healthy when the write began. TCP has no
// application-level acknowledgement: a successful write means the bytes
// reached the kernel's send buffer, not the receiver's application. If the
// receiver crashes or drops the connection after that, what was still in
// the buffers (at most a few hundred KiB) is lost without the agent
// knowing. The output narrows that window: before each batch it checks that
// the receiver has not closed the connection (which also catches a receiver
// that restarted between batches), and a write that fails part-way is
// retried whole on a new connection, so lines of that batch can arrive
// twice. Use the http output when every line must be confirmed.
//
// # Reconnecting
//
// A failed dial or write closes the connection and returns the error; the
// runner retries with its backoff (retry.initial up to retry.max, full
// jitter), and the next attempt dials again. connect_timeout and
// write_timeout bound each attempt, so a receiver that stops reading does
// not hang the output.
//
// # Compression
//
// With framing = "newline", compression = gzip | zstd | snappy writes each
// batch as one complete gzip member, zstd frame or snappy stream; the
// receiver must expect a compressed stream (a connection's bytes decode as
// one stream with standard tools). Syslog receivers expect plain text, so
// octet_counted framing allows none.
package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// Framings.
const (
	FramingNewline      = "newline"
	FramingOctetCounted = "octet_counted"
)

func init() {
	pipeline.RegisterOutput("tcp", func() pipeline.OutputConfig { return DefaultConfig() })
}

// DefaultConfig returns the tcp output's defaults.
func DefaultConfig() *Config {
	return &Config{
		OutputSettings: pipeline.DefaultOutputSettings(),
		Settings:       codec.Settings{Format: codec.FormatRaw, Compression: codec.CompressionNone},
		Framing:        FramingNewline,
		ConnectTimeout: config.Dur(10 * time.Second),
		WriteTimeout:   config.Dur(30 * time.Second),
		Syslog:         Syslog{Facility: "user", Severity: "info", AppName: "tailship", MsgID: "-"},
	}
}

// Config is [outputs.NAME] with type = "tcp".
type Config struct {
	pipeline.OutputSettings
	codec.Settings
	Address        string          `toml:"address"` // host:port
	Framing        string          `toml:"framing"` // newline | octet_counted
	ConnectTimeout config.Duration `toml:"connect_timeout"`
	WriteTimeout   config.Duration `toml:"write_timeout"`
	Syslog         Syslog          `toml:"syslog"`
	TLS            config.TLS      `toml:"tls"`

	// dial replaces net.Dialer in tests (to shrink socket buffers).
	dial func(ctx context.Context, addr string) (net.Conn, error)
}

// Syslog is [outputs.NAME.syslog], the RFC 5424 header fields used with
// framing = "octet_counted".
type Syslog struct {
	Facility string `toml:"facility"` // kern, user, ..., local0..local7, or 0..23
	Severity string `toml:"severity"` // emerg ... debug, or 0..7
	AppName  string `toml:"app_name"`
	Hostname string `toml:"hostname"` // default: os.Hostname()
	MsgID    string `toml:"msg_id"`
}

var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14, "solaris-cron": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

var severities = map[string]int{
	"emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4, "notice": 5, "info": 6, "debug": 7,
}

func lookup(names map[string]int, v string, max int) (int, bool) {
	if n, ok := names[v]; ok {
		return n, true
	}
	n, err := strconv.Atoi(v)
	return n, err == nil && n >= 0 && n <= max
}

// headerField checks an RFC 5424 header field: printable US-ASCII without
// spaces, at most max characters.
func headerField(s string, max int) error {
	if s == "" {
		return errors.New("must not be empty (\"-\" means none)")
	}
	if len(s) > max {
		return fmt.Errorf("at most %d characters, got %d", max, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return fmt.Errorf("%q: only printable ASCII without spaces", s)
		}
	}
	return nil
}

// Validate checks the keys of the tcp output; the loader validates the
// common output keys through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if c.Address == "" {
		add("address", "required: host:port of the receiver")
	} else if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
		add("address", "want host:port, got %q", c.Address)
	}
	errs = append(errs, c.Settings.Validate())
	switch c.Framing {
	case FramingNewline:
	case FramingOctetCounted:
		if c.Compression != codec.CompressionNone {
			add("compression", "syslog receivers expect plain text: octet_counted framing allows only \"none\"")
		}
		if _, ok := lookup(facilities, c.Syslog.Facility, 23); !ok {
			add("syslog.facility", "unknown facility %q (kern, user, daemon, ..., local0..local7, or 0..23)", c.Syslog.Facility)
		}
		if _, ok := lookup(severities, c.Syslog.Severity, 7); !ok {
			add("syslog.severity", "unknown severity %q (emerg, alert, crit, err, warning, notice, info, debug, or 0..7)", c.Syslog.Severity)
		}
		if err := headerField(c.Syslog.AppName, 48); err != nil {
			add("syslog.app_name", "%v", err)
		}
		if err := headerField(c.Syslog.MsgID, 32); err != nil {
			add("syslog.msg_id", "%v", err)
		}
		if c.Syslog.Hostname != "" {
			if err := headerField(c.Syslog.Hostname, 255); err != nil {
				add("syslog.hostname", "%v", err)
			}
		}
	default:
		add("framing", "must be %q or %q, got %q", FramingNewline, FramingOctetCounted, c.Framing)
	}
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	if c.WriteTimeout.D() <= 0 {
		add("write_timeout", "must be above 0")
	}
	if c.MaxInFlight != 1 {
		// One connection is one ordered stream; batches in flight would
		// only queue on it.
		add("max_in_flight", "tcp writes one connection; must be 1")
	}
	if c.TLS.Configured() && !c.TLS.Enabled {
		add("tls.enabled", "TLS settings are given but tls.enabled is false")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// Build implements pipeline.OutputConfig. It does not connect: the first
// batch does, so an agent starts even while its receiver is down.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	enc, err := codec.NewEncoder(c.Settings)
	if err != nil {
		return nil, err
	}
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	o := &output{
		log:          log,
		addr:         c.Address,
		enc:          enc,
		json:         c.Format == codec.FormatJSON,
		writeTimeout: c.WriteTimeout.D(),
		dial:         c.dial,
	}
	if o.dial == nil {
		d := &net.Dialer{Timeout: c.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
		o.dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	if c.TLS.Enabled {
		host, _, _ := net.SplitHostPort(c.Address)
		if o.tls, err = c.TLS.ClientConfig(host); err != nil {
			return nil, err
		}
		o.connectTimeout = c.ConnectTimeout.D()
	}
	if c.Framing == FramingOctetCounted {
		s := c.Syslog
		fac, _ := lookup(facilities, s.Facility, 23)
		sev, _ := lookup(severities, s.Severity, 7)
		host := s.Hostname
		if host == "" {
			if host, err = os.Hostname(); err != nil || headerField(host, 255) != nil {
				host = "-"
			}
		}
		o.syslog = &syslogHeader{pri: fac*8 + sev, hostname: host, appName: s.AppName, procID: strconv.Itoa(os.Getpid()), msgID: s.MsgID}
	}
	return o, nil
}

type output struct {
	log            *zap.Logger
	addr           string
	enc            *codec.Encoder
	json           bool
	syslog         *syslogHeader // nil: newline framing
	tls            *tls.Config
	connectTimeout time.Duration
	writeTimeout   time.Duration
	dial           func(ctx context.Context, addr string) (net.Conn, error)

	mu     sync.Mutex // one batch at a time on the one connection
	conn   net.Conn
	buf    []byte // syslog frames
	closed bool
}

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("tcp output is closed")
	}
	var payload []byte
	if o.syslog != nil {
		o.buf = o.syslog.appendFrames(o.buf[:0], b, time.Now(), o.json)
		payload = o.buf
	} else {
		var err error
		if payload, err = o.enc.Encode(b); err != nil {
			return pipeline.Permanent(fmt.Errorf("encode: %w", err))
		}
	}
	if len(payload) == 0 {
		return nil
	}
	if o.conn != nil && !healthy(o.conn) {
		o.log.Warn("receiver closed the connection; reconnecting before the next batch", zap.String("address", o.addr))
		o.drop()
	}
	if o.conn == nil {
		if err := o.connect(ctx); err != nil {
			return err
		}
	}
	// The deadline bounds a receiver that stops reading; cancelling ctx
	// (a forced stop) ends the write at once by moving it to the past.
	o.conn.SetWriteDeadline(time.Now().Add(o.writeTimeout))
	conn := o.conn
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := o.conn.Write(payload)
	stop()
	if err != nil {
		o.drop()
		return fmt.Errorf("write to %s: %w", o.addr, err)
	}
	return nil
}

func (o *output) connect(ctx context.Context) error {
	conn, err := o.dial(ctx, o.addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.addr, err)
	}
	if o.tls != nil {
		hctx, cancel := context.WithTimeout(ctx, o.connectTimeout)
		defer cancel()
		tc := tls.Client(conn, o.tls)
		if err := tc.HandshakeContext(hctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls handshake with %s: %w", o.addr, config.ExplainTLSError(err))
		}
		conn = tc
	}
	o.conn = conn
	o.log.Info("connected", zap.String("address", o.addr), zap.Bool("tls", o.tls != nil))
	return nil
}

func (o *output) drop() {
	if o.conn != nil {
		o.conn.Close()
		o.conn = nil
	}
}

// Close implements pipeline.Output.
func (o *output) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.conn == nil {
		return nil
	}
	err := o.conn.Close()
	o.conn = nil
	if err != nil {
		return fmt.Errorf("close connection to %s: %w", o.addr, err)
	}
	return nil
}

// syslogHeader is the constant part of every RFC 5424 message.
type syslogHeader struct {
	pri                              int
	hostname, appName, procID, msgID string
	msg                              []byte // scratch for a json message
}

// appendFrames appends one octet-counted RFC 5424 message per event:
// "LEN <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG". The message
// is the raw line, or with format = "json" the event as JSON; structured
// data is left empty ("-").
func (h *syslogHeader) appendFrames(dst []byte, b *pipeline.Batch, now time.Time, json bool) []byte {
	var head []byte
	head = append(head, '<')
	head = strconv.AppendInt(head, int64(h.pri), 10)
	head = append(head, ">1 "...)
	head = now.UTC().AppendFormat(head, "2006-01-02T15:04:05.000000Z07:00")
	head = append(head, ' ')
	head = append(head, h.hostname...)
	head = append(head, ' ')
	head = append(head, h.appName...)
	head = append(head, ' ')
	head = append(head, h.procID...)
	head = append(head, ' ')
	head = append(head, h.msgID...)
	head = append(head, " - "...)
	for src, ev := range b.All() {
		msg := ev.Raw
		if json {
			h.msg = codec.AppendJSON(h.msg[:0], src, ev)
			msg = h.msg
		}
		dst = strconv.AppendInt(dst, int64(len(head)+len(msg)), 10)
		dst = append(dst, ' ')
		dst = append(dst, head...)
		dst = append(dst, msg...)
	}
	return dst
}
