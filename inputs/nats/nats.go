// Package nats owns the nats input: a JetStream durable pull consumer whose
// messages are acknowledged to the server, one by one, only once every
// output delivered them (and every message before them).
//
// Guarantees: at least once. A message not acknowledged within ack_wait,
// or held by an agent that stopped or crashed, is redelivered by the
// server; max_ack_pending bounds how many the input holds unacknowledged,
// which is also how a slow output slows consumption. Order follows the
// stream, except that a redelivered message comes after later ones.
package nats

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// Config is [inputs.NAME] with type = "nats".
type Config struct {
	pipeline.InputSettings
	Servers []string `toml:"servers"` // nats://host:port URLs
	Stream  string   `toml:"stream"`
	// Consumer is the durable consumer's name; the input creates it (or
	// updates it) unless create_consumer = false.
	Consumer       string   `toml:"consumer"`
	CreateConsumer bool     `toml:"create_consumer"`
	FilterSubjects []string `toml:"filter_subjects"`
	// DeliverPolicy is where a new consumer begins: all or new.
	DeliverPolicy string          `toml:"deliver_policy"`
	AckWait       config.Duration `toml:"ack_wait"`
	MaxAckPending int             `toml:"max_ack_pending"`
	// FetchBatch is how many messages one pull request asks for.
	FetchBatch int `toml:"fetch_batch"`
	// DrainTimeout is how long a stopping input waits for what it emitted
	// to be delivered, so it is acknowledged before the connection closes.
	DrainTimeout config.Duration `toml:"drain_timeout"`
	// Metadata adds a "metadata" object (subject, stream, stream_sequence,
	// consumer_sequence, delivered) to every event.
	Metadata     bool       `toml:"metadata"`
	User         string     `toml:"user"`
	Password     string     `toml:"password"`
	PasswordFile string     `toml:"password_file"`
	Token        string     `toml:"token"`
	TokenFile    string     `toml:"token_file"`
	TLS          config.TLS `toml:"tls"`
}

func init() {
	pipeline.RegisterInput("nats", func() pipeline.InputConfig { return defaults() })
}

func defaults() *Config {
	return &Config{
		InputSettings:  pipeline.DefaultInputSettings(),
		Servers:        []string{nats.DefaultURL},
		CreateConsumer: true,
		DeliverPolicy:  "all",
		AckWait:        config.Dur(time.Minute),
		MaxAckPending:  10000,
		FetchBatch:     500,
		DrainTimeout:   config.Dur(5 * time.Second),
		Metadata:       true,
	}
}

// Validate checks the nats input's own keys.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, f string, a ...any) { errs = append(errs, config.Errorf(key, f, a...)) }
	// Multiline and the cri/docker reassembly place checkpoints by byte
	// position in a line buffer; a message source's offsets are not bytes.
	if c.Multiline.Enabled() {
		add("multiline", "is for line sources (files): a NATS message is already one event")
	}
	if c.Parser == "cri" || c.Parser == "docker" {
		add("parser", "%q reassembles container runtime log lines in files; use json or none for messages", c.Parser)
	}
	if len(c.Servers) == 0 {
		add("servers", "at least one server URL is required")
	}
	if c.Stream == "" {
		add("stream", "the JetStream stream to consume is required")
	}
	if c.Consumer == "" {
		add("consumer", "a durable consumer name is required: acknowledgements are kept by it")
	}
	switch c.DeliverPolicy {
	case "all", "new":
	default:
		add("deliver_policy", "must be \"all\" or \"new\", got %q", c.DeliverPolicy)
	}
	if c.AckWait.D() < time.Second {
		add("ack_wait", "must be at least 1s")
	}
	if c.MaxAckPending < 1 {
		add("max_ack_pending", "must be at least 1")
	}
	if c.FetchBatch < 1 || c.FetchBatch > c.MaxAckPending {
		add("fetch_batch", "must be between 1 and max_ack_pending (%d)", c.MaxAckPending)
	}
	if c.DrainTimeout.D() < 0 {
		add("drain_timeout", "must not be negative")
	}
	if c.Password != "" && c.PasswordFile != "" {
		add("password_file", "password is set too; use one")
	}
	if c.Token != "" && c.TokenFile != "" {
		add("token_file", "token is set too; use one")
	}
	if c.User != "" && c.Password == "" && c.PasswordFile == "" {
		add("user", "needs password or password_file")
	}
	for key, path := range map[string]string{"password_file": c.PasswordFile, "token_file": c.TokenFile} {
		if path != "" {
			if _, err := readSecret(path); err != nil {
				add(key, "%v", err)
			}
		}
	}
	if c.TLS.Configured() || c.TLS.Enabled {
		errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	}
	return errors.Join(errs...)
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read secret file: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// Build implements pipeline.InputConfig.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	opts := []nats.Option{nats.Name("tailship " + bc.Name), nats.MaxReconnects(-1)}
	if c.User != "" {
		pw := c.Password
		if c.PasswordFile != "" {
			var err error
			if pw, err = readSecret(c.PasswordFile); err != nil {
				return nil, fmt.Errorf("password_file: %w", err)
			}
		}
		opts = append(opts, nats.UserInfo(c.User, pw))
	}
	if tok := c.Token; tok != "" || c.TokenFile != "" {
		if c.TokenFile != "" {
			var err error
			if tok, err = readSecret(c.TokenFile); err != nil {
				return nil, fmt.Errorf("token_file: %w", err)
			}
		}
		opts = append(opts, nats.Token(tok))
	}
	if c.TLS.Enabled || c.TLS.Configured() {
		tc, err := c.TLS.ClientConfig("")
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts = append(opts, nats.Secure(tc))
	}
	return &Input{cfg: *c, name: bc.Name, log: log, opts: opts}, nil
}

// Input is a running JetStream consumer.
type Input struct {
	cfg  Config
	name string
	log  *zap.Logger
	opts []nats.Option

	nc        *nats.Conn
	mu        sync.Mutex
	replies   []string // reply subjects of emitted, unacknowledged messages
	base      int64    // offset (message count) of replies[0]
	ackErrors int
}

// Run implements pipeline.Input.
func (in *Input) Run(ctx context.Context, e pipeline.Emitter) error {
	url := strings.Join(in.cfg.Servers, ",")
	nc, err := nats.Connect(url, in.opts...)
	if err != nil {
		return fmt.Errorf("connect to nats %s: %w", redact(url), err)
	}
	defer nc.Close()
	in.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	cons, err := in.consumer(ctx, js)
	if err != nil {
		return err
	}
	src := e.NewSource(fmt.Sprintf("%s/%s", in.cfg.Stream, in.cfg.Consumer), in.commit)
	err = in.consume(ctx, cons, e, src)
	deadline := time.Now().Add(in.cfg.DrainTimeout.D())
	for src.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Acks are published asynchronously; flush them before closing.
	if ferr := nc.FlushTimeout(5 * time.Second); ferr != nil {
		in.log.Warn("nats flush of acknowledgements failed; the server redelivers them", zap.Error(ferr))
	}
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// redact drops user:password from server URLs so errors do not carry them.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		if at := strings.LastIndexByte(u, '@'); at > 0 {
			if s := strings.Index(u, "://"); s >= 0 && s < at {
				parts[i] = u[:s+3] + "REDACTED" + u[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

func (in *Input) consumer(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	var (
		cons jetstream.Consumer
		err  error
	)
	if in.cfg.CreateConsumer {
		cc := jetstream.ConsumerConfig{
			Durable:        in.cfg.Consumer,
			AckPolicy:      jetstream.AckExplicitPolicy,
			AckWait:        in.cfg.AckWait.D(),
			MaxAckPending:  in.cfg.MaxAckPending,
			FilterSubjects: in.cfg.FilterSubjects,
			DeliverPolicy:  jetstream.DeliverAllPolicy,
		}
		if in.cfg.DeliverPolicy == "new" {
			cc.DeliverPolicy = jetstream.DeliverNewPolicy
		}
		cons, err = js.CreateOrUpdateConsumer(ctx, in.cfg.Stream, cc)
	} else {
		cons, err = js.Consumer(ctx, in.cfg.Stream, in.cfg.Consumer)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s of stream %s: %w", in.cfg.Consumer, in.cfg.Stream, err)
	}
	// AckAll is refused: a message redelivered after ack_wait comes after
	// later ones, and acknowledging those would acknowledge it unread.
	if p := cons.CachedInfo().Config.AckPolicy; p != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("consumer %s of stream %s: ack policy %v; the nats input needs ack_policy explicit (each message acknowledged once delivered)", in.cfg.Consumer, in.cfg.Stream, p)
	}
	return cons, nil
}

// commit acknowledges, one by one, the messages up to offset (a count of
// messages).
func (in *Input) commit(offset int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := int(offset - in.base)
	if n <= 0 {
		return
	}
	for _, r := range in.replies[:n] {
		// A lost ack only means a redelivery after ack_wait.
		if err := in.nc.Publish(r, []byte("+ACK")); err != nil && in.ackErrors < 10 {
			in.ackErrors++
			in.log.Warn("nats ack failed; the server redelivers after ack_wait", zap.Error(err))
		}
	}
	clear(in.replies[:n])
	in.replies = in.replies[n:]
	in.base = offset
}

func (in *Input) consume(ctx context.Context, cons jetstream.Consumer, e pipeline.Emitter, src *pipeline.Source) error {
	var off int64
	maxLine := int(in.cfg.MaxLineBytes)
	var (
		buf       []byte
		ends      []int
		meta      [][]pipeline.Field
		replies   []string
		truncated int
	)
	emit := func() error {
		if len(ends) == 0 {
			return nil
		}
		c, err := e.NewChunk(ctx, src, len(buf))
		if err != nil {
			return err
		}
		c.Buf = append(c.Buf, buf...)
		c.Ends, c.Meta, c.Truncated = ends, meta, truncated
		off += int64(len(ends))
		c.End = off
		// Replies are queued before the chunk can be acknowledged.
		in.mu.Lock()
		in.replies = append(in.replies, replies...)
		in.mu.Unlock()
		buf, ends, meta, replies, truncated = buf[:0], nil, nil, replies[:0], 0
		return e.Emit(ctx, c)
	}
	for ctx.Err() == nil {
		// The server ends the request (FetchMaxWait) rather than a client
		// context: a status after the messages, so every message it sent
		// is read. A client-side cancel could drop delivered messages that
		// a later AckAll would then acknowledge unread.
		batch, err := cons.Fetch(in.cfg.FetchBatch, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			in.log.Warn("nats fetch failed; retrying", zap.Error(err))
			select {
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
			continue
		}
		msgs := batch.Messages()
	fetch:
		for {
			var m jetstream.Msg
			var ok bool
			select {
			case m, ok = <-msgs:
			default:
				// Nothing more right now: ship what came rather than
				// wait for the batch to fill.
				if err := emit(); err != nil {
					return err
				}
				m, ok = <-msgs
			}
			if !ok {
				break fetch
			}
			v := m.Data()
			if len(v) > maxLine {
				v = v[:maxLine]
				truncated++
			}
			buf = append(buf, v...)
			ends = append(ends, len(buf))
			replies = append(replies, m.Reply())
			if in.cfg.Metadata {
				meta = append(meta, metadata(m))
			}
			if len(buf) >= chunkBytes {
				if err := emit(); err != nil {
					return err
				}
			}
		}
		if err := emit(); err != nil {
			return err
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			in.log.Warn("nats fetch ended with an error", zap.Error(err))
		}
	}
	return nil
}

const chunkBytes = 512 << 10

func metadata(m jetstream.Msg) []pipeline.Field {
	f := []pipeline.Field{{Key: "subject", Value: m.Subject()}}
	if md, err := m.Metadata(); err == nil {
		f = append(f,
			pipeline.Field{Key: "stream", Value: md.Stream},
			pipeline.Field{Key: "stream_sequence", Value: int64(md.Sequence.Stream)},
			pipeline.Field{Key: "consumer_sequence", Value: int64(md.Sequence.Consumer)},
			pipeline.Field{Key: "delivered", Value: int64(md.NumDelivered)})
	}
	return []pipeline.Field{{Key: "metadata", Value: f}}
}
