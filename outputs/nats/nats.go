// Package nats is the NATS JetStream output: every event becomes one
// message, published to a subject named per event from a template, and
// counts as delivered once the stream that holds the subject acknowledged
// storing it.
//
// # Delivery and order
//
// A batch is published asynchronously, in order, on one connection, and
// the output waits for every acknowledgement (at most ack_timeout). The
// connection does not buffer while it is down (the client's reconnect
// buffer is off): a publish then fails at once and the rest of the batch is
// not sent, so the server has at most a prefix of the batch that was on the
// wire. From the first message that failed or went unacknowledged, the rest
// of the batch is retried by the runner, in order, even the messages
// acknowledged after it: a message the server stored whose acknowledgement
// was lost is then stored twice (at least once), and no message overtakes
// an earlier one of its file. Unless msg_id = false, every message carries
// a Nats-Msg-Id that stays the same across retries (a random prefix per
// output instance, then the event's source, chunk and place in it), so a
// stream drops the second copy of a message it stored within its
// duplicate window (2 minutes unless the stream says otherwise): retries
// after a cut connection store nothing twice, unless they come later than
// that window or after the agent restarted. The first message of a batch is sent alone
// and acknowledged before the rest, so a batch meets a missing stream (or
// a server that cannot store) with nothing sent behind it; only a server
// that refuses a message in the middle of a batch and stores later ones
// (a stream limit reached and lifted at that moment) can still put a
// retried message after later ones. A message larger than the server's
// max_payload, or than the stream's max_msg_size, is rejected permanently
// (dead-lettered); publishing the batch goes on without it.
//
// The output connects on the first batch, so an agent starts while NATS is
// down, and reconnects by itself after that.
package nats

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

func init() {
	pipeline.RegisterOutput("nats", func() pipeline.OutputConfig { return DefaultConfig() })
}

// DefaultConfig returns the nats output's defaults.
func DefaultConfig() *Config {
	return &Config{
		OutputSettings: pipeline.DefaultOutputSettings(),
		URL:            "nats://127.0.0.1:4222",
		Format:         codec.FormatRaw,
		AckTimeout:     config.Dur(10 * time.Second),
		ConnectTimeout: config.Dur(5 * time.Second),
		Name:           "tailship",
		MsgID:          true,
	}
}

// Config is [outputs.NAME] with type = "nats".
type Config struct {
	pipeline.OutputSettings
	// URL is one server or a comma-separated list: nats://host:4222
	// (tls:// for TLS).
	URL string `toml:"url"`
	// Subject is a template: literals, %{field}, %Y %m %d %H (UTC).
	Subject         string          `toml:"subject"`
	Format          string          `toml:"format"` // raw | json: the message body
	AckTimeout      config.Duration `toml:"ack_timeout"`
	ConnectTimeout  config.Duration `toml:"connect_timeout"`
	Name            string          `toml:"name"` // the connection name the server shows
	User            string          `toml:"user"`
	Password        string          `toml:"password"`
	PasswordFile    string          `toml:"password_file"`
	Token           string          `toml:"token"`
	TokenFile       string          `toml:"token_file"`
	CredentialsFile string          `toml:"credentials_file"` // a .creds file (JWT and NKey seed)
	TLS             config.TLS      `toml:"tls"`
	// MsgID sets Nats-Msg-Id on every message, for the stream's
	// de-duplication of retried messages.
	MsgID bool `toml:"msg_id"`
}

// Validate checks the keys of the nats output; the loader validates the
// common output keys through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if c.URL == "" {
		add("url", "required: nats://host:4222")
	}
	for _, s := range strings.Split(c.URL, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		u, err := url.Parse(s)
		switch {
		case err != nil:
			add("url", "%s", redact(err.Error(), s))
		case u.Scheme != "nats" && u.Scheme != "tls":
			add("url", "want nats://host:port or tls://host:port, got %q", redactURL(s))
		case u.Host == "":
			add("url", "%q names no host", redactURL(s))
		}
	}
	if c.Subject == "" {
		add("subject", "required (a subject, or a template such as \"logs.%%{service}\")")
	} else if t, err := template.Parse(c.Subject); err != nil {
		add("subject", "%v", err)
	} else if err := checkSubject(t); err != nil {
		add("subject", "%v", err)
	}
	switch c.Format {
	case codec.FormatRaw, codec.FormatJSON:
	default:
		add("format", "must be %q or %q, got %q", codec.FormatRaw, codec.FormatJSON, c.Format)
	}
	if c.AckTimeout.D() <= 0 {
		add("ack_timeout", "must be above 0")
	}
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("password_file", "password is set too; use one")
	}
	if (c.Password != "" || c.PasswordFile != "") && c.User == "" {
		add("user", "required with a password")
	}
	if c.User != "" && c.Password == "" && c.PasswordFile == "" {
		add("password", "required with user (or password_file)")
	}
	if c.Token != "" && c.TokenFile != "" {
		add("token_file", "token is set too; use one")
	}
	kinds := 0
	for _, set := range []bool{c.User != "", c.Token != "" || c.TokenFile != "", c.CredentialsFile != ""} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		add("credentials_file", "user/password, token and credentials_file are different ways to authenticate; use one")
	}
	for key, path := range map[string]string{"password_file": c.PasswordFile, "token_file": c.TokenFile, "credentials_file": c.CredentialsFile} {
		if path == "" {
			continue
		}
		// Only the path and the OS error: never the contents.
		if s, err := config.ReadSecret(path); err != nil {
			add(key, "%v", err)
		} else if s == "" {
			add(key, "%s is empty", path)
		}
	}
	if c.TLS.Configured() && !c.TLS.Enabled {
		add("tls.enabled", "TLS settings are given but tls.enabled is false")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// checkSubject checks the fixed text of a subject template: tokens
// separated by '.', none empty, no wildcard (a publish names one subject).
func checkSubject(t template.Template) error {
	if lit := t.Shape(""); strings.ContainsAny(lit, " \t\r\n*>") {
		return fmt.Errorf("%q: a subject to publish to has no spaces or wildcards (* >)", lit)
	}
	// An empty token shows as "..", or a dot at either end; a field
	// expands to at least "unknown", so it is never empty.
	s := t.Shape("x")
	if strings.Contains(s, "..") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
		return fmt.Errorf("%q has an empty token (a subject is tokens separated by single dots)", t.String())
	}
	return nil
}

// foldSubject writes a field value into one subject token: dots (which
// would split it), wildcards and whitespace become '_'.
func foldSubject(dst []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch c {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// redactURL drops the password from a URL for errors and logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}

func redact(msg, rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return strings.ReplaceAll(msg, p, "xxxxx")
		}
	}
	return msg
}

// Build implements pipeline.OutputConfig. Secret files are read here,
// once; the connection is made by the first batch.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	subject, err := template.Parse(c.Subject)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	var shown, secrets []string
	for _, s := range strings.Split(c.URL, ",") {
		if s = strings.TrimSpace(s); s != "" {
			shown = append(shown, redactURL(s))
			if u, err := url.Parse(s); err == nil && u.User != nil {
				if p, ok := u.User.Password(); ok {
					secrets = append(secrets, p)
				} else {
					secrets = append(secrets, u.User.Username()) // a token in the URL
				}
			}
		}
	}
	o := &output{
		log:        log, // the agent names the output in it
		url:        c.URL,
		shown:      strings.Join(shown, ","),
		subject:    subject,
		json:       c.Format == codec.FormatJSON,
		ackTimeout: c.AckTimeout.D(),
		maxPending: c.Batch.MaxEvents * c.MaxInFlight,
		secrets:    secrets,
	}
	o.static, _ = subject.Literal()
	if c.MsgID {
		// Random per output instance: a restarted or reloaded agent numbers
		// its sources and chunks from the start again, and those ids must
		// not collide with the ones a stream still remembers.
		var nonce [9]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, fmt.Errorf("msg_id prefix: %w", err)
		}
		o.idPrefix = append(base64.RawURLEncoding.AppendEncode(nil, nonce[:]), '.')
	}
	o.opts = []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout.D()),
		// Publishes fail while disconnected instead of waiting in a
		// buffer, so what reaches the server is a prefix of the batch
		// (see the package doc).
		nats.ReconnectBufSize(-1),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(min(c.Retry.Max.D(), 2*time.Second)),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				o.log.Warn("nats connection lost; reconnecting", zap.String("url", o.shown), zap.Error(o.mask(err)))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			o.log.Info("nats reconnected", zap.String("server", redactURL(nc.ConnectedUrl())))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			o.log.Warn("nats error", zap.Error(o.mask(err)))
		}),
	}
	switch {
	case c.User != "":
		pw := c.Password
		if c.PasswordFile != "" {
			if pw, err = config.ReadSecret(c.PasswordFile); err != nil {
				return nil, fmt.Errorf("password_file: %w", err)
			}
		}
		o.secrets = append(o.secrets, pw)
		o.opts = append(o.opts, nats.UserInfo(c.User, pw))
	case c.Token != "" || c.TokenFile != "":
		tok := c.Token
		if c.TokenFile != "" {
			if tok, err = config.ReadSecret(c.TokenFile); err != nil {
				return nil, fmt.Errorf("token_file: %w", err)
			}
		}
		o.secrets = append(o.secrets, tok)
		o.opts = append(o.opts, nats.Token(tok))
	case c.CredentialsFile != "":
		o.opts = append(o.opts, nats.UserCredentials(c.CredentialsFile))
	}
	if c.TLS.Enabled {
		// The server name is each server's host unless tls.server_name
		// says otherwise: nats.go fills it in per connection.
		tc, err := c.TLS.ClientConfig("")
		if err != nil {
			return nil, err
		}
		o.opts = append(o.opts, nats.Secure(tc))
	}
	return o, nil
}

type output struct {
	log        *zap.Logger
	url        string
	shown      string // url without passwords
	opts       []nats.Option
	subject    template.Template
	static     string
	json       bool
	ackTimeout time.Duration
	maxPending int
	secrets    []string
	idPrefix   []byte // "<random>." for Nats-Msg-Id; nil: no ids

	mu     sync.Mutex // guards nc and js; Writes hold it only to connect
	nc     *nats.Conn
	js     jetstream.JetStream
	closed bool
}

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	js, err := o.connect()
	if err != nil {
		return err
	}
	n := b.Len()
	futures := make([]jetstream.PubAckFuture, n)
	fails := make([]error, n)
	rejected := make([]bool, n)
	now := time.Now()
	stop := n // publishing stopped here: this message and the rest were not sent
	var body, subj, msgID []byte
	i := 0
	probed := false
loop:
	for id, ev := range b.WithIDs() {
		src := id.Source
		// Each message owns its bytes: the client keeps them until
		// acknowledged, which can be after a forced stop returns.
		if o.json {
			body = codec.AppendJSON(body[:0], src, ev)
		} else {
			body = append(body[:0], ev.Raw...)
		}
		subject := o.static
		if subject == "" {
			subj = o.subject.Append(subj[:0], src, ev, now, foldSubject)
			subject = string(subj)
		}
		m := &nats.Msg{Subject: subject, Data: append([]byte(nil), body...)}
		if o.idPrefix != nil {
			msgID = id.AppendText(append(msgID[:0], o.idPrefix...))
			m.Header = nats.Header{nats.MsgIdHdr: []string{string(msgID)}}
		}
		f, err := js.PublishMsgAsync(m, noRetry...)
		if err != nil {
			fails[i] = err
			if errors.Is(err, nats.ErrMaxPayload) {
				rejected[i] = true
				i++
				continue
			}
			stop = i // disconnected, or too many pending: the rest waits for the retry
			break loop
		}
		futures[i] = f
		if !probed {
			// The first message goes alone: when no stream holds the
			// subject, or the server cannot store, the batch stops here
			// rather than have its later messages stored by a stream
			// that appears (or recovers) while the earlier ones fail.
			probed = true
			select {
			case <-f.Ok():
			case err := <-f.Err():
				fails[i] = err
				if rejected[i] = tooLarge(err); !rejected[i] {
					stop = i + 1
					futures[i] = nil
					break loop
				}
				probed = false // the next message goes alone instead
			case <-ctx.Done():
				return ctx.Err()
			}
			futures[i] = nil
		}
		i++
	}
	// Wait for the acknowledgements of what was sent; the async
	// publisher's ack_timeout fails a future that no answer resolves.
	for k := 0; k < stop; k++ {
		f := futures[k]
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			fails[k] = err
			rejected[k] = tooLarge(err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return o.settle(fails, rejected, stop, n)
}

// noRetry turns off the client's own re-publishing of a message that
// found no stream: it re-sends that message alone, later, so it would
// overtake nothing but be overtaken by the rest of the batch. The runner
// retries the batch's tail instead, in order.
var noRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

// settle reports the result: from the first message that failed for a
// reason other than its size (or was not sent), every message not rejected
// is retried, so none overtakes an earlier one.
func (o *output) settle(fails []error, rejected []bool, stop, n int) error {
	pe := &pipeline.PartialError{}
	var first error
	retryFrom := stop
	for k := range stop {
		if fails[k] != nil && !rejected[k] {
			retryFrom = k
			break
		}
	}
	for k := range n {
		switch {
		case rejected[k] && fails[k] != nil:
			pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: k, Reason: o.mask(fails[k]).Error()})
			if first == nil {
				first = fails[k]
			}
		case k >= retryFrom:
			pe.Retry = append(pe.Retry, k)
			if first == nil && fails[k] != nil {
				first = fails[k]
			}
		}
	}
	if len(pe.Retry) == 0 && len(pe.Rejected) == 0 {
		return nil
	}
	if first == nil {
		first = errors.New("not sent")
	}
	err := o.mask(fmt.Errorf("publish to %s: %d of %d messages to retry, %d rejected; first error: %w",
		o.shown, len(pe.Retry), n, len(pe.Rejected), first))
	if len(pe.Rejected) == 0 && len(pe.Retry) == n {
		return err
	}
	pe.Err = err
	return pe
}

// tooLarge reports an acknowledgement error that resending cannot fix: the
// message exceeds the stream's max_msg_size.
func tooLarge(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// connect returns the JetStream context, connecting on first use; after
// that the client reconnects by itself.
func (o *output) connect() (jetstream.JetStream, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, errors.New("nats output is closed")
	}
	if o.js != nil {
		return o.js, nil
	}
	nc, err := nats.Connect(o.url, o.opts...)
	if err != nil {
		return nil, o.mask(fmt.Errorf("connect to %s: %w", o.shown, err))
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(max(o.maxPending, 1)),
		jetstream.WithPublishAsyncTimeout(o.ackTimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream on %s: %w", o.shown, err)
	}
	o.nc, o.js = nc, js
	o.log.Info("connected", zap.String("server", redactURL(nc.ConnectedUrl())))
	return js, nil
}

// mask keeps passwords and tokens out of an error's text.
func (o *output) mask(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := msg
	for _, s := range o.secrets {
		if s != "" {
			masked = strings.ReplaceAll(masked, s, "***")
		}
	}
	if masked == msg {
		return err
	}
	return errors.New(masked)
}

// Close implements pipeline.Output. No Write runs during it; messages of a
// write abandoned on a forced stop are dropped with the connection.
func (o *output) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	if o.nc != nil {
		o.nc.Close()
		o.nc, o.js = nil, nil
	}
	return nil
}
