// Package kafka is the Kafka output: every event becomes one record,
// produced with franz-go (github.com/twmb/franz-go) to a topic named per
// event from a template, keyed so that the lines of one file stay in one
// partition, in order.
//
// # Delivery
//
// A batch counts as delivered when every record's produce callback
// succeeded: with acks = "all" (the default) that is once every in-sync
// replica has the record. The idempotent producer is on by default, so the
// client's own retries of a produce request (a leader change, a timeout)
// never write a record twice and keep each partition's records in order.
// The output buffers a whole batch and then flushes it (franz-go's manual
// flushing), so when a partition fails, the records that fail with it are
// the rest of that partition's records in the batch: franz-go fails every
// buffered record of a partition behind a failed one, and those go back to
// the runner together, in order.
//
// Records still failing after delivery_timeout (the producer's
// delivery.timeout.ms), and records failing with an error a later attempt
// can fix, are returned to the runner as a pipeline.PartialError naming
// them for retry, with the runner's backoff; those are new records to the
// broker, so a record whose acknowledgement was lost can be written twice
// (at least once). A record the broker refuses for what it is (larger than
// message.max.bytes, or invalid) is rejected permanently and goes to the
// dead-letter file. A broker that refuses a record batch as too large fails
// every record of it, so those records are sent again one at a time, and
// only the ones refused alone are rejected.
//
// # Compression
//
// Kafka compresses record batches itself (compression = zstd, lz4, snappy,
// gzip or none; zstd at its fastest level by default) and consumers
// decompress transparently, so the codec compression of the file, tcp and
// http outputs does not apply: format = "raw" or "json" only chooses the
// record value.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/kafkasasl"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

func init() {
	pipeline.RegisterOutput("kafka", func() pipeline.OutputConfig { return DefaultConfig() })
}

// Acknowledgement levels.
const (
	AcksAll    = "all"    // every in-sync replica
	AcksLeader = "leader" // the partition leader only
	AcksNone   = "none"   // none: a record counts as delivered once written to the socket
)

// DefaultConfig returns the kafka output's defaults.
func DefaultConfig() *Config {
	return &Config{
		OutputSettings:  pipeline.DefaultOutputSettings(),
		Format:          codec.FormatRaw,
		Compression:     "zstd",
		Acks:            AcksAll,
		Idempotent:      true,
		ClientID:        "tailship",
		MaxMessageBytes: 1000012, // franz-go's default, just under Kafka's message.max.bytes
		DeliveryTimeout: config.Dur(30 * time.Second),
		ConnectTimeout:  config.Dur(10 * time.Second),
	}
}

// Config is [outputs.NAME] with type = "kafka".
type Config struct {
	pipeline.OutputSettings
	Brokers []string `toml:"brokers"` // host:port seeds
	// Topic is a template: literals, %{field}, %Y %m %d %H (UTC).
	Topic string `toml:"topic"`
	// KeyField names the field whose value is the record key (and so
	// picks the partition). Empty, or an event without the field, keys by
	// the source (the file path): a file's lines stay in one partition.
	KeyField        string           `toml:"key_field"`
	Format          string           `toml:"format"`      // raw | json: the record value
	Compression     string           `toml:"compression"` // zstd | lz4 | snappy | gzip | none
	Acks            string           `toml:"acks"`        // all | leader | none
	Idempotent      bool             `toml:"idempotent"`
	ClientID        string           `toml:"client_id"`
	MaxMessageBytes config.Size      `toml:"max_message_bytes"`
	DeliveryTimeout config.Duration  `toml:"delivery_timeout"`
	ConnectTimeout  config.Duration  `toml:"connect_timeout"`
	SASL            kafkasasl.Config `toml:"sasl"`
	TLS             config.TLS       `toml:"tls"`
}

// Validate checks the keys of the kafka output; the loader validates the
// common output keys through Common.
func (c *Config) Validate() error {
	var errs []error
	add := func(key, format string, args ...any) { errs = append(errs, config.Errorf(key, format, args...)) }
	if len(c.Brokers) == 0 {
		add("brokers", "required: at least one host:port of the cluster")
	}
	for _, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add("brokers", "want host:port, got %q", b)
		}
	}
	if c.Topic == "" {
		add("topic", "required (a name, or a template such as \"logs-%%{service}\")")
	} else if t, err := template.Parse(c.Topic); err != nil {
		add("topic", "%v", err)
	} else if err := checkTopicText(t.Shape("")); err != nil {
		add("topic", "%v", err)
	} else if name, ok := t.Literal(); ok && (name == "." || name == "..") {
		add("topic", "%q is not a valid topic name", name)
	}
	switch c.Format {
	case codec.FormatRaw, codec.FormatJSON:
	default:
		add("format", "must be %q or %q, got %q", codec.FormatRaw, codec.FormatJSON, c.Format)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		add("compression", "%v", err)
	}
	switch c.Acks {
	case AcksAll:
	case AcksLeader, AcksNone:
		if c.Idempotent {
			add("acks", "the idempotent producer needs acks = \"all\"; set idempotent = false to use %q", c.Acks)
		}
	default:
		add("acks", "must be %q, %q or %q, got %q", AcksAll, AcksLeader, AcksNone, c.Acks)
	}
	if c.ClientID == "" {
		add("client_id", "must not be empty")
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 1<<30 {
		add("max_message_bytes", "must be between 1KiB and 1GiB, got %d", int64(c.MaxMessageBytes))
	}
	if c.DeliveryTimeout.D() < time.Second {
		// franz-go's floor: a shorter one would fail records that a
		// leader election, which takes about that long, delays.
		add("delivery_timeout", "must be at least 1s, got %v", c.DeliveryTimeout)
	}
	if c.ConnectTimeout.D() <= 0 {
		add("connect_timeout", "must be above 0")
	}
	errs = append(errs, config.Prefix("sasl", c.SASL.Validate()))
	if c.TLS.Configured() && !c.TLS.Enabled {
		add("tls.enabled", "TLS settings are given but tls.enabled is false")
	}
	errs = append(errs, config.Prefix("tls", c.TLS.Validate()))
	return errors.Join(errs...)
}

// checkTopicText checks the fixed text of a topic against what Kafka allows
// in a name (field values are folded into it when expanded).
func checkTopicText(s string) error {
	for _, r := range s {
		if !topicRune(r) {
			return fmt.Errorf("%q: a topic name has only letters, digits, '.', '_' and '-'", s)
		}
	}
	if len(s) > 249 {
		return fmt.Errorf("longer than Kafka's 249 characters")
	}
	return nil
}

func topicRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

// foldTopic writes a field value into a topic name: characters Kafka does
// not allow become '_', rather than every record of the batch failing.
func foldTopic(dst []byte, v string) []byte {
	for _, r := range v {
		if !topicRune(r) {
			r = '_'
		}
		dst = append(dst, byte(r))
	}
	return dst
}

func compressionCodec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "zstd":
		// The fastest level: about the ratio of the default on log lines
		// at a fraction of the CPU, which the application needs more.
		return kgo.ZstdCompression().WithLevel(int(zstd.SpeedFastest)), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression().WithLevel(1), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("must be one of \"zstd\", \"lz4\", \"snappy\", \"gzip\", \"none\", got %q", name)
}

// Build implements pipeline.OutputConfig. It does not connect: the first
// batch does, so an agent starts even while the cluster is down. The
// password file is read here, once.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	topic, err := template.Parse(c.Topic)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	comp, err := compressionCodec(c.Compression)
	if err != nil {
		return nil, fmt.Errorf("compression: %w", err)
	}
	o := &output{
		log:      log, // the agent names the output in it
		brokers:  strings.Join(c.Brokers, ","),
		topic:    topic,
		keyField: c.KeyField,
		json:     c.Format == codec.FormatJSON,
	}
	o.static, _ = topic.Literal()
	acks := kgo.AllISRAcks()
	switch c.Acks {
	case AcksLeader:
		acks = kgo.LeaderAck()
	case AcksNone:
		acks = kgo.NoAck()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(c.ConnectTimeout.D()),
		kgo.WithLogger(zapLogger{o.log}),
		// A Write buffers its whole batch before sending any of it (see
		// the package doc), so the buffer holds every batch in flight.
		kgo.ManualFlushing(),
		// One more per batch in flight: a record sent again alone.
		kgo.MaxBufferedRecords((c.Batch.MaxEvents + 1) * c.MaxInFlight),
		// batch.max_bytes is not mapped here: franz-go's one setting
		// caps both a record batch and any single record, so a smaller
		// value would dead-letter records the broker takes. It reaches
		// the broker anyway: the runner closes a batch at max_bytes and
		// a Write flushes one batch, so no record batch holds more
		// (TestBatchMaxBytesBoundsRecordBatches); with max_in_flight > 1
		// the records of concurrent batches may share one, up to
		// max_message_bytes.
		kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes)),
		kgo.ProducerBatchCompression(comp),
		kgo.RequiredAcks(acks),
		kgo.RecordDeliveryTimeout(c.DeliveryTimeout.D()),
		kgo.RetryBackoffFn(backoff(c.Retry.Initial.D(), min(c.Retry.Max.D(), time.Second))),
		// A retriable produce error waits for fresh metadata (a new
		// leader), which the client refreshes at most this often:
		// franz-go's 5s unless retry.max asks for quicker retries.
		kgo.MetadataMinAge(min(max(c.Retry.Max.D(), 100*time.Millisecond), 5*time.Second)),
	}
	if !c.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if c.TLS.Enabled {
		// No server name unless tls.server_name sets one: franz-go then
		// verifies each broker under its own host name.
		tc, err := c.TLS.ClientConfig("")
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech, pw, err := c.SASL.Auth()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		o.secret = pw
		opts = append(opts, kgo.SASL(mech))
	}
	if o.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, o.mask(fmt.Errorf("kafka client: %w", err))
	}
	return o, nil
}

// backoff is the producer's wait before its own retry number tries (from
// 1): the runner's retry.initial, doubling, at most ceiling, with full jitter
// like the runner's. The cap is low because these retries ride out a
// leader election; a longer outage reaches the runner after
// delivery_timeout and backs off there.
func backoff(initial, ceiling time.Duration) func(tries int) time.Duration {
	return func(tries int) time.Duration {
		d := initial << min(max(tries-1, 0), 30)
		if d <= 0 || d > ceiling {
			d = ceiling
		}
		return time.Duration(rand.Int64N(int64(d)) + 1)
	}
}

type output struct {
	log      *zap.Logger
	cl       *kgo.Client
	brokers  string
	topic    template.Template
	static   string // the topic when the template names no field
	keyField string
	json     bool
	secret   string // the SASL password, masked in errors

	// The state of finished writes is reused; a write abandoned on a
	// forced stop is not, because the client may still hold its records.
	pool sync.Pool
}

// write is one Write's records and what became of them.
type write struct {
	recs  []kgo.Record
	errs  []error
	spans []span // per record: key and value in arena, then topic in names
	arena []byte
	names []byte
	wg    sync.WaitGroup
}

type span struct{ key, val, topic [2]int }

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	n := b.Len()
	w, _ := o.pool.Get().(*write)
	if w == nil {
		w = &write{}
	}
	w.reset(n)
	o.build(w, b)
	w.wg.Add(n)
	for i := range w.recs {
		i := i
		o.cl.Produce(ctx, &w.recs[i], func(_ *kgo.Record, err error) {
			w.errs[i] = err
			w.wg.Done()
		})
	}
	if err := o.flush(ctx, w); err != nil {
		return err
	}
	err := o.settle(ctx, w)
	if ctx.Err() == nil {
		o.pool.Put(w)
	}
	return err
}

// flush sends what is buffered and waits for this write's callbacks.
func (o *output) flush(ctx context.Context, w *write) error {
	if err := o.cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce to %s: %w", o.brokers, err)
	}
	// Flush returns once nothing is buffered, so every callback has run
	// or is running.
	w.wg.Wait()
	return nil
}

func (w *write) reset(n int) {
	w.recs = resize(w.recs, n)
	w.errs = resize(w.errs, n)
	w.spans = resize(w.spans, n)
	w.arena, w.names = w.arena[:0], w.names[:0]
}

// resize returns s with n zero elements, reusing its array when it fits.
func resize[T any](s []T, n int) []T {
	s = slices.Grow(s[:0], n)[:n]
	clear(s)
	return s
}

// build copies every event's key, value and topic into w: the client keeps
// records after Write returns when a forced stop abandons them, and the
// batch's memory goes back to the pipeline then.
func (o *output) build(w *write, b *pipeline.Batch) {
	now := time.Now()
	i := 0
	for src, ev := range b.All() {
		s := &w.spans[i]
		s.key[0] = len(w.arena)
		w.arena = o.appendKey(w.arena, src, ev)
		s.key[1] = len(w.arena)
		if o.json {
			w.arena = codec.AppendJSON(w.arena, src, ev)
		} else {
			w.arena = append(w.arena, ev.Raw...)
		}
		s.val = [2]int{s.key[1], len(w.arena)}
		if o.static == "" {
			s.topic[0] = len(w.names)
			w.names = o.topic.Append(w.names, src, ev, now, foldTopic)
			s.topic[1] = len(w.names)
		}
		i++
	}
	var prev string
	for i := range w.recs {
		s, r := &w.spans[i], &w.recs[i]
		if s.key[1] > s.key[0] {
			r.Key = w.arena[s.key[0]:s.key[1]:s.key[1]]
		}
		r.Value = w.arena[s.val[0]:s.val[1]:s.val[1]]
		if o.static != "" {
			r.Topic = o.static
			continue
		}
		// Consecutive events mostly name the same topic: one string.
		if name := w.names[s.topic[0]:s.topic[1]]; string(name) != prev {
			prev = string(name)
		}
		r.Topic = prev
	}
}

// appendKey appends the record key: the key_field's value, else the
// source's name.
func (o *output) appendKey(dst []byte, src *pipeline.Source, ev *pipeline.Event) []byte {
	if o.keyField != "" {
		if v, ok := template.FieldValue(src, ev, o.keyField); ok {
			return append(dst, v...)
		}
	}
	if src != nil {
		dst = append(dst, src.Name...)
	}
	return dst
}

// settle turns the callbacks' results into what the runner expects, after
// sending the records refused as part of a too-large batch again one by one.
func (o *output) settle(ctx context.Context, w *write) error {
	var alone []int
	for i, err := range w.errs {
		if err != nil && tooLarge(err) {
			alone = append(alone, i)
		}
	}
	if len(alone) > 0 {
		if err := o.isolate(ctx, w, alone); err != nil {
			return err
		}
	}
	pe := &pipeline.PartialError{}
	var first error
	for i, err := range w.errs {
		switch {
		case err == nil:
			continue
		case refused(err):
			pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i,
				Reason: fmt.Sprintf("topic %s: %v", w.recs[i].Topic, o.mask(err))})
		default:
			pe.Retry = append(pe.Retry, i)
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return nil
	}
	err := o.mask(fmt.Errorf("produce to %s: %d of %d records failed (%d to retry, %d rejected), first: %w",
		o.brokers, len(pe.Retry)+len(pe.Rejected), len(w.errs), len(pe.Retry), len(pe.Rejected), first))
	if len(pe.Rejected) == 0 && len(pe.Retry) == len(w.errs) {
		return err // all to retry: a plain failure
	}
	pe.Err = err
	return pe
}

// isolate produces the records at idx again, in order, each alone in its
// request, so that only a record too large by itself is rejected. Once one
// of them fails for another reason, the rest are left to the runner's retry
// without being sent, so no record overtakes one before it.
func (o *output) isolate(ctx context.Context, w *write, idx []int) error {
	o.log.Warn("kafka refused a record batch as too large; sending its records one by one", zap.Int("records", len(idx)))
	for k, i := range idx {
		w.errs[i] = nil
		r := &w.recs[i]
		r.Partition, r.Offset = 0, 0
		w.wg.Add(1)
		o.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			w.errs[i] = err
			w.wg.Done()
		})
		if err := o.flush(ctx, w); err != nil {
			return err
		}
		if err := w.errs[i]; err != nil && !refused(err) {
			for _, j := range idx[k+1:] {
				w.errs[j] = err
			}
			return nil
		}
	}
	return nil
}

// tooLarge reports an error that may be the batch's fault rather than the
// record's.
func tooLarge(err error) bool {
	return errors.Is(err, kerr.MessageTooLarge) || errors.Is(err, kerr.RecordListTooLarge)
}

// refused reports an error that sending the record again cannot fix.
func refused(err error) bool {
	return tooLarge(err) || errors.Is(err, kerr.InvalidRecord) || errors.Is(err, kerr.InvalidTopicException)
}

// mask keeps the SASL password out of an error's text, in case a broker
// or a library quotes it.
func (o *output) mask(err error) error {
	if err == nil || o.secret == "" || !strings.Contains(err.Error(), o.secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), o.secret, "***"))
}

// Close implements pipeline.Output. The runner calls it after the last
// Write returned, so only records of writes abandoned on a forced stop can
// still be buffered: they are failed, and their chunks stay unacknowledged.
func (o *output) Close(context.Context) error {
	o.cl.Close()
	return nil
}

// zapLogger passes franz-go's warnings and errors to the agent's log.
type zapLogger struct{ log *zap.Logger }

func (l zapLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l zapLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	fields := make([]zap.Field, 0, len(keyvals)/2)
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, _ := keyvals[i].(string)
		fields = append(fields, zap.Any(k, keyvals[i+1]))
	}
	switch level {
	case kgo.LogLevelError:
		l.log.Error("kafka: "+msg, fields...)
	case kgo.LogLevelWarn:
		l.log.Warn("kafka: "+msg, fields...)
	default:
		l.log.Info("kafka: "+msg, fields...)
	}
}
