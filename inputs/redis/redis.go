// Package redis is the Redis consumer input: it reads a stream through a
// consumer group (mode = "stream"), takes elements off a list (mode =
// "list"), or subscribes to a pub/sub channel (mode = "pubsub"). Each
// entry, element or message is one event, newlines and all, parsed by the
// input's parser like a file line, with a "metadata" field (mode, key, and
// the stream id, group and consumer) that output templates reach as
// %{metadata.id}.
//
// # Delivery
//
// Stream: XREADGROUP hands entries to this consumer, where they stay
// pending until tailship has delivered them to every output (or
// dead-lettered them); then XACK. At start the consumer first reads its own
// pending entries again (a previous run that was killed), and every
// claim_idle/2 it claims (XCLAIM) entries pending for longer than
// claim_idle at other consumers of the group, which have crashed or
// stopped. Delivery is at least once: an entry delivered before a kill but
// not yet acknowledged is delivered again.
//
// List: each element is moved (LMOVE, BLMOVE when the list is empty) from
// key to a processing list of this consumer and removed from there once
// delivered; elements left there by a killed run are delivered first.
// At least once, as for the stream.
//
// Pub/sub is at most once: Redis keeps nothing for a subscriber, so what is
// published while tailship is down, reconnecting or killed is lost, and
// nothing can be acknowledged.
//
// # Reconnecting
//
// A failed command is retried with backoff (100 ms doubling to 5 s);
// go-redis redials. Entries already read stay pending (stream) or in the
// processing list, so nothing is lost while Redis is away.
package redis

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/inputs/msgchunk"
	"github.com/tailship/tailship/pipeline"
)

// Modes.
const (
	ModeStream = "stream"
	ModeList   = "list"
	ModePubSub = "pubsub"
)

func init() {
	pipeline.RegisterInput("redis", func() pipeline.InputConfig { return DefaultConfig() })
}

// DefaultConfig returns the redis input's defaults.
func DefaultConfig() *Config {
	return &Config{
		InputSettings:  pipeline.DefaultInputSettings(),
		Address:        "127.0.0.1:6379",
		Mode:           ModeStream,
		Group:          "tailship",
		Start:          "beginning",
		StreamField:    "message",
		ClaimIdle:      config.Dur(time.Minute),
		Count:          500,
		Block:          config.Dur(time.Second),
		ConnectTimeout: config.Dur(10 * time.Second),
		Timeout:        config.Dur(30 * time.Second),
		DrainTimeout:   config.Dur(10 * time.Second),
	}
}

// Config is [inputs.NAME] with type = "redis".
type Config struct {
	pipeline.InputSettings
	Address      string `toml:"address"` // host:port
	Mode         string `toml:"mode"`    // stream | list | pubsub
	Key          string `toml:"key"`     // the stream, list or channel
	DB           int    `toml:"db"`
	Username     string `toml:"username"`
	Password     string `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// Group and Consumer name the stream consumer; Consumer defaults to
	// the host name and input name, which a restarted agent keeps, so it
	// finds its own pending entries again.
	Group    string `toml:"group"`
	Consumer string `toml:"consumer"`
	// Start is where a new group begins: "beginning" (every entry the
	// stream holds) or "end" (only entries added from now on).
	Start string `toml:"start"`
	// StreamField is the entry field that holds the event (the redis
	// output writes "message"); an entry without it is shipped as a JSON
	// object of all its fields.
	StreamField string `toml:"stream_field"`
	// ClaimIdle is how long an entry must have been pending at another
	// consumer before this one claims it.
	ClaimIdle config.Duration `toml:"claim_idle"`
	// ProcessingKey is the list mode's processing list; default
	// KEY:processing:CONSUMER.
	ProcessingKey  string          `toml:"processing_key"`
	Count          int             `toml:"count"` // entries or elements per read
	Block          config.Duration `toml:"block"` // how long a read waits for data
	ConnectTimeout config.Duration `toml:"connect_timeout"`
	Timeout        config.Duration `toml:"timeout"`
	// DrainTimeout bounds how long a stopping input waits for what it read
	// to be delivered, so it can acknowledge it; the rest stays pending
	// and is delivered again at the next start.
	DrainTimeout config.Duration `toml:"drain_timeout"`
	TLS          config.TLS      `toml:"tls"`
}

// Validate checks the redis input's keys; the common ones are checked
// through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if c.Address == "" {
		add("address", "required: host:port of the Redis server")
	} else if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
		add("address", "want host:port, got %q", c.Address)
	}
	switch c.Mode {
	case ModeStream, ModeList, ModePubSub:
	default:
		add("mode", "must be %q, %q or %q, got %q", ModeStream, ModeList, ModePubSub, c.Mode)
	}
	if c.Key == "" {
		add("key", "required: the stream, list or channel to read")
	}
	if c.Mode == ModeStream && c.Group == "" {
		add("group", "required with mode = \"stream\"")
	}
	if c.Start != "beginning" && c.Start != "end" {
		add("start", "must be \"beginning\" or \"end\", got %q", c.Start)
	}
	if c.Mode == ModeStream && c.StreamField == "" {
		add("stream_field", "must not be empty")
	}
	if c.ClaimIdle.D() < 0 {
		add("claim_idle", "must not be negative (0 turns claiming off)")
	}
	if c.ProcessingKey != "" && c.Mode != ModeList {
		add("processing_key", "only applies to mode = \"list\"")
	}
	if c.ProcessingKey != "" && c.ProcessingKey == c.Key {
		add("processing_key", "must differ from key")
	}
	if c.Count < 1 || c.Count > 100000 {
		add("count", "must be between 1 and 100000, got %d", c.Count)
	}
	if c.Block.D() < 10*time.Millisecond {
		add("block", "must be at least 10ms")
	}
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
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	if c.Timeout.D() <= 0 {
		add("timeout", "must be above 0")
	}
	if c.DrainTimeout.D() < 0 {
		add("drain_timeout", "must not be negative")
	}
	if c.Multiline.Enabled() {
		add("multiline", "a message is one event already; multiline joins lines of files and stdin")
	}
	if c.TLS.Configured() && !c.TLS.Enabled {
		add("tls.enabled", "TLS settings are given but tls.enabled is false")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// Build implements pipeline.InputConfig. It does not connect: Run does, and
// keeps trying while Redis is down.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	pw := c.Password
	if c.PasswordFile != "" {
		var err error
		if pw, err = config.ReadSecret(c.PasswordFile); err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
	}
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	consumer := c.Consumer
	if consumer == "" {
		host, _ := os.Hostname()
		consumer = sanitize(host + "-" + bc.Name)
	}
	opt := &goredis.Options{
		Addr:                  c.Address,
		Username:              c.Username,
		Password:              pw,
		DB:                    c.DB,
		ClientName:            "tailship-in-" + sanitize(bc.Name),
		DialTimeout:           c.ConnectTimeout.D(),
		ReadTimeout:           c.Timeout.D(),
		WriteTimeout:          c.Timeout.D(),
		ContextTimeoutEnabled: true,
		// Our loop retries with backoff and knows what was read.
		MaxRetries:               -1,
		DialerRetries:            1,
		PoolSize:                 3, // reader, acker, pub/sub
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if c.TLS.Enabled {
		host, _, _ := net.SplitHostPort(c.Address)
		var tc *tls.Config
		tc, err := c.TLS.ClientConfig(host)
		if err != nil {
			return nil, err
		}
		opt.TLSConfig = tc
	}
	in := &Input{
		log: log.With(zap.String("input", bc.Name)), name: bc.Name, addr: c.Address, mode: c.Mode, key: c.Key,
		group: c.Group, consumer: consumer, start: c.Start, field: c.StreamField,
		claimIdle: c.ClaimIdle.D(), processing: c.ProcessingKey, count: c.Count, block: c.Block.D(),
		timeout: c.Timeout.D(), drain: c.DrainTimeout.D(), maxLine: int(c.MaxLineBytes), opt: opt,
	}
	if in.processing == "" {
		in.processing = c.Key + ":processing:" + consumer
	}
	if pw != "" {
		in.secrets = append(in.secrets, pw)
	}
	return in, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

// Input is a running redis consumer.
type Input struct {
	log        *zap.Logger
	name       string
	addr       string
	mode       string
	key        string
	group      string
	consumer   string
	start      string
	field      string
	claimIdle  time.Duration
	processing string
	count      int
	block      time.Duration
	timeout    time.Duration
	drain      time.Duration
	maxLine    int
	opt        *goredis.Options
	secrets    []string
}

var _ pipeline.Input = (*Input)(nil)

// chunkBytes is the buffer a chunk starts with; a read of count entries
// fills one chunk, or several when they are large.
const chunkBytes = 256 << 10

// Run implements pipeline.Input.
func (in *Input) Run(ctx context.Context, em pipeline.Emitter) error {
	client := goredis.NewClient(in.opt)
	defer client.Close()
	switch in.mode {
	case ModePubSub:
		return in.runPubSub(ctx, em, client)
	case ModeList:
		return in.runAcked(ctx, em, client, in.readList)
	default:
		return in.runAcked(ctx, em, client, in.readStream)
	}
}

// acker runs the acknowledgements (XACK, or RPOP of the processing list)
// on its own goroutine: the pipeline's commit callback only queues them.
type acker struct {
	mu     sync.Mutex
	ids    []string // stream ids to XACK
	n      int      // list elements to remove
	signal chan struct{}
}

func (a *acker) add(pos []string) {
	a.mu.Lock()
	if pos[0] == "" { // list mode: positions are placeholders
		a.n += len(pos)
	} else {
		a.ids = append(a.ids, pos...)
	}
	a.mu.Unlock()
	select {
	case a.signal <- struct{}{}:
	default:
	}
}

func (a *acker) take() (ids []string, n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids, n = a.ids, a.n
	a.ids, a.n = nil, 0
	return ids, n
}

func (a *acker) putBack(ids []string, n int) {
	a.mu.Lock()
	a.ids = append(ids, a.ids...)
	a.n += n
	a.mu.Unlock()
}

// reader reads what is next and packs it; it returns after one read.
type reader func(ctx context.Context, client *goredis.Client, p *msgchunk.Packer[string], st *readState) error

type readState struct {
	started  bool // group created / leftovers read
	ownDone  bool // own pending entries read again
	ownAfter string
	claimAt  time.Time
	lastID   string // the highest id read for this consumer
	ack      *acker
}

// idLess compares stream ids (ms-seq).
func idLess(a, b string) bool {
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	if len(am) != len(bm) {
		return len(am) < len(bm)
	}
	if am != bm {
		return am < bm
	}
	if len(as) != len(bs) {
		return len(as) < len(bs)
	}
	return as < bs
}

func (in *Input) runAcked(ctx context.Context, em pipeline.Emitter, client *goredis.Client, read reader) error {
	ack := &acker{signal: make(chan struct{}, 1)}
	p := msgchunk.New(em, in.mode+":"+in.key, in.count, chunkBytes, in.maxLine, ack.add)

	ackCtx, stopAck := context.WithCancel(context.Background())
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		in.ackLoop(ackCtx, client, ack)
	}()
	defer func() {
		stopAck()
		<-ackDone
	}()

	st := &readState{ack: ack}
	backoff := newBackoff()
	for ctx.Err() == nil {
		err := read(ctx, client, p, st)
		if err == nil {
			err = p.Flush(ctx)
		}
		if err != nil {
			p.Discard()
			if ctx.Err() != nil {
				break
			}
			in.log.Warn("redis read failed; retrying", zap.String("address", in.addr), zap.String("key", in.key),
				zap.Duration("backoff", backoff.cur), zap.Error(in.redact(err)))
			if !backoff.wait(ctx) {
				break
			}
			continue
		}
		backoff.reset()
	}
	// Stopping: what was read is still being delivered; acknowledge it if
	// it gets there within drain_timeout, so a restart does not repeat it.
	p.Discard()
	wctx, cancel := context.WithTimeout(context.Background(), in.drain)
	defer cancel()
	if err := p.WaitCommitted(wctx); err != nil {
		packed, committed := p.Packed()
		in.log.Warn("stopping before everything read was delivered; the rest stays in Redis and is read again at the next start",
			zap.Int64("undelivered", packed-committed))
	}
	in.flushAcks(wctx, client, ack)
	return nil
}

func (in *Input) ackLoop(ctx context.Context, client *goredis.Client, ack *acker) {
	backoff := newBackoff()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ack.signal:
		}
		for {
			if err := in.ackOnce(ctx, client, ack); err != nil {
				if ctx.Err() != nil {
					return
				}
				in.log.Warn("redis acknowledgement failed; retrying", zap.Error(in.redact(err)))
				if !backoff.wait(ctx) {
					return
				}
				continue
			}
			backoff.reset()
			break
		}
	}
}

func (in *Input) flushAcks(ctx context.Context, client *goredis.Client, ack *acker) {
	for ctx.Err() == nil {
		if err := in.ackOnce(ctx, client, ack); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (in *Input) ackOnce(ctx context.Context, client *goredis.Client, ack *acker) error {
	ids, n := ack.take()
	if len(ids) == 0 && n == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()
	var err error
	if len(ids) > 0 {
		err = client.XAck(cctx, in.key, in.group, ids...).Err()
		if err != nil {
			err = fmt.Errorf("xack %d entries of %s: %w", len(ids), in.key, err)
		}
	} else {
		// The processing list holds this consumer's elements oldest at
		// the right, and commits come in order: the n oldest are done.
		err = client.RPopCount(cctx, in.processing, n).Err()
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("remove %d delivered elements from %s: %w", n, in.processing, err)
		}
	}
	if err != nil {
		ack.putBack(ids, n)
	}
	return err
}

// readStream reads the next entries of the stream: first this consumer's
// own pending ones (a killed run), then claimed ones, then new ones.
func (in *Input) readStream(ctx context.Context, client *goredis.Client, p *msgchunk.Packer[string], st *readState) error {
	if !st.started {
		startID := "0"
		if in.start == "end" {
			startID = "$"
		}
		err := client.XGroupCreateMkStream(ctx, in.key, in.group, startID).Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("create group %s on %s: %w", in.group, in.key, err)
		}
		st.started, st.ownAfter, st.lastID = true, "0", "0"
		st.claimAt = time.Now().Add(in.claimIdle / 2)
	}
	if !st.ownDone {
		res, err := client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: in.group, Consumer: in.consumer,
			Streams: []string{in.key, st.ownAfter}, Count: int64(in.count), Block: -1}).Result()
		if err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("read own pending entries of %s: %w", in.key, err)
		}
		msgs := entries(res)
		if len(msgs) == 0 {
			st.ownDone = true
			return nil
		}
		st.ownAfter = msgs[len(msgs)-1].ID
		if st.lastID == "0" || idLess(st.lastID, st.ownAfter) {
			st.lastID = st.ownAfter
		}
		in.log.Info("delivering entries pending at this consumer that it has not shipped (an earlier run, or a read whose reply was lost)", zap.Int("entries", len(msgs)))
		return in.packEntries(ctx, p, msgs, true, st.ack)
	}
	if in.claimIdle > 0 && time.Now().After(st.claimAt) {
		st.claimAt = time.Now().Add(in.claimIdle / 2)
		if err := in.claim(ctx, client, p, st); err != nil {
			return err
		}
	}
	block := in.block
	if in.claimIdle > 0 {
		block = min(block, max(time.Until(st.claimAt), 10*time.Millisecond))
	}
	res, err := client.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: in.group, Consumer: in.consumer,
		Streams: []string{in.key, ">"}, Count: int64(in.count), Block: block}).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			st.started = false // the stream or group was deleted: create it again
		}
		// Redis may have run the read and lost the reply: its entries are
		// pending at this consumer, after the last one packed. Read them
		// again from there (claim never takes our own entries).
		st.ownDone, st.ownAfter = false, st.lastID
		return fmt.Errorf("xreadgroup %s: %w", in.key, err)
	}
	msgs := entries(res)
	if len(msgs) > 0 {
		st.lastID = msgs[len(msgs)-1].ID
	}
	return in.packEntries(ctx, p, msgs, false, st.ack)
}

// claim takes over entries pending too long at other consumers (crashed
// or stopped). Our own pending entries are in flight here and are left
// alone, however long the outputs take.
func (in *Input) claim(ctx context.Context, client *goredis.Client, p *msgchunk.Packer[string], st *readState) error {
	start := "-"
	for ctx.Err() == nil {
		pend, err := client.XPendingExt(ctx, &goredis.XPendingExtArgs{Stream: in.key, Group: in.group,
			Idle: in.claimIdle, Start: start, End: "+", Count: int64(in.count)}).Result()
		if err != nil {
			return fmt.Errorf("xpending %s: %w", in.key, err)
		}
		if len(pend) == 0 {
			return nil
		}
		var ids []string
		for _, e := range pend {
			if e.Consumer != in.consumer {
				ids = append(ids, e.ID)
			}
		}
		if len(ids) > 0 {
			msgs, err := client.XClaim(ctx, &goredis.XClaimArgs{Stream: in.key, Group: in.group,
				Consumer: in.consumer, MinIdle: in.claimIdle, Messages: ids}).Result()
			if err != nil {
				return fmt.Errorf("xclaim %d entries of %s: %w", len(ids), in.key, err)
			}
			if len(msgs) > 0 {
				in.log.Info("claimed entries pending at other consumers", zap.Int("entries", len(msgs)), zap.Duration("claim_idle", in.claimIdle))
				if err := in.packEntries(ctx, p, msgs, true, st.ack); err != nil {
					return err
				}
				if err := p.Flush(ctx); err != nil {
					return err
				}
			}
		}
		if len(pend) < in.count {
			return nil
		}
		start = "(" + pend[len(pend)-1].ID
	}
	return ctx.Err()
}

func entries(res []goredis.XStream) []goredis.XMessage {
	if len(res) == 0 {
		return nil
	}
	return res[0].Messages
}

func (in *Input) packEntries(ctx context.Context, p *msgchunk.Packer[string], msgs []goredis.XMessage, redelivered bool, ack *acker) error {
	for _, m := range msgs {
		if m.Values == nil {
			// Deleted (XDEL) while pending: nothing to ship, but it
			// would stay pending for ever; acknowledge it now.
			ack.add([]string{m.ID})
			continue
		}
		body := in.entryBody(m.Values)
		meta := []pipeline.Field{
			{Key: "mode", Value: ModeStream}, {Key: "key", Value: in.key}, {Key: "id", Value: m.ID},
			{Key: "group", Value: in.group}, {Key: "consumer", Value: in.consumer}, {Key: "redelivered", Value: redelivered},
		}
		if err := p.Add(ctx, body, meta, m.ID); err != nil {
			return err
		}
	}
	return nil
}

func (in *Input) entryBody(v map[string]any) []byte {
	if s, ok := v[in.field].(string); ok {
		return []byte(s)
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		vb, _ := json.Marshal(v[k])
		b = append(append(append(b, kb...), ':'), vb...)
	}
	return append(b, '}')
}

// readList moves the next elements into the processing list: first those
// a killed run left there, then new ones.
func (in *Input) readList(ctx context.Context, client *goredis.Client, p *msgchunk.Packer[string], st *readState) error {
	if !st.started {
		left, err := client.LRange(ctx, in.processing, 0, -1).Result()
		if err != nil {
			return fmt.Errorf("read processing list %s: %w", in.processing, err)
		}
		st.started = true
		if len(left) > 0 {
			in.log.Info("delivering elements left in the processing list by an earlier run", zap.Int("elements", len(left)), zap.String("processing_key", in.processing))
		}
		for i := len(left) - 1; i >= 0; i-- { // oldest at the right
			if err := p.Add(ctx, []byte(left[i]), in.listMeta(true), ""); err != nil {
				return err
			}
		}
		return nil
	}
	pipe := client.Pipeline()
	cmds := make([]*goredis.StringCmd, in.count)
	for i := range cmds {
		cmds[i] = pipe.LMove(ctx, in.key, in.processing, "LEFT", "LEFT")
	}
	_, err := pipe.Exec(ctx)
	if err != nil && !errors.Is(err, goredis.Nil) {
		// Some moves may have happened before the failure: they are in
		// the processing list, packed below, or read again at restart.
		in.log.Debug("lmove pipeline failed", zap.Error(in.redact(err)))
	}
	moved := 0
	for _, c := range cmds {
		v, cerr := c.Result()
		if cerr != nil {
			break
		}
		moved++
		if err := p.Add(ctx, []byte(v), in.listMeta(false), ""); err != nil {
			return err
		}
	}
	if err != nil && !errors.Is(err, goredis.Nil) && moved < len(cmds) {
		var firstErr error
		for _, c := range cmds[moved:] {
			if e := c.Err(); e != nil && !errors.Is(e, goredis.Nil) {
				firstErr = e
				break
			}
		}
		if firstErr != nil {
			return fmt.Errorf("lmove from %s: %w", in.key, firstErr)
		}
	}
	if moved > 0 {
		return nil
	}
	// Whole seconds: go-redis rounds shorter timeouts up (and logs it).
	v, err := client.BLMove(ctx, in.key, in.processing, "LEFT", "LEFT", max(in.block, time.Second)).Result()
	if errors.Is(err, goredis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("blmove from %s: %w", in.key, err)
	}
	return p.Add(ctx, []byte(v), in.listMeta(false), "")
}

func (in *Input) listMeta(redelivered bool) []pipeline.Field {
	return []pipeline.Field{{Key: "mode", Value: ModeList}, {Key: "key", Value: in.key}, {Key: "redelivered", Value: redelivered}}
}

// runPubSub subscribes and ships what arrives; nothing is acknowledged.
func (in *Input) runPubSub(ctx context.Context, em pipeline.Emitter, client *goredis.Client) error {
	p := msgchunk.New[struct{}](em, "pubsub:"+in.key, in.count, chunkBytes, in.maxLine, nil)
	backoff := newBackoff()
	for ctx.Err() == nil {
		err := in.subscribe(ctx, client, p)
		p.Discard()
		if ctx.Err() != nil {
			break
		}
		in.log.Warn("redis subscription failed; resubscribing (messages published meanwhile are lost: pub/sub is at most once)",
			zap.String("channel", in.key), zap.Error(in.redact(err)))
		if !backoff.wait(ctx) {
			break
		}
	}
	return nil
}

func (in *Input) subscribe(ctx context.Context, client *goredis.Client, p *msgchunk.Packer[struct{}]) error {
	ps := client.Subscribe(ctx, in.key)
	// Close ends the goroutines Channel starts.
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil {
		return fmt.Errorf("subscribe %s: %w", in.key, err)
	}
	msgs := ps.Channel(goredis.WithChannelSize(4 * in.count))
	tick := time.NewTicker(20 * time.Millisecond) // ships a burst's tail soon
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := p.Flush(ctx); err != nil {
				return err
			}
		case m, ok := <-msgs:
			if !ok {
				return fmt.Errorf("subscription to %s closed", in.key)
			}
			meta := []pipeline.Field{{Key: "mode", Value: ModePubSub}, {Key: "channel", Value: m.Channel}}
			if err := p.Add(ctx, []byte(m.Payload), meta, struct{}{}); err != nil {
				return err
			}
			if p.Buffered() >= in.count {
				if err := p.Flush(ctx); err != nil {
					return err
				}
			}
		}
	}
}

// redact removes the password from an error's text.
func (in *Input) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	masked := msg
	for _, s := range in.secrets {
		masked = strings.ReplaceAll(masked, s, "xxxxx")
	}
	if masked == msg {
		return err
	}
	return errors.New(masked)
}

type backoff struct{ cur time.Duration }

func newBackoff() *backoff { return &backoff{cur: 100 * time.Millisecond} }

func (b *backoff) reset() { b.cur = 100 * time.Millisecond }

// wait sleeps the current delay and doubles it, up to 5s; false when ctx
// ended.
func (b *backoff) wait(ctx context.Context) bool {
	t := time.NewTimer(b.cur)
	defer t.Stop()
	b.cur = min(2*b.cur, 5*time.Second)
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
