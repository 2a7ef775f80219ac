// Package amqp is the AMQP 0-9-1 (RabbitMQ) consumer input: it consumes a
// queue and ships each message as one event, newlines and all, parsed by
// the input's parser like a file line, with a "metadata" field (queue,
// exchange, routing_key, redelivered, message_id, content_type) that
// output templates reach as %{metadata.routing_key}.
//
// # Delivery
//
// Messages are consumed with manual acknowledgement. prefetch is the
// backpressure window: the broker sends at most that many messages that
// tailship has not acknowledged yet, and tailship acknowledges a message
// only once every output has delivered it (or dead-lettered it), with one
// basic.ack multiple=true per chunk of messages. A message delivered but
// not acknowledged when the connection breaks or tailship is killed is
// requeued by the broker and delivered again (redelivered = true): at
// least once, never lost.
//
// # Queue
//
// queue_declare = "declare" (the default) declares the queue (durable by
// default) and, when exchange is set, binds it with routing_key;
// "passive" only checks that it exists (for users without the configure
// permission).
//
// # Reconnecting
//
// The input owns its connection; a broken connection or channel is
// dropped and dialled again with backoff (100 ms doubling to 5 s).
// amqp091-go's own recovery is not used. The URL's password (or the whole
// URL, from url_file) never appears in logs or errors.
package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/inputs/msgchunk"
	"github.com/tailship/tailship/pipeline"
)

// Queue declaration modes, and what a permanent rejection does.
const (
	DeclareDeclare = "declare"
	DeclarePassive = "passive"

	OnRejectDeadLetter = "dead_letter"
	OnRejectRequeue    = "requeue"
)

func init() {
	pipeline.RegisterInput("amqp", func() pipeline.InputConfig { return DefaultConfig() })
}

// DefaultConfig returns the amqp input's defaults.
func DefaultConfig() *Config {
	return &Config{
		InputSettings:  pipeline.DefaultInputSettings(),
		QueueDeclare:   DeclareDeclare,
		QueueDurable:   true,
		Prefetch:       2000,
		ChunkEvents:    500,
		ConnectTimeout: config.Dur(10 * time.Second),
		Heartbeat:      config.Dur(10 * time.Second),
		DrainTimeout:   config.Dur(10 * time.Second),
		OnReject:       OnRejectDeadLetter,
	}
}

// Config is [inputs.NAME] with type = "amqp".
type Config struct {
	pipeline.InputSettings
	// URL is amqp://user:password@host:5672/vhost, or amqps:// for TLS.
	URL          string `toml:"url"`
	URLFile      string `toml:"url_file"`
	Queue        string `toml:"queue"`
	QueueDeclare string `toml:"queue_declare"` // declare | passive
	QueueDurable bool   `toml:"queue_durable"`
	// Exchange and RoutingKey bind the declared queue; the exchange must
	// exist (the amqp output declares it).
	Exchange   string `toml:"exchange"`
	RoutingKey string `toml:"routing_key"`
	// Prefetch is how many messages may be unacknowledged at once: the
	// window between the broker and delivery to the outputs.
	Prefetch int `toml:"prefetch"`
	// ChunkEvents is how many messages go into one chunk at most; a
	// chunk is also shipped when no message has come for 20 ms.
	ChunkEvents    int             `toml:"chunk_events"`
	ConsumerTag    string          `toml:"consumer_tag"`
	ConnectTimeout config.Duration `toml:"connect_timeout"`
	Heartbeat      config.Duration `toml:"heartbeat"`
	// DrainTimeout bounds how long a stopping input waits for what it
	// consumed to be delivered, so it can acknowledge it; the rest is
	// requeued by the broker.
	DrainTimeout config.Duration `toml:"drain_timeout"`
	// OnReject is what a message an output rejects permanently becomes:
	// dead_letter (the output's dead_letter_path, or counted as lost; the
	// message is acknowledged), or requeue (basic.nack with requeue: the
	// broker delivers it again, to tailship or another consumer).
	OnReject string     `toml:"on_reject"`
	TLS      config.TLS `toml:"tls"`
}

// Validate checks the amqp input's keys; the common ones are checked
// through Common.
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
	if raw != "" {
		u, err := amqp.ParseURI(raw)
		if err != nil {
			add(key, "invalid: %v (want amqp://user:password@host:port/vhost or amqps://...)", config.RedactURL(err.Error(), raw))
		} else if u.Scheme == "amqp" && (c.TLS.Enabled || c.TLS.Configured()) {
			add("tls", "TLS settings with an amqp:// url; use amqps://")
		}
	}
	if c.Queue == "" {
		add("queue", "required: the queue to consume")
	}
	switch c.QueueDeclare {
	case DeclareDeclare:
	case DeclarePassive:
		if c.Exchange != "" {
			add("exchange", "binding needs queue_declare = \"declare\"")
		}
	default:
		add("queue_declare", "must be %q or %q, got %q", DeclareDeclare, DeclarePassive, c.QueueDeclare)
	}
	if c.RoutingKey != "" && c.Exchange == "" {
		add("routing_key", "binds to exchange, which is not set")
	}
	if c.Prefetch < 1 || c.Prefetch > 65535 {
		add("prefetch", "must be between 1 and 65535, got %d", c.Prefetch)
	}
	if c.ChunkEvents < 1 {
		add("chunk_events", "must be at least 1")
	}
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	if c.Heartbeat.D() < time.Second {
		add("heartbeat", "must be at least 1s")
	}
	if c.DrainTimeout.D() < 0 {
		add("drain_timeout", "must not be negative")
	}
	if c.OnReject != OnRejectDeadLetter && c.OnReject != OnRejectRequeue {
		add("on_reject", "must be %q or %q, got %q", OnRejectDeadLetter, OnRejectRequeue, c.OnReject)
	}
	if c.Multiline.Enabled() {
		add("multiline", "a message is one event already; multiline joins lines of files and stdin")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// Build implements pipeline.InputConfig. It does not connect: Run does, and
// keeps trying while the broker is down.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	raw := c.URL
	if c.URLFile != "" {
		var err error
		if raw, err = config.ReadSecret(c.URLFile); err != nil {
			return nil, fmt.Errorf("url_file: %w", err)
		}
	}
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return nil, fmt.Errorf("url: %s", config.RedactURL(err.Error(), raw))
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
		Dial:       amqp.DefaultDial(c.ConnectTimeout.D()),
		Properties: amqp.Table{"connection_name": name, "product": "tailship"},
	}
	if uri.Scheme == "amqps" {
		tc, err := c.TLS.ClientConfig(uri.Host)
		if err != nil {
			return nil, err
		}
		cfg.TLSClientConfig = tc
	}
	return &Input{
		log: log.With(zap.String("input", bc.Name)), url: raw, display: config.MaskURL(raw), cfg: cfg,
		queue: c.Queue, passive: c.QueueDeclare == DeclarePassive, durable: c.QueueDurable,
		exchange: c.Exchange, routingKey: c.RoutingKey, prefetch: c.Prefetch, chunk: c.ChunkEvents,
		tag: c.ConsumerTag, drain: c.DrainTimeout.D(), maxLine: int(c.MaxLineBytes),
		requeue: c.OnReject == OnRejectRequeue,
	}, nil
}

// Input is a running amqp consumer.
type Input struct {
	log        *zap.Logger
	url        string // holds the password: never in logs or errors
	display    string
	cfg        amqp.Config
	queue      string
	passive    bool
	durable    bool
	exchange   string
	routingKey string
	prefetch   int
	chunk      int
	tag        string
	drain      time.Duration
	maxLine    int
	requeue    bool
}

var _ pipeline.Input = (*Input)(nil)

// session is one connection and its consuming channel. Delivery tags
// belong to the channel: an acknowledgement for a closed one is dropped
// (the broker has requeued the message already).
type session struct {
	conn   *amqp.Connection
	ch     *amqp.Channel
	closed chan *amqp.Error
	dead   atomic.Bool
}

// pos is where a message stands in the broker.
type pos struct {
	s   *session
	tag uint64
}

// acker sends the acknowledgements the pipeline's commits release; the
// commit callback only queues them.
type acker struct {
	mu     sync.Mutex
	last   map[*session]uint64
	nacked map[pos]bool // requeued: no longer the channel's to acknowledge
	signal chan struct{}
}

func (a *acker) add(ps []pos) {
	a.mu.Lock()
	for _, p := range ps {
		// An ack (multiple or not) must name a tag still outstanding, so
		// the highest one not requeued.
		if a.nacked[p] {
			delete(a.nacked, p)
			continue
		}
		if p.tag > a.last[p.s] {
			a.last[p.s] = p.tag
		}
	}
	a.mu.Unlock()
	select {
	case a.signal <- struct{}{}:
	default:
	}
}

// flush acknowledges, per live session, every message up to the highest
// committed tag.
func (a *acker) flush(log *zap.Logger) {
	a.mu.Lock()
	last := a.last
	a.last = map[*session]uint64{}
	a.mu.Unlock()
	for s, tag := range last {
		if s.dead.Load() {
			continue
		}
		if err := s.ch.Ack(tag, true); err != nil {
			// The channel is closing: the broker requeues what was not
			// acknowledged, and it is delivered again.
			log.Warn("acknowledgement failed; the messages will be delivered again", zap.Error(err))
		}
	}
}

// Run implements pipeline.Input.
func (in *Input) Run(ctx context.Context, em pipeline.Emitter) error {
	ack := &acker{last: map[*session]uint64{}, nacked: map[pos]bool{}, signal: make(chan struct{}, 1)}
	p := msgchunk.New(em, "amqp:"+in.queue, in.chunk, 256<<10, in.maxLine, ack.add)
	if in.requeue {
		p.Source().Reject = func(ev *pipeline.Event) bool { return in.nack(p, ack, ev) }
	}
	ackCtx, stopAck := context.WithCancel(context.Background())
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for {
			select {
			case <-ackCtx.Done():
				return
			case <-ack.signal:
				ack.flush(in.log)
			}
		}
	}()

	var cur *session
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		s, err := in.connect()
		if err != nil {
			in.log.Warn("cannot consume from the broker; retrying", zap.String("url", in.display), zap.String("queue", in.queue),
				zap.Duration("backoff", backoff), zap.Error(err))
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		cur = s
		err = in.consume(ctx, s, p)
		p.Discard() // not emitted: the broker requeues them
		if ctx.Err() != nil {
			break
		}
		in.log.Warn("consuming stopped; reconnecting", zap.String("url", in.display), zap.String("queue", in.queue), zap.Error(err))
		s.close()
		cur = nil
	}
	// Stopping: acknowledge what reaches the outputs within drain_timeout;
	// the rest is requeued when the connection closes.
	p.Discard()
	if cur != nil {
		_ = cur.ch.Cancel(in.tagOrDefault(), false)
		wctx, cancel := context.WithTimeout(context.Background(), in.drain)
		if err := p.WaitCommitted(wctx); err != nil {
			packed, committed := p.Packed()
			in.log.Warn("stopping before everything consumed was delivered; the broker requeues the rest", zap.Int64("undelivered", packed-committed))
		}
		cancel()
	}
	stopAck()
	<-ackDone
	ack.flush(in.log)
	if cur != nil {
		cur.close()
	}
	return nil
}

// nack hands a message an output rejected back to the broker. It runs
// before the message's chunk is committed, so before any ack covers it.
func (in *Input) nack(p *msgchunk.Packer[pos], ack *acker, ev *pipeline.Event) bool {
	ps, ok := p.Lookup(ev.Raw)
	if !ok {
		return false // a processor replaced the event's bytes: dead-letter it
	}
	if ps.s.dead.Load() {
		return true // the channel is gone: the broker requeued it already
	}
	ack.mu.Lock()
	ack.nacked[ps] = true
	ack.mu.Unlock()
	if err := ps.s.ch.Nack(ps.tag, false, true); err != nil {
		in.log.Warn("requeue failed; the channel is closing, which requeues the message too", zap.Error(err))
	}
	return true
}

func (in *Input) tagOrDefault() string {
	if in.tag != "" {
		return in.tag
	}
	return "tailship-" + in.queue
}

func (s *session) close() {
	s.dead.Store(true)
	_ = s.conn.Close()
}

func (in *Input) connect() (*session, error) {
	conn, err := amqp.DialConfig(in.url, in.cfg)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", in.display, in.redact(config.ExplainTLSError(err)))
	}
	s := &session{conn: conn}
	fail := func(err error) (*session, error) {
		s.close()
		return nil, err
	}
	if s.ch, err = conn.Channel(); err != nil {
		return fail(fmt.Errorf("open channel on %s: %w", in.display, err))
	}
	if err := s.ch.Qos(in.prefetch, 0, false); err != nil {
		return fail(fmt.Errorf("set prefetch %d: %w", in.prefetch, err))
	}
	if in.passive {
		_, err = s.ch.QueueDeclarePassive(in.queue, in.durable, false, false, false, nil)
	} else {
		_, err = s.ch.QueueDeclare(in.queue, in.durable, false, false, false, nil)
	}
	var ae *amqp.Error
	switch {
	case err != nil && in.passive && errors.As(err, &ae) && ae.Code == amqp.NotFound:
		// Retried like any other failure, since whoever owns the
		// queue may create it later; the message says what to do.
		return fail(fmt.Errorf("queue %q does not exist on %s, and queue_declare = \"passive\" does not create it: create it there, or set queue_declare = \"declare\": %w", in.queue, in.display, err))
	case err != nil:
		return fail(fmt.Errorf("declare queue %q: %w", in.queue, err))
	}
	if in.exchange != "" {
		if err := s.ch.QueueBind(in.queue, in.routingKey, in.exchange, false, nil); err != nil {
			return fail(fmt.Errorf("bind queue %q to exchange %q with routing key %q: %w", in.queue, in.exchange, in.routingKey, err))
		}
	}
	s.closed = s.ch.NotifyClose(make(chan *amqp.Error, 1))
	return s, nil
}

// flushEvery ships a partly filled chunk when no message has come for a
// while, so a trickle is not held back to fill chunks.
const flushEvery = 20 * time.Millisecond

func (in *Input) consume(ctx context.Context, s *session, p *msgchunk.Packer[pos]) error {
	deliveries, err := s.ch.ConsumeWithContext(ctx, in.queue, in.tagOrDefault(), false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", in.queue, err)
	}
	in.log.Info("consuming", zap.String("url", in.display), zap.String("queue", in.queue), zap.Int("prefetch", in.prefetch))
	tick := time.NewTicker(flushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.closed:
			s.dead.Store(true)
			return fmt.Errorf("channel closed: %v", e)
		case <-tick.C:
			if err := p.Flush(ctx); err != nil {
				return err
			}
		case d, ok := <-deliveries:
			if !ok {
				s.dead.Store(true)
				return errors.New("the broker ended the consumer (connection or channel closed)")
			}
			meta := []pipeline.Field{
				{Key: "queue", Value: in.queue}, {Key: "exchange", Value: d.Exchange},
				{Key: "routing_key", Value: d.RoutingKey}, {Key: "redelivered", Value: d.Redelivered},
			}
			if d.MessageId != "" {
				meta = append(meta, pipeline.Field{Key: "message_id", Value: d.MessageId})
			}
			if d.ContentType != "" {
				meta = append(meta, pipeline.Field{Key: "content_type", Value: d.ContentType})
			}
			if err := p.Add(ctx, d.Body, meta, pos{s, d.DeliveryTag}); err != nil {
				return err
			}
			if p.Buffered() >= in.chunk {
				if err := p.Flush(ctx); err != nil {
					return err
				}
			}
		}
	}
}

func (in *Input) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if masked := config.RedactURL(msg, in.url); masked != msg {
		return errors.New(masked)
	}
	return err
}
