// Package kafka owns the kafka input: a franz-go consumer group member that
// emits each assigned partition as one ordered source and commits, per
// partition, only the offsets of records every output has delivered.
//
// Guarantees: at least once. A record's offset is committed to the group
// after the pipeline acknowledged it and every record before it in its
// partition. On a rebalance the input commits what is done for the
// partitions it gives up and drops what it still holds of them; the new
// owner reads them again from the committed offset (duplicates, no loss).
package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/kafkasasl"
	"github.com/tailship/tailship/pipeline"
)

// Config is [inputs.NAME] with type = "kafka".
type Config struct {
	pipeline.InputSettings
	Brokers []string `toml:"brokers"`
	Topics  []string `toml:"topics"`
	// TopicsRegex reads Topics as regular expressions matched against
	// every topic of the cluster, as Kafka's pattern subscriptions do.
	TopicsRegex bool   `toml:"topics_regex"`
	Group       string `toml:"group"`
	// StartOffset is where a group without a committed offset for a
	// partition begins: earliest or latest.
	StartOffset string `toml:"start_offset"`
	ClientID    string `toml:"client_id"`
	// SessionTimeout is how long the group waits for a member that
	// stopped heartbeating (a killed agent) before its partitions move.
	SessionTimeout config.Duration `toml:"session_timeout"`
	// InstanceID makes the member static (KIP-345): a restarted agent with
	// the same id takes its partitions back without a rebalance.
	InstanceID string `toml:"instance_id"`
	// CommitInterval is how often delivered offsets are committed; a
	// crash repeats at most what was delivered in this window.
	CommitInterval config.Duration `toml:"commit_interval"`
	// MaxPollRecords bounds the records taken from the client per poll.
	MaxPollRecords int `toml:"max_poll_records"`
	// DrainTimeout is how long a stopping input waits for what it emitted
	// to be delivered, so its offsets are committed before it leaves the
	// group.
	DrainTimeout config.Duration `toml:"drain_timeout"`
	// Metadata adds a "metadata" object (topic, partition, offset, key,
	// timestamp) to every event.
	Metadata bool             `toml:"metadata"`
	TLS      config.TLS       `toml:"tls"`
	SASL     kafkasasl.Config `toml:"sasl"`
}

func init() {
	pipeline.RegisterInput("kafka", func() pipeline.InputConfig { return defaults() })
}

func defaults() *Config {
	return &Config{
		InputSettings:  pipeline.DefaultInputSettings(),
		StartOffset:    "earliest",
		ClientID:       "tailship",
		SessionTimeout: config.Dur(45 * time.Second),
		CommitInterval: config.Dur(time.Second),
		MaxPollRecords: 10000,
		DrainTimeout:   config.Dur(5 * time.Second),
		Metadata:       true,
	}
}

// Validate checks the kafka input's own keys.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, f string, a ...any) { errs = append(errs, config.Errorf(key, f, a...)) }
	// Multiline and the cri/docker reassembly place checkpoints by byte
	// position in a line buffer; a message source's offsets are not bytes.
	if c.Multiline.Enabled() {
		add("multiline", "is for line sources (files): a kafka record is already one event")
	}
	if c.Parser == "cri" || c.Parser == "docker" {
		add("parser", "%q reassembles container runtime log lines in files; use json or none for messages", c.Parser)
	}
	if len(c.Brokers) == 0 {
		add("brokers", "at least one broker address (host:port) is required")
	}
	if len(c.Topics) == 0 {
		add("topics", "at least one topic is required")
	}
	if c.TopicsRegex {
		for _, t := range c.Topics {
			if _, err := regexp.Compile(t); err != nil {
				add("topics", "invalid regular expression %q: %v", t, err)
			}
		}
	}
	if c.Group == "" {
		add("group", "a consumer group is required: offsets are committed to it")
	}
	switch c.StartOffset {
	case "earliest", "latest":
	default:
		add("start_offset", "must be \"earliest\" or \"latest\", got %q", c.StartOffset)
	}
	if c.CommitInterval.D() < 10*time.Millisecond {
		add("commit_interval", "must be at least 10ms")
	}
	if c.SessionTimeout.D() < time.Second {
		add("session_timeout", "must be at least 1s")
	}
	if c.MaxPollRecords < 1 {
		add("max_poll_records", "must be at least 1")
	}
	if c.DrainTimeout.D() < 0 {
		add("drain_timeout", "must not be negative")
	}
	if c.TLS.Configured() || c.TLS.Enabled {
		errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	}
	errs = append(errs, config.Prefix("sasl", c.SASL.Validate()))
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
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.ConsumerGroup(c.Group),
		kgo.ConsumeTopics(c.Topics...),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(c.SessionTimeout.D()),
	}
	if c.InstanceID != "" {
		opts = append(opts, kgo.InstanceID(c.InstanceID))
	}
	if c.TopicsRegex {
		opts = append(opts, kgo.ConsumeRegex())
	}
	if c.StartOffset == "latest" {
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	} else {
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	if c.TLS.Enabled || c.TLS.Configured() {
		host := c.Brokers[0]
		if i := strings.LastIndexByte(host, ':'); i > 0 {
			host = host[:i]
		}
		tc, err := c.TLS.ClientConfig(host)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech, _, err := c.SASL.Auth()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	// The client's own warnings (a refused SASL login, a group join
	// failing) are the only report of some failures.
	opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	in := &Input{cfg: *c, name: bc.Name, log: log, stats: stats, parts: map[tp]*part{}}
	opts = append(opts,
		kgo.OnPartitionsAssigned(in.assigned),
		kgo.OnPartitionsRevoked(in.revoked),
		kgo.OnPartitionsLost(in.lost),
	)
	in.opts = opts
	return in, nil
}

type tp struct {
	topic     string
	partition int32
}

// part is one assigned partition: its source in the pipeline and the
// offsets on their way to the group.
type part struct {
	tp
	src  *pipeline.Source
	lag  *atomic.Int64
	done atomic.Int64 // next offset after the delivered prefix; -1 before any
	sent int64        // committed to the group (commitMu)
	hwm  atomic.Int64
	// first is the offset of the first record fetched: where the group
	// resumed (its committed offset) or started (start_offset), so the
	// lag before this consumer's first commit is not counted from 0.
	first atomic.Int64
	gone  atomic.Bool // revoked or lost: late acknowledgements are not committed
}

// Input is a running kafka consumer.
type Input struct {
	cfg   Config
	name  string
	log   *zap.Logger
	stats *pipeline.Stats
	opts  []kgo.Opt

	emitter  pipeline.Emitter
	mu       sync.Mutex
	parts    map[tp]*part
	commitMu sync.Mutex
	cl       *kgo.Client
}

func (in *Input) lagKey(t tp) string {
	return fmt.Sprintf("%s/%s/%d", in.name, t.topic, t.partition)
}

// assigned opens a source per new partition. It runs in the client's
// goroutine before records of the partitions are returned by a poll.
func (in *Input) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			t := tp{topic, p}
			if _, ok := in.parts[t]; ok {
				continue
			}
			pt := &part{tp: t, sent: -1, lag: in.stats.Lag(in.lagKey(t))}
			pt.done.Store(-1)
			pt.hwm.Store(-1)
			pt.first.Store(-1)
			pt.src = in.emitter.NewSource(fmt.Sprintf("%s/%d", topic, p), func(off int64) {
				if !pt.gone.Load() {
					pt.done.Store(off)
				}
			})
			in.parts[t] = pt
		}
	}
	in.log.Info("kafka partitions assigned", zap.Any("partitions", m))
}

// revoked commits what is delivered of the partitions given up, then drops
// them: what is still in the pipeline is delivered but not committed, and
// the partition's next owner reads it again.
func (in *Input) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	if err := in.commit(ctx, cl); err != nil {
		in.log.Warn("kafka commit on revoke failed; the next owner repeats those records", zap.Error(err))
	}
	in.drop(m)
	in.log.Info("kafka partitions revoked", zap.Any("partitions", m))
}

// lost drops partitions without committing: the group has moved on and a
// commit would be refused.
func (in *Input) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	in.drop(m)
	in.log.Warn("kafka partitions lost", zap.Any("partitions", m))
}

func (in *Input) drop(m map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for topic, ps := range m {
		for _, p := range ps {
			t := tp{topic, p}
			if pt, ok := in.parts[t]; ok {
				pt.gone.Store(true)
				delete(in.parts, t)
				in.stats.DropLag(in.lagKey(t))
			}
		}
	}
}

// commit sends the delivered offsets that moved since the last commit,
// then updates the lag gauges from what the group now holds.
func (in *Input) commit(ctx context.Context, cl *kgo.Client) error {
	in.commitMu.Lock()
	defer in.commitMu.Unlock()
	// The lag is what a restart would read again: high watermark minus
	// the committed offset, not minus the delivered one, which runs
	// ahead of the group by a commit interval or, while commits fail,
	// without bound.
	defer in.updateLag()
	in.mu.Lock()
	offs := map[string]map[int32]kgo.EpochOffset{}
	var moved []*part
	for _, pt := range in.parts {
		d := pt.done.Load()
		if d <= pt.sent {
			continue
		}
		if offs[pt.topic] == nil {
			offs[pt.topic] = map[int32]kgo.EpochOffset{}
		}
		offs[pt.topic][pt.partition] = kgo.EpochOffset{Epoch: -1, Offset: d}
		moved = append(moved, pt)
	}
	in.mu.Unlock()
	if len(moved) == 0 {
		return nil
	}
	var cerr error
	cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		return fmt.Errorf("commit offsets of group %s: %w", in.cfg.Group, cerr)
	}
	for _, pt := range moved {
		pt.sent = offs[pt.topic][pt.partition].Offset
	}
	return nil
}

// updateLag sets each partition's lag to its high watermark minus the
// offset committed; commitMu is held, so sent is stable.
func (in *Input) updateLag() {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, pt := range in.parts {
		hwm := pt.hwm.Load()
		if hwm < 0 {
			continue
		}
		base := pt.sent
		if base < 0 {
			base = max(pt.first.Load(), 0)
		}
		pt.lag.Store(max(hwm-base, 0))
	}
}

// Run implements pipeline.Input.
func (in *Input) Run(ctx context.Context, e pipeline.Emitter) error {
	in.emitter = e
	cl, err := kgo.NewClient(in.opts...)
	if err != nil {
		return fmt.Errorf("kafka client for %s: %w", strings.Join(in.cfg.Brokers, ","), err)
	}
	in.cl = cl
	// The client retries a refused login or an unreachable cluster
	// quietly; one probe at start says so in the log. The input keeps
	// running either way, so an agent starts while Kafka is down.
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	if err := cl.Ping(pctx); err != nil && ctx.Err() == nil {
		in.log.Warn("kafka brokers not usable yet; retrying", zap.Strings("brokers", in.cfg.Brokers), zap.Error(err))
	}
	pcancel()
	var wg sync.WaitGroup
	stopCommit := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(in.cfg.CommitInterval.D())
		defer t.Stop()
		for {
			select {
			case <-stopCommit:
				return
			case <-t.C:
				cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := in.commit(cctx, cl); err != nil {
					in.log.Warn("kafka commit failed; retrying at the next interval", zap.Error(err))
				}
				cancel()
			}
		}
	}()
	runErr := in.consume(ctx, cl, e)
	in.drain()
	close(stopCommit)
	wg.Wait()
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := in.commit(cctx, cl); err != nil {
		in.log.Warn("kafka final commit failed; those records are read again", zap.Error(err))
	}
	cancel()
	// Close leaves the group; the revoke callback commits once more.
	cl.Close()
	return runErr
}

// drain waits, up to drain_timeout, for the records emitted to be
// acknowledged so their offsets go out with the final commit.
func (in *Input) drain() {
	deadline := time.Now().Add(in.cfg.DrainTimeout.D())
	for time.Now().Before(deadline) {
		busy := false
		in.mu.Lock()
		for _, pt := range in.parts {
			if pt.src.InFlight() > 0 {
				busy = true
			}
		}
		in.mu.Unlock()
		if !busy {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (in *Input) consume(ctx context.Context, cl *kgo.Client, e pipeline.Emitter) error {
	for {
		fs := cl.PollRecords(ctx, in.cfg.MaxPollRecords)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				in.log.Warn("kafka fetch failed", zap.String("topic", topic), zap.Int32("partition", p), zap.Error(err))
			}
		})
		var emitErr error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if emitErr != nil || len(fp.Records) == 0 {
				return
			}
			in.mu.Lock()
			pt := in.parts[tp{fp.Topic, fp.Partition}]
			in.mu.Unlock()
			if pt == nil {
				return // revoked since the fetch: the next owner reads these
			}
			pt.first.CompareAndSwap(-1, fp.Records[0].Offset)
			pt.hwm.Store(fp.HighWatermark)
			emitErr = in.emit(ctx, e, pt, fp.Records)
		})
		if emitErr != nil {
			if ctx.Err() != nil {
				return nil
			}
			return emitErr
		}
	}
}

// chunkBytes bounds one chunk's buffer; a poll's records of one partition
// become as few chunks as fit.
const chunkBytes = 512 << 10

func (in *Input) emit(ctx context.Context, e pipeline.Emitter, pt *part, recs []*kgo.Record) error {
	maxLine := int(in.cfg.MaxLineBytes)
	for len(recs) > 0 {
		size, n := 0, 0
		for _, r := range recs {
			l := min(len(r.Value), maxLine)
			if n > 0 && size+l > chunkBytes {
				break
			}
			size += l
			n++
		}
		c, err := e.NewChunk(ctx, pt.src, max(size, 1))
		if err != nil {
			return err
		}
		c.Ends = make([]int, 0, n)
		if in.cfg.Metadata {
			c.Meta = make([][]pipeline.Field, 0, n)
		}
		for _, r := range recs[:n] {
			v := r.Value
			if len(v) > maxLine {
				v = v[:maxLine]
				c.Truncated++
			}
			c.Buf = append(c.Buf, v...)
			c.Ends = append(c.Ends, len(c.Buf))
			if in.cfg.Metadata {
				c.Meta = append(c.Meta, metadata(r))
			}
		}
		c.End = recs[n-1].Offset + 1
		if err := e.Emit(ctx, c); err != nil {
			return fmt.Errorf("emit %s/%d: %w", pt.topic, pt.partition, err)
		}
		recs = recs[n:]
	}
	return nil
}

func metadata(r *kgo.Record) []pipeline.Field {
	m := make([]pipeline.Field, 0, 5)
	m = append(m,
		pipeline.Field{Key: "topic", Value: r.Topic},
		pipeline.Field{Key: "partition", Value: int64(r.Partition)},
		pipeline.Field{Key: "offset", Value: r.Offset})
	if r.Key != nil {
		m = append(m, pipeline.Field{Key: "key", Value: string(r.Key)})
	}
	if !r.Timestamp.IsZero() {
		m = append(m, pipeline.Field{Key: "timestamp", Value: r.Timestamp.UTC().Format(time.RFC3339Nano)})
	}
	return []pipeline.Field{{Key: "metadata", Value: m}}
}

// kgoLogger passes the client's warnings and errors to the agent's log.
type kgoLogger struct{ log *zap.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		fields = append(fields, zap.Any(fmt.Sprint(keyvals[i]), keyvals[i+1]))
	}
	if level == kgo.LogLevelError {
		l.log.Error("kafka client: "+msg, fields...)
	} else {
		l.log.Warn("kafka client: "+msg, fields...)
	}
}
