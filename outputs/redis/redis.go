// Package redis is the Redis output: each batch goes to Redis in one
// pipeline, as RPUSH to a list, XADD to a stream, or PUBLISH to a pub/sub
// channel. One event is one list element, stream entry or message: the raw
// line, or with format = "json" the event as a JSON object.
//
// # Delivery
//
// A batch is delivered when Redis answered every command of its pipeline.
// When the connection breaks part-way, the commands already answered count
// as delivered and the rest are retried (a pipeline.PartialError), so a
// command that Redis executed but whose reply was lost is sent again: a
// retry can duplicate events (at least once). Server errors that retrying
// cannot fix (WRONGTYPE: the key holds another type) reject the events of
// that command, which go to the dead-letter file; the others (OOM, LOADING,
// READONLY during a failover, ...) are retried.
//
// Pub/sub is at most once by nature: Redis delivers a message only to the
// subscribers connected at that moment and keeps nothing, so a subscriber
// that is down or reconnecting misses what was published meanwhile, and
// tailship cannot know. Use mode = "stream" (or "list") when consumers must
// not miss events.
//
// # Reconnecting
//
// go-redis's own command retries are turned off so that the runner's
// backoff (retry.initial up to retry.max, with jitter) is the only retry
// policy: a broken connection is dropped from the pool, and the next
// attempt dials again. timeout bounds each attempt, so a paused or stalled
// server fails the attempt instead of hanging the output.
//
// # Compression
//
// Redis stores values as given and compresses nothing, so compression =
// gzip | zstd | snappy compresses each element or message on its own (a
// complete gzip member, zstd frame or snappy stream). That pays off only
// for large events (multiline records, big JSON documents); consumers must
// decompress.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

// Modes.
const (
	ModeList   = "list"
	ModeStream = "stream"
	ModePubSub = "pubsub"
)

func init() {
	pipeline.RegisterOutput("redis", func() pipeline.OutputConfig { return DefaultConfig() })
}

// DefaultConfig returns the redis output's defaults.
func DefaultConfig() *Config {
	return &Config{
		OutputSettings: pipeline.DefaultOutputSettings(),
		Settings:       codec.Settings{Format: codec.FormatRaw, Compression: codec.CompressionNone},
		Address:        "127.0.0.1:6379",
		Mode:           ModeList,
		StreamField:    "message",
		ConnectTimeout: config.Dur(10 * time.Second),
		Timeout:        config.Dur(30 * time.Second),
	}
}

// Config is [outputs.NAME] with type = "redis".
type Config struct {
	pipeline.OutputSettings
	codec.Settings
	Address string `toml:"address"` // host:port
	Mode    string `toml:"mode"`    // list | stream | pubsub
	// Key is the list, stream or channel, a template: %{field} (of the
	// event, else of its source), %Y %m %d %H (UTC), %%.
	Key          string `toml:"key"`
	DB           int    `toml:"db"`
	Username     string `toml:"username"` // Redis 6 ACL user; empty: the default user
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// MaxLen caps a stream with XADD MAXLEN ~ max_len (approximate
	// trimming, which Redis does in whole nodes, cheaply); 0 keeps all.
	MaxLen int64 `toml:"max_len"`
	// StreamField is the name of the entry field that holds the event.
	StreamField    string          `toml:"stream_field"`
	ConnectTimeout config.Duration `toml:"connect_timeout"`
	Timeout        config.Duration `toml:"timeout"` // per batch: write and replies
	TLS            config.TLS      `toml:"tls"`
}

// Validate checks the keys of the redis output; the loader validates the
// common output keys through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if c.Address == "" {
		add("address", "required: host:port of the Redis server")
	} else if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
		add("address", "want host:port, got %q", c.Address)
	}
	switch c.Mode {
	case ModeList, ModeStream, ModePubSub:
	default:
		add("mode", "must be %q, %q or %q, got %q", ModeList, ModeStream, ModePubSub, c.Mode)
	}
	if c.Key == "" {
		add("key", "required: the list, stream or channel to write to (a template, e.g. \"logs:%%{service}\")")
	} else if _, err := template.Parse(c.Key); err != nil {
		add("key", "%v", err)
	}
	errs = append(errs, c.Settings.Validate())
	if c.DB < 0 {
		add("db", "must not be negative")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("password_file", "password is set too; use one")
	}
	if c.PasswordFile != "" {
		if s, err := config.ReadSecret(c.PasswordFile); err != nil {
			add("password_file", "%v", err)
		} else if s == "" {
			add("password_file", "%s is empty", c.PasswordFile)
		}
	}
	if c.Username != "" && c.Password == "" && c.PasswordFile == "" {
		add("username", "needs password or password_file")
	}
	if c.MaxLen < 0 {
		add("max_len", "must not be negative")
	} else if c.MaxLen > 0 && c.Mode != ModeStream {
		add("max_len", "only applies to mode = \"stream\"")
	}
	if c.Mode == ModeStream && c.StreamField == "" {
		add("stream_field", "must not be empty")
	}
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	if c.Timeout.D() <= 0 {
		add("timeout", "must be above 0")
	}
	if c.TLS.Configured() && !c.TLS.Enabled {
		add("tls.enabled", "TLS settings are given but tls.enabled is false")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// Build implements pipeline.OutputConfig. It does not connect: the first
// batch does, so an agent starts even while Redis is down. The password
// file is read here, once.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	key, err := template.Parse(c.Key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	if _, err := codec.NewEncoder(c.Settings); err != nil {
		return nil, err
	}
	pw := c.Password
	if c.PasswordFile != "" {
		if pw, err = config.ReadSecret(c.PasswordFile); err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
	}
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	quietOnce.Do(func() { goredis.SetLogger(quiet{}) })
	opt := &goredis.Options{
		Addr:        c.Address,
		Username:    c.Username,
		Password:    pw,
		DB:          c.DB,
		ClientName:  "tailship",
		DialTimeout: c.ConnectTimeout.D(),
		// The batch's context carries timeout; go-redis's own read and
		// write deadlines follow it.
		ContextTimeoutEnabled: true,
		ReadTimeout:           c.Timeout.D(),
		WriteTimeout:          c.Timeout.D(),
		// The runner retries with backoff and knows what was delivered;
		// a retry inside go-redis would re-send a pipeline unseen.
		MaxRetries:    -1,
		DialerRetries: 1,
		// Batches go one (or max_in_flight) at a time.
		PoolSize:        c.MaxInFlight + 1,
		DisableIdentity: true,
		// No CLIENT MAINT_NOTIFICATIONS handshake, which servers before
		// Redis 8 refuse (and go-redis then logs).
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if bc.Name != "" {
		opt.ClientName = "tailship-" + sanitizeName(bc.Name)
	}
	if c.TLS.Enabled {
		host, _, _ := net.SplitHostPort(c.Address)
		var tc *tls.Config
		if tc, err = c.TLS.ClientConfig(host); err != nil {
			return nil, err
		}
		opt.TLSConfig = tc
	}
	o := &output{
		log:         log,
		addr:        c.Address,
		mode:        c.Mode,
		key:         key,
		codec:       c.Settings,
		scratch:     make(chan *scratch, c.MaxInFlight),
		json:        c.Format == codec.FormatJSON,
		compress:    c.Compression != codec.CompressionNone,
		maxLen:      c.MaxLen,
		streamField: c.StreamField,
		timeout:     c.Timeout.D(),
		client:      goredis.NewClient(opt),
	}
	if pw != "" {
		o.secrets = append(o.secrets, pw)
	}
	return o, nil
}

// quiet discards go-redis's own log lines (process-wide; go-redis has no
// per-client logger). Every failure they describe also comes back as the
// error of a batch, which the runner logs with the output's name.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once

// sanitizeName keeps a client name to what CLIENT SETNAME accepts (no
// spaces or newlines).
func sanitizeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

type output struct {
	log         *zap.Logger
	addr        string
	mode        string
	key         template.Template
	json        bool
	compress    bool
	maxLen      int64
	streamField string
	timeout     time.Duration
	client      *goredis.Client
	secrets     []string

	codec   codec.Settings
	scratch chan *scratch // free scratch, up to max_in_flight
}

// scratch is the per-batch memory: the encoded messages and their keys.
type scratch struct {
	enc  *codec.Encoder
	buf  []byte
	msgs []message
	keys []byte
}

type message struct {
	key        string
	start, end int // in buf
}

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	s := o.getScratch()
	defer o.putScratch(s)
	if err := o.encode(s, b); err != nil {
		return pipeline.Permanent(o.redact(err))
	}
	if len(s.msgs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	// cmds[i] covers the messages from first[i] up to first[i+1].
	pipe := o.client.Pipeline()
	var cmds []goredis.Cmder
	var first []int
	switch o.mode {
	case ModeList:
		// Consecutive events for one key go into one RPUSH, in order.
		for i := 0; i < len(s.msgs); {
			j := i + 1
			for j < len(s.msgs) && s.msgs[j].key == s.msgs[i].key {
				j++
			}
			vals := make([]any, 0, j-i)
			for _, m := range s.msgs[i:j] {
				vals = append(vals, s.buf[m.start:m.end])
			}
			cmds = append(cmds, pipe.RPush(ctx, s.msgs[i].key, vals...))
			first = append(first, i)
			i = j
		}
	case ModeStream:
		for i, m := range s.msgs {
			a := &goredis.XAddArgs{Stream: m.key, Values: []any{o.streamField, s.buf[m.start:m.end]}}
			if o.maxLen > 0 {
				a.MaxLen, a.Approx = o.maxLen, true
			}
			cmds = append(cmds, pipe.XAdd(ctx, a))
			first = append(first, i)
		}
	case ModePubSub:
		for i, m := range s.msgs {
			cmds = append(cmds, pipe.Publish(ctx, m.key, s.buf[m.start:m.end]))
			first = append(first, i)
		}
	}
	first = append(first, len(s.msgs))
	_, execErr := pipe.Exec(ctx)
	if execErr == nil {
		return nil
	}
	// Sort the commands' outcomes: answered, rejected for good, or to
	// send again.
	//
	// Once one command must be sent again, every later one is sent again
	// too, even if it was answered: the re-sent part then arrives in
	// order (after repeats of what got in after the failure), where
	// re-sending only the failed commands would put them after later
	// lines for good. A broken connection fails a suffix anyway.
	pe := &pipeline.PartialError{}
	var firstErr error
	resend := false
	for i, cmd := range cmds {
		err := cmd.Err()
		if err == nil && !resend {
			continue
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if err != nil && permanent(err) {
			for k := first[i]; k < first[i+1]; k++ {
				pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: k, Reason: fmt.Sprintf("%s to %q: %v", o.mode, s.msgs[k].key, o.redact(err))})
			}
			continue
		}
		resend = true
		for k := first[i]; k < first[i+1]; k++ {
			pe.Retry = append(pe.Retry, k)
		}
	}
	if firstErr == nil {
		firstErr = execErr
	}
	err := fmt.Errorf("redis %s to %s: %w", o.mode, o.addr, o.redact(config.ExplainTLSError(firstErr)))
	if len(pe.Rejected) == 0 && len(pe.Retry) == len(s.msgs) {
		// Nothing got through: an ordinary retry of the whole batch.
		return err
	}
	pe.Err = err
	return pe
}

// permanent reports a Redis reply error that the same command will get
// again: the key holds another type, or the value is over the server's
// limits. Connection errors, timeouts and transient states (OOM, LOADING,
// READONLY, BUSY, MASTERDOWN, TRYAGAIN) are retried, and so are NOAUTH,
// WRONGPASS and NOPERM: an operator fixes a password or an ACL without
// losing the events, which wait (backpressure) meanwhile.
func permanent(err error) bool {
	var re goredis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "WRONGTYPE") ||
		strings.Contains(msg, "exceeds maximum allowed size") ||
		strings.Contains(msg, "invalid bulk length")
}

// encode fills s with one message (and its expanded key) per event.
func (o *output) encode(s *scratch, b *pipeline.Batch) error {
	s.buf, s.msgs, s.keys = s.buf[:0], s.msgs[:0], s.keys[:0]
	now := time.Now()
	var static string
	staticKey := o.key.Static()
	if staticKey {
		static = string(o.key.Append(nil, nil, nil, now, nil))
	}
	prev := ""
	for src, ev := range b.All() {
		key := static
		if !staticKey {
			s.keys = o.key.Append(s.keys[:0], src, ev, now, nil)
			// Consecutive events usually share their key: share the
			// string too.
			if string(s.keys) == prev {
				key = prev
			} else {
				key = string(s.keys)
				prev = key
			}
		}
		start := len(s.buf)
		if o.json {
			s.buf = codec.AppendJSON(s.buf, src, ev)
		} else {
			s.buf = append(s.buf, ev.Raw...)
		}
		if o.compress {
			z, err := s.enc.Compress(s.buf[start:])
			if err != nil {
				return fmt.Errorf("compress: %w", err)
			}
			s.buf = append(s.buf[:start], z...)
		}
		s.msgs = append(s.msgs, message{key: key, start: start, end: len(s.buf)})
	}
	return nil
}

func (o *output) getScratch() *scratch {
	select {
	case s := <-o.scratch:
		return s
	default:
		// Each batch in flight needs an encoder of its own: they keep
		// state. The settings were checked at Build.
		enc, _ := codec.NewEncoder(o.codec)
		return &scratch{enc: enc}
	}
}

func (o *output) putScratch(s *scratch) {
	select {
	case o.scratch <- s:
	default:
	}
}

// redact removes the password from an error's text, in case a server or
// proxy echoes a command back.
func (o *output) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := msg
	for _, s := range o.secrets {
		masked = strings.ReplaceAll(masked, s, "xxxxx")
	}
	if masked == msg {
		return err
	}
	return errors.New(masked)
}

// Close implements pipeline.Output.
func (o *output) Close(context.Context) error {
	if err := o.client.Close(); err != nil {
		return fmt.Errorf("close redis client for %s: %w", o.addr, o.redact(err))
	}
	return nil
}
