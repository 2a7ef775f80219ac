// Package amqp is the AMQP 0-9-1 (RabbitMQ) output: each event is one
// message published to an exchange with a routing key, the raw line or with
// format = "json" the event as a JSON object, persistent by default.
//
// # Delivery
//
// The channel is in confirm mode: a batch is published message after
// message without waiting, then the output waits until the broker has
// confirmed every one (timeout bounds the wait). A message the broker
// nacks is retried; with mandatory = true, a message that no queue is bound
// for comes back (basic.return) and is dead-lettered (unroutable =
// "dead_letter", the default) or retried until a queue appears (unroutable
// = "retry"). Only the failed messages are sent again (a
// pipeline.PartialError). When the connection breaks, the messages not yet
// confirmed are sent again on a new connection, so a message the broker
// had taken before the break can arrive twice: delivery is at least once.
// Consumers that must not see repeats need to deduplicate.
//
// # Reconnecting
//
// The output owns its connection: it connects on the first batch, and a
// broken connection or channel (a broker restart, a connection closed by an
// operator, a channel error) is dropped, the batch fails, and the runner's
// backoff (retry.initial up to retry.max, with jitter) paces the next
// attempt, which dials again. amqp091-go's own recovery is not used.
//
// # Exchange
//
// exchange_declare = "declare" (the default) declares the exchange with
// exchange_type and exchange_durable on every connect, which succeeds when
// it already exists with the same settings; "passive" only checks that it
// exists (for users without the configure permission); "none" does
// neither. The default exchange ("") routes by queue name and cannot be
// declared.
//
// # Secrets and compression
//
// The URL's password (or the whole URL, from url_file) is never logged:
// errors show the URL with the password masked. AMQP has no compression of
// its own, so compression = gzip | zstd | snappy compresses each message
// body on its own and sets content_encoding to the codec's name; it pays
// off only for large events.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

// Exchange declaration modes and what to do with unroutable messages.
const (
	DeclareDeclare = "declare"
	DeclarePassive = "passive"
	DeclareNone    = "none"

	UnroutableDeadLetter = "dead_letter"
	UnroutableRetry      = "retry"
)

func init() {
	pipeline.RegisterOutput("amqp", func() pipeline.OutputConfig { return DefaultConfig() })
}

// DefaultConfig returns the amqp output's defaults.
func DefaultConfig() *Config {
	return &Config{
		OutputSettings:  pipeline.DefaultOutputSettings(),
		Settings:        codec.Settings{Format: codec.FormatRaw, Compression: codec.CompressionNone},
		ExchangeType:    "direct",
		ExchangeDeclare: DeclareDeclare,
		ExchangeDurable: true,
		Persistent:      true,
		Unroutable:      UnroutableDeadLetter,
		ConnectTimeout:  config.Dur(10 * time.Second),
		Timeout:         config.Dur(30 * time.Second),
		Heartbeat:       config.Dur(10 * time.Second),
	}
}

// Config is [outputs.NAME] with type = "amqp".
type Config struct {
	pipeline.OutputSettings
	codec.Settings
	// URL is amqp://user:password@host:5672/vhost, or amqps:// for TLS.
	URL     string `toml:"url"`
	URLFile string `toml:"url_file"` // the URL from a file (it holds the password)
	// Exchange is where messages go; "" is the default exchange, which
	// routes to the queue named by the routing key.
	Exchange        string `toml:"exchange"`
	ExchangeType    string `toml:"exchange_type"`    // direct | fanout | topic | headers, or a plugin's type
	ExchangeDeclare string `toml:"exchange_declare"` // declare | passive | none
	ExchangeDurable bool   `toml:"exchange_durable"`
	// RoutingKey is a template: %{field} (of the event, else of its
	// source), %Y %m %d %H (UTC), %%.
	RoutingKey string `toml:"routing_key"`
	Persistent bool   `toml:"persistent"` // delivery mode 2: queues that are durable keep messages over a restart
	// Mandatory asks the broker to return messages no queue takes.
	Mandatory      bool            `toml:"mandatory"`
	Unroutable     string          `toml:"unroutable"` // dead_letter | retry, with mandatory
	ContentType    string          `toml:"content_type"`
	ConnectTimeout config.Duration `toml:"connect_timeout"`
	Timeout        config.Duration `toml:"timeout"` // per batch: publish and confirms
	Heartbeat      config.Duration `toml:"heartbeat"`
	TLS            config.TLS      `toml:"tls"`
}

// Validate checks the keys of the amqp output; the loader validates the
// common output keys through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	raw, key := c.URL, "url"
	switch {
	case c.URL != "" && c.URLFile != "":
		add("url_file", "url is set too; use one")
		raw = ""
	case c.URLFile != "":
		key = "url_file"
		s, err := config.ReadSecret(c.URLFile)
		if err != nil {
			add(key, "%v", err)
		} else if s == "" {
			add(key, "%s is empty", c.URLFile)
		}
		raw = s
	case c.URL == "":
		add("url", "required: amqp://user:password@host:5672/vhost (or url_file)")
	}
	var scheme string
	if raw != "" {
		u, err := amqp.ParseURI(raw)
		if err != nil {
			add(key, "invalid: %v (want amqp://user:password@host:port/vhost or amqps://...)", redactString(err.Error(), raw))
		} else {
			scheme = u.Scheme
			if scheme == "amqp" && (c.TLS.Enabled || c.TLS.Configured()) {
				add("tls", "TLS settings with an amqp:// url; use amqps://")
			}
		}
	}
	if c.TLS.Enabled && scheme != "amqps" && scheme != "" {
		add("tls.enabled", "TLS comes from the amqps:// scheme")
	}
	switch c.ExchangeDeclare {
	case DeclareDeclare, DeclarePassive:
		if c.Exchange == "" {
			add("exchange_declare", "the default exchange (exchange = \"\") cannot be declared; use \"none\"")
		}
		if c.ExchangeType == "" {
			add("exchange_type", "must not be empty")
		}
	case DeclareNone:
	default:
		add("exchange_declare", "must be %q, %q or %q, got %q", DeclareDeclare, DeclarePassive, DeclareNone, c.ExchangeDeclare)
	}
	if strings.HasPrefix(c.Exchange, "amq.") && c.ExchangeDeclare == DeclareDeclare {
		// The broker refuses to declare amq.* (403); they always exist.
		add("exchange_declare", "%q is a built-in exchange: use \"passive\" or \"none\"", c.Exchange)
	}
	if c.RoutingKey != "" {
		if _, err := template.Parse(c.RoutingKey); err != nil {
			add("routing_key", "%v", err)
		}
	} else if c.Exchange == "" {
		add("routing_key", "required with the default exchange: it names the queue")
	}
	switch c.Unroutable {
	case UnroutableDeadLetter, UnroutableRetry:
	default:
		add("unroutable", "must be %q or %q, got %q", UnroutableDeadLetter, UnroutableRetry, c.Unroutable)
	}
	errs = append(errs, c.Settings.Validate())
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	if c.Timeout.D() <= 0 {
		add("timeout", "must be above 0")
	}
	if c.Heartbeat.D() < time.Second {
		// Heartbeats are what notices a broker that vanished without
		// closing the connection.
		add("heartbeat", "must be at least 1s")
	}
	if c.MaxInFlight != 1 {
		// One channel is one ordered stream of publishes and confirms.
		add("max_in_flight", "amqp publishes on one channel; must be 1")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// redactString removes the URL's password (and the URL itself, which
// holds it) from s.
func redactString(s, rawURL string) string {
	if rawURL == "" {
		return s
	}
	masked := config.MaskURL(rawURL)
	s = strings.ReplaceAll(s, rawURL, masked)
	if pw := password(rawURL); pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}

// password returns the password of a URL, parsed or not.
func password(raw string) string {
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

// Build implements pipeline.OutputConfig. It does not connect: the first
// batch does, so an agent starts even while the broker is down. url_file is
// read here, once.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	raw := c.URL
	if c.URLFile != "" {
		var err error
		if raw, err = config.ReadSecret(c.URLFile); err != nil {
			return nil, fmt.Errorf("url_file: %w", err)
		}
	}
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return nil, fmt.Errorf("url: %s", redactString(err.Error(), raw))
	}
	var key template.Template // nil: the routing key is ""
	if c.RoutingKey != "" {
		if key, err = template.Parse(c.RoutingKey); err != nil {
			return nil, fmt.Errorf("routing_key: %w", err)
		}
	}
	if _, err := codec.NewEncoder(c.Settings); err != nil {
		return nil, err
	}
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	name := "tailship"
	if bc.Name != "" {
		name += " " + bc.Name
	}
	cfg := amqp.Config{
		Heartbeat:  c.Heartbeat.D(),
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": name, "product": "tailship"},
	}
	if uri.Scheme == "amqps" {
		tc, err := c.TLS.ClientConfig(uri.Host)
		if err != nil {
			return nil, err
		}
		cfg.TLSClientConfig = tc
	}
	contentType := c.ContentType
	if contentType == "" {
		contentType = "text/plain"
		if c.Format == codec.FormatJSON {
			contentType = "application/json"
		}
	}
	o := &output{
		log:         log,
		dial:        amqp.DefaultDial(c.ConnectTimeout.D()),
		url:         raw,
		display:     config.MaskURL(raw),
		cfg:         cfg,
		exchange:    c.Exchange,
		exType:      c.ExchangeType,
		declare:     c.ExchangeDeclare,
		durable:     c.ExchangeDurable,
		key:         key,
		mandatory:   c.Mandatory,
		retryUnrout: c.Unroutable == UnroutableRetry,
		contentType: contentType,
		timeout:     c.Timeout.D(),
		json:        c.Format == codec.FormatJSON,
		maxBatch:    c.Batch.MaxEvents,
	}
	if c.Persistent {
		o.mode = amqp.Persistent
	} else {
		o.mode = amqp.Transient
	}
	if c.Compression != codec.CompressionNone {
		o.encoding = c.Compression
		o.enc, _ = codec.NewEncoder(c.Settings)
	}
	return o, nil
}

type output struct {
	log         *zap.Logger
	dial        func(network, addr string) (net.Conn, error)
	url         string // holds the password: never in logs or errors
	display     string // url with the password masked
	cfg         amqp.Config
	exchange    string
	exType      string
	declare     string
	durable     bool
	key         template.Template // nil: routing key ""
	mandatory   bool
	retryUnrout bool
	contentType string
	encoding    string // content_encoding; "" uncompressed
	enc         *codec.Encoder
	mode        uint8
	timeout     time.Duration
	json        bool
	maxBatch    int

	mu     sync.Mutex // one batch at a time on the one channel
	conn   *session
	closed bool
	buf    []byte
	keyBuf []byte
	msgs   []message
}

type message struct {
	key        string
	start, end int
	bad        string // why the broker cannot take it; not published
}

// session is one connection with its confirm-mode channel.
type session struct {
	conn *amqp.Connection
	raw  net.Conn // under conn (and its TLS)
	ch   *amqp.Channel
	// The connection's and the channel's end (a channel error, like a
	// 404 from a deleted exchange, ends the channel only). amqp091 sends
	// on each once and closes it.
	connClosed, chClosed chan *amqp.Error
	returns              chan amqp.Return
	batches              uint64 // batches published on ch
}

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("amqp output is closed")
	}
	if err := o.encode(b); err != nil {
		return pipeline.Permanent(err)
	}
	if len(o.msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if o.conn != nil {
		select {
		case e := <-o.conn.connClosed:
			o.log.Warn("connection to the broker was closed; reconnecting", zap.String("url", o.display), zap.String("reason", o.describe(e)))
			o.drop()
		case e := <-o.conn.chClosed:
			o.log.Warn("channel was closed by the broker; reconnecting", zap.String("url", o.display), zap.String("reason", o.describe(e)))
			o.drop()
		default:
		}
	}
	if o.conn == nil {
		if err := o.connect(); err != nil {
			return err
		}
	}
	s := o.conn
	// A broker under a resource alarm stops reading: a publish then
	// blocks in the socket write, which no context reaches. Closing the
	// socket when the batch's time is up ends it, and the connection.
	stop := context.AfterFunc(ctx, func() { s.raw.Close() })
	defer stop()

	// Publish everything, then wait: confirms arrive while later
	// messages are still being sent.
	confirms := make([]*amqp.DeferredConfirmation, 0, len(o.msgs))
	s.batches++
	batchID := strconv.FormatUint(s.batches, 10) + "-"
	var pubErr error
	for i, m := range o.msgs {
		if m.bad != "" {
			confirms = append(confirms, nil)
			continue
		}
		msg := amqp.Publishing{
			ContentType:     o.contentType,
			ContentEncoding: o.encoding,
			DeliveryMode:    o.mode,
			Timestamp:       time.Now(),
			// Names the message in a basic.return, which carries no
			// delivery tag.
			MessageId: batchID + strconv.Itoa(i),
			Body:      o.buf[m.start:m.end],
		}
		dc, err := s.ch.PublishWithDeferredConfirmWithContext(ctx, o.exchange, m.key, o.mandatory, false, msg)
		if err != nil {
			if ctx.Err() != nil {
				// The socket was closed under a blocked write.
				pubErr = fmt.Errorf("publish to %s: %d of %d messages sent when timeout (%v) passed; a broker that stops reading is usually under a resource alarm (memory or disk): %w", o.where(), i, len(o.msgs), o.timeout, o.redact(err))
			} else {
				pubErr = fmt.Errorf("publish to %s: %w", o.where(), o.redact(err))
			}
			break
		}
		confirms = append(confirms, dc)
	}

	// Wait for the confirms, taking the returns that precede them.
	returned := map[int]amqp.Return{}
	returns := s.returns
	var waitErr error
	for i := 0; i < len(confirms) && waitErr == nil; i++ {
		dc := confirms[i]
		if dc == nil {
			continue
		}
	wait:
		for {
			select {
			case r, ok := <-returns:
				if !ok {
					returns = nil
					continue
				}
				if i, ok := returnedIndex(r.MessageId, batchID); ok {
					returned[i] = r
				}
			case <-dc.Done():
				break wait
			case e := <-s.connClosed:
				waitErr = fmt.Errorf("waiting for confirms from %s: connection closed: %s", o.where(), o.describe(e))
				break wait
			case e := <-s.chClosed:
				waitErr = fmt.Errorf("waiting for confirms from %s: channel closed: %s", o.where(), o.describe(e))
				break wait
			case <-ctx.Done():
				waitErr = fmt.Errorf("waiting for confirms from %s: %d of %d messages unconfirmed after %v (an overloaded broker, or one under a resource alarm): %w", o.where(), len(confirms)-i, len(o.msgs), o.timeout, ctx.Err())
				break wait
			}
		}
	}
	for {
		// A return comes before its message's ack, so once the last
		// confirm is in, every return of the batch is in the buffer.
		select {
		case r, ok := <-s.returns:
			if ok {
				if i, ok := returnedIndex(r.MessageId, batchID); ok {
					returned[i] = r
				}
				continue
			}
		default:
		}
		break
	}

	// Once one message must be sent again, every later one of the batch
	// is sent again too, even if it was confirmed: the re-sent part then
	// arrives in order (after repeats of what got in after the failure),
	// where re-sending only the failed messages would put them after
	// later lines for good.
	pe := &pipeline.PartialError{}
	resend := false
	nacked := 0
	for i := range o.msgs {
		var retry bool
		var reject string
		switch {
		case o.msgs[i].bad != "":
			reject = o.msgs[i].bad
		case i >= len(confirms), !isDone(confirms[i]):
			retry = true // not published, or not confirmed
		case !confirms[i].Acked():
			retry = true // nacked, or the channel closed
			nacked++
		default:
			if r, ok := returned[i]; ok {
				if o.retryUnrout {
					retry = true
				} else {
					reject = fmt.Sprintf("unroutable: exchange %q returned the message with routing key %q: %d %s", r.Exchange, r.RoutingKey, r.ReplyCode, r.ReplyText)
				}
			}
		}
		switch {
		case reject != "":
			pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i, Reason: reject})
		case retry || resend:
			resend = true
			pe.Retry = append(pe.Retry, i)
		}
	}
	if pubErr != nil || waitErr != nil {
		// The channel's state is unknown: start over on a new
		// connection, which also ends any returns still on their way.
		o.drop()
	}
	if len(pe.Retry) == 0 && len(pe.Rejected) == 0 {
		return nil
	}
	var err error
	switch {
	case pubErr != nil:
		err = pubErr
	case waitErr != nil:
		err = waitErr
	case len(returned) > 0 && len(pe.Retry) > 0 && o.retryUnrout:
		err = fmt.Errorf("%d unroutable messages returned by %s (unroutable = \"retry\": sent again until a queue takes them)", len(returned), o.where())
	default:
		err = fmt.Errorf("%s: of %d messages %d nacked, %d returned unroutable, %d rejected; sending %d again", o.where(), len(o.msgs), nacked, len(returned), len(pe.Rejected), len(pe.Retry))
	}
	if len(pe.Rejected) == 0 && len(pe.Retry) == len(o.msgs) {
		return err // nothing got through: an ordinary retry
	}
	pe.Err = err
	return pe
}

// returnedIndex reads the index in the batch from a returned message's
// id, if the message is of this batch.
func returnedIndex(id, batchID string) (int, bool) {
	rest, ok := strings.CutPrefix(id, batchID)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(rest)
	return i, err == nil
}

func isDone(dc *amqp.DeferredConfirmation) bool {
	select {
	case <-dc.Done():
		return true
	default:
		return false
	}
}

func (o *output) where() string {
	if o.exchange == "" {
		return o.display + " (default exchange)"
	}
	return fmt.Sprintf("%s exchange %q", o.display, o.exchange)
}

func (o *output) describe(e *amqp.Error) string {
	if e == nil {
		return "closed"
	}
	return o.redact(e).Error()
}

func (o *output) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if masked := redactString(msg, o.url); masked != msg {
		return errors.New(masked)
	}
	return err
}

// connect dials, opens a channel in confirm mode and declares the
// exchange.
func (o *output) connect() error {
	var raw net.Conn
	cfg := o.cfg
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		c, err := o.dial(network, addr)
		raw = c
		return c, err
	}
	conn, err := amqp.DialConfig(o.url, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.display, o.redact(config.ExplainTLSError(err)))
	}
	s := &session{conn: conn, raw: raw}
	fail := func(what string, err error) error {
		s.close()
		return fmt.Errorf("%s on %s: %w", what, o.where(), o.redact(err))
	}
	if s.ch, err = conn.Channel(); err != nil {
		return fail("open channel", err)
	}
	switch o.declare {
	case DeclareDeclare:
		err = s.ch.ExchangeDeclare(o.exchange, o.exType, o.durable, false, false, false, nil)
	case DeclarePassive:
		err = s.ch.ExchangeDeclarePassive(o.exchange, o.exType, o.durable, false, false, false, nil)
	}
	if err != nil {
		return fail("declare exchange", err)
	}
	if err := s.ch.Confirm(false); err != nil {
		return fail("enable publisher confirms", err)
	}
	s.connClosed = conn.NotifyClose(make(chan *amqp.Error, 1))
	s.chClosed = s.ch.NotifyClose(make(chan *amqp.Error, 1))
	// amqp091 gives up on a listener that does not take a return within
	// 5s, and Write takes them only while it waits for confirms: room
	// for one per message of a batch means none is ever dropped.
	s.returns = s.ch.NotifyReturn(make(chan amqp.Return, o.maxBatch))
	o.conn = s
	o.log.Info("connected", zap.String("url", o.display), zap.String("exchange", o.exchange))
	return nil
}

func (o *output) drop() {
	if o.conn != nil {
		o.conn.close()
		o.conn = nil
	}
}

// close ends the session. A basic.return still on its way would block
// amqp091's reader (and with it the close handshake) on the returns
// channel, so it is drained until amqp091 closes it.
func (s *session) close() {
	var wg sync.WaitGroup
	if s.returns != nil {
		wg.Go(func() {
			for range s.returns {
			}
		})
	}
	s.conn.Close()
	if s.returns == nil {
		return
	}
	wg.Wait()
}

// encode fills o.buf and o.msgs with one message per event.
func (o *output) encode(b *pipeline.Batch) error {
	o.buf, o.msgs = o.buf[:0], o.msgs[:0]
	now := time.Now()
	static, staticKey := "", o.key == nil || o.key.Static()
	if o.key != nil && staticKey {
		static = string(o.key.Append(nil, nil, nil, now, nil))
	}
	prev := ""
	for src, ev := range b.All() {
		key := static
		if !staticKey {
			o.keyBuf = o.key.Append(o.keyBuf[:0], src, ev, now, nil)
			if string(o.keyBuf) == prev {
				key = prev
			} else {
				key = string(o.keyBuf)
				prev = key
			}
		}
		start := len(o.buf)
		if o.json {
			o.buf = codec.AppendJSON(o.buf, src, ev)
		} else {
			o.buf = append(o.buf, ev.Raw...)
		}
		if o.enc != nil {
			z, err := o.enc.Compress(o.buf[start:])
			if err != nil {
				return fmt.Errorf("compress: %w", err)
			}
			o.buf = append(o.buf[:start], z...)
		}
		m := message{key: key, start: start, end: len(o.buf)}
		if len(key) > 255 {
			// A routing key is an AMQP short string; amqp091 would
			// refuse the publish on every retry.
			m.bad = fmt.Sprintf("routing key of %d bytes: AMQP allows at most 255", len(key))
		}
		o.msgs = append(o.msgs, m)
	}
	return nil
}

// Close implements pipeline.Output.
func (o *output) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	o.drop()
	return nil
}
