package kafka

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/config/configtest"
	"github.com/tailship/tailship/kafkasasl"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// cluster starts an in-process Kafka (franz-go's kfake: the real protocol)
// with topics of 4 partitions.
func cluster(t testing.TB, topics []string, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.SeedTopics(4, topics...)}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeCluster(c) })
	return c
}

// closeCluster closes c and waits until kfake's goroutines are gone: Close
// only signals them, and on a loaded machine they can outlast goleak's
// patience at the end of the package. Only one cluster may be open.
func closeCluster(c *kfake.Cluster) {
	c.Close()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("franz-go/pkg/kfake.")) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testConfig(c *kfake.Cluster, topic string) *Config {
	cfg := DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Topic = topic
	cfg.Inputs = []string{"in"}
	cfg.Batch.MaxEvents = 500
	cfg.Batch.Timeout = config.Dur(20 * time.Millisecond)
	cfg.Retry.Initial = config.Dur(5 * time.Millisecond)
	cfg.Retry.Max = config.Dur(100 * time.Millisecond)
	return cfg
}

func build(t testing.TB, c *Config) pipeline.Output {
	t.Helper()
	if err := errors.Join(c.Common().Validate(), c.Validate()); err != nil {
		t.Fatalf("invalid test config: %v", err)
	}
	out, err := c.Build(pipeline.BuildContext{Name: "kafka"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ship sends in through a real pipeline to the output and checks that
// every source committed to its end.
func ship(t *testing.T, c *Config, in *pipelinetest.StaticInput, o pipelinetest.ShipOptions) *pipeline.Runner {
	t.Helper()
	r, _, err := pipelinetest.Ship(in, "kafka", build(t, c), c.OutputSettings, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range in.Sources {
		if got, want := in.Committed(name), in.Size(name); got != want {
			t.Errorf("source %s: committed %d of %d", name, got, want)
		}
	}
	return r
}

// consume reads topics from the start with a franz-go consumer until want
// records arrived (then a little longer, to catch extra ones) or 20s pass.
func consume(t testing.TB, addrs []string, want int, topics ...string) []*kgo.Record {
	t.Helper()
	return consumeFor(t, addrs, want, 20*time.Second, topics...)
}

func consumeFor(t testing.TB, addrs []string, want int, wait time.Duration, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(wait)
	extra := time.Time{}
	for time.Now().Before(deadline) {
		if len(recs) >= want {
			if extra.IsZero() {
				extra = time.Now().Add(300 * time.Millisecond)
			} else if time.Now().After(extra) {
				break
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("fetch %s/%d: %v", topic, p, err)
			}
		})
		recs = append(recs, fs.Records()...)
	}
	return recs
}

// byPartition returns the record values partition after partition, each
// partition in offset order, and checks that no source is spread over two
// partitions (its order would then not be kept).
func byPartition(t *testing.T, recs []*kgo.Record) []string {
	t.Helper()
	parts := map[string][]*kgo.Record{}
	for _, r := range recs {
		k := fmt.Sprintf("%s/%d", r.Topic, r.Partition)
		parts[k] = append(parts[k], r)
	}
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	home := map[string]string{}
	var lines []string
	for _, k := range keys {
		p := parts[k]
		slices.SortFunc(p, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
		for _, r := range p {
			v := string(r.Value)
			if src, _, err := pipelinetest.ParseLine(v); err == nil {
				if h, ok := home[src]; ok && h != k {
					t.Errorf("source %s in partitions %s and %s", src, h, k)
				}
				home[src] = k
			}
			lines = append(lines, v)
		}
	}
	return lines
}

func values(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

var topicSeq atomic.Int64

// topic returns a topic name unique to this test run.
func topic(t testing.TB) string {
	return fmt.Sprintf("tailship-%s-%d-%d", strings.ReplaceAll(t.Name(), "/", "_"), os.Getpid(), topicSeq.Add(1))
}

// TestEveryLineOnceInOrderPerPartition: every compression codec; records
// are keyed by source by default, so each file's lines sit in one partition
// in order, and every sequence number arrives once.
func TestEveryLineOnceInOrderPerPartition(t *testing.T) {
	for _, comp := range []string{"zstd", "lz4", "snappy", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			tp := topic(t)
			c := cluster(t, []string{tp})
			cfg := testConfig(c, tp)
			cfg.Compression = comp
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c", "d", "e"}, Lines: 4000, ChunkLines: 300}
			r := ship(t, cfg, in, pipelinetest.ShipOptions{})
			recs := consume(t, c.ListenAddrs(), 5*4000, tp)
			if err := pipelinetest.CheckSequences(byPartition(t, recs), in.Want()); err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs {
				if src, _, _ := pipelinetest.ParseLine(string(rec.Value)); string(rec.Key) != src {
					t.Fatalf("record %q has key %q, want its source", rec.Value, rec.Key)
				}
			}
			if d := r.Out.Delivered.Load(); d != 5*4000 {
				t.Errorf("delivered %d", d)
			}
		})
	}
}

// fileField sets field "file" from the line's source name, as a parser
// would from a path, so key_field can name it.
type fileField struct{}

func (fileField) Process(ev *pipeline.Event) (bool, error) {
	src, _, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	ev.Fields = append(ev.Fields, pipeline.Field{Key: "file", Value: "/var/log/" + src + ".log"})
	return true, nil
}

func TestKeyField(t *testing.T) {
	tp := topic(t)
	c := cluster(t, []string{tp})
	cfg := testConfig(c, tp)
	cfg.KeyField = "file"
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 3000, ChunkLines: 250}
	ship(t, cfg, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{fileField{}}})
	recs := consume(t, c.ListenAddrs(), 3*3000, tp)
	if err := pipelinetest.CheckSequences(byPartition(t, recs), in.Want()); err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		src, _, _ := pipelinetest.ParseLine(string(rec.Value))
		if want := "/var/log/" + src + ".log"; string(rec.Key) != want {
			t.Fatalf("record %q has key %q, want %q", rec.Value, rec.Key, want)
		}
	}
}

// service sets field "service" per source: a is "api", b is "Web UI"
// (which a topic name cannot hold), c has none.
type service struct{}

func (service) Process(ev *pipeline.Event) (bool, error) {
	src, _, _ := pipelinetest.ParseLine(string(ev.Raw))
	switch src {
	case "a":
		ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: "api"})
	case "b":
		ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: "Web UI"})
	}
	return true, nil
}

// TestJSONAndTopicTemplate: format = "json" makes the value the event as
// JSON, and %{service} picks the topic per event, folded into a valid
// name; an event without the field goes to "unknown".
func TestJSONAndTopicTemplate(t *testing.T) {
	base := topic(t)
	topics := []string{base + "-api", base + "-Web_UI", base + "-unknown"}
	c := cluster(t, topics)
	cfg := testConfig(c, base+"-%{service}")
	cfg.Format = "json"
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 2000, ChunkLines: 100}
	ship(t, cfg, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{service{}},
		Fields: []pipeline.Field{{Key: "host", Value: "web-1"}}})
	wantTopic := map[string]string{"a": topics[0], "b": topics[1], "c": topics[2]}
	recs := consume(t, c.ListenAddrs(), 3*2000, topics...)
	for _, rec := range recs {
		var doc struct{ Message, Host, Service string }
		if err := json.Unmarshal(rec.Value, &doc); err != nil {
			t.Fatalf("value %q: %v", rec.Value, err)
		}
		src, _, err := pipelinetest.ParseLine(doc.Message)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Topic != wantTopic[src] || doc.Host != "web-1" {
			t.Fatalf("record %q in topic %s, want %s", rec.Value, rec.Topic, wantTopic[src])
		}
		rec.Value = []byte(doc.Message)
	}
	if err := pipelinetest.CheckSequences(byPartition(t, recs), in.Want()); err != nil {
		t.Fatal(err)
	}
}

// failProduce answers the next n produce requests with err for every
// partition, without appending anything, as a broker does on
// NOT_ENOUGH_REPLICAS; it counts them in hits.
func failProduce(c *kfake.Cluster, n int64, err *kerr.Error, hits *atomic.Int64) {
	c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if hits.Load() >= n {
			return nil, nil, false
		}
		c.KeepControl()
		hits.Add(1)
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = err.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
}

// TestRetriableProduceErrors: the broker refuses produce requests with
// retriable errors. The producer retries them itself (idempotently, so
// nothing is written twice); when they last longer than delivery_timeout,
// the records go back to the runner and are retried from there. Nothing
// is lost or duplicated, and each partition keeps its order.
func TestRetriableProduceErrors(t *testing.T) {
	cases := []struct {
		name            string
		err             *kerr.Error
		n               int64
		deliveryTimeout time.Duration
		runnerRetries   bool
	}{
		{"within the producer", kerr.NotEnoughReplicas, 30, 30 * time.Second, false},
		{"leader moved", kerr.NotLeaderForPartition, 10, 30 * time.Second, false},
		{"past delivery_timeout", kerr.NotEnoughReplicas, 60, time.Second, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp := topic(t)
			c := cluster(t, []string{tp})
			var hits atomic.Int64
			failProduce(c, tc.n, tc.err, &hits)
			cfg := testConfig(c, tp)
			cfg.DeliveryTimeout = config.Dur(tc.deliveryTimeout)
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 3000, ChunkLines: 200}
			r := ship(t, cfg, in, pipelinetest.ShipOptions{})
			recs := consume(t, c.ListenAddrs(), 3*3000, tp)
			if err := pipelinetest.CheckSequences(byPartition(t, recs), in.Want()); err != nil {
				t.Fatal(err)
			}
			if hits.Load() != tc.n {
				t.Fatalf("%d produce requests refused, want %d", hits.Load(), tc.n)
			}
			if f := r.Out.Failures.Load(); tc.runnerRetries != (f > 0) {
				t.Fatalf("%d failed writes reached the runner (runner retries expected: %v)", f, tc.runnerRetries)
			}
			if r.Out.Rejected.Load() != 0 {
				t.Fatalf("%d rejected", r.Out.Rejected.Load())
			}
			t.Logf("%d requests refused; %d failed writes, %d retries in the runner", hits.Load(), r.Out.Failures.Load(), r.Out.Retries.Load())
		})
	}
}

// bigLine replaces line 700 of source b with a 256 KiB line of random
// text, which no codec shrinks below 64 KiB.
type bigLine struct{ line []byte }

func newBigLine() *bigLine {
	raw := make([]byte, 192<<10)
	rand.Read(raw)
	return &bigLine{[]byte("b 00000700 " + base64.StdEncoding.EncodeToString(raw))}
}

func (b *bigLine) Process(ev *pipeline.Event) (bool, error) {
	if string(ev.Raw) == "b 00000700" {
		ev.Raw = b.line
	}
	return true, nil
}

// TestMessageTooLarge: one record is larger than the broker takes. It is
// dead-lettered, with the reason; every other line arrives once, in order,
// and the checkpoint reaches the end. The broker refuses the whole record
// batch holding it, so the output must find the one record that is too
// large (broker); or the producer refuses the record before sending it,
// when max_message_bytes says what the broker takes (client).
func TestMessageTooLarge(t *testing.T) {
	for _, where := range []string{"broker", "client"} {
		t.Run(where, func(t *testing.T) {
			tp := topic(t)
			c := cluster(t, []string{tp}, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "65536"}))
			cfg := testConfig(c, tp)
			cfg.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
			if where == "client" {
				cfg.MaxMessageBytes = 65536
			}
			big := newBigLine()
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 2000, ChunkLines: 100}
			r := ship(t, cfg, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{big}})
			recs := consume(t, c.ListenAddrs(), 2*2000-1, tp)
			lines := byPartition(t, recs)
			// Every line but b 700, once, in order.
			var rest []string
			for _, l := range lines {
				if l == "b 00000700" || len(l) > 1000 {
					t.Fatalf("the big line arrived")
				}
				if src, seq, _ := pipelinetest.ParseLine(l); src == "b" && seq > 700 {
					l = fmt.Sprintf("b %08d", seq-1)
				}
				rest = append(rest, l)
			}
			if err := pipelinetest.CheckSequences(rest, map[string]int{"a": 2000, "b": 1999}); err != nil {
				t.Fatal(err)
			}
			dead := readDeadLetter(t, cfg.DeadLetterPath)
			if len(dead) != 1 || dead[0].Line != string(big.line) || !strings.Contains(dead[0].Error, "MESSAGE_TOO_LARGE") {
				t.Fatalf("dead letters: %d, %+v", len(dead), trimDead(dead))
			}
			if r.Out.DeadLettered.Load() != 1 || r.Out.Delivered.Load() != 2*2000-1 {
				t.Fatalf("dead-lettered %d, delivered %d", r.Out.DeadLettered.Load(), r.Out.Delivered.Load())
			}
		})
	}
}

type deadLetter struct {
	Output, Reason, Error, Line string
}

func readDeadLetter(t *testing.T, path string) []deadLetter {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []deadLetter
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var d deadLetter
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("dead letter %.200q: %v", sc.Text(), err)
		}
		out = append(out, d)
	}
	return out
}

func trimDead(ds []deadLetter) []deadLetter {
	for i := range ds {
		if len(ds[i].Line) > 40 {
			ds[i].Line = ds[i].Line[:40] + "..."
		}
	}
	return ds
}

// TestStalledBroker: the broker holds every produce request for a while,
// then answers. Meanwhile nothing is committed (the lines are not
// confirmed); afterwards every line arrives once, in order.
func TestStalledBroker(t *testing.T) {
	tp := topic(t)
	c := cluster(t, []string{tp})
	release := make(chan struct{})
	var held atomic.Int64
	stalled := make(chan struct{}, 1)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-release:
			c.DropControl()
			return nil, nil, false
		default:
		}
		held.Add(1)
		select {
		case stalled <- struct{}{}:
		default:
		}
		c.SleepControl(func() { <-release })
		return nil, nil, false // then handled as usual
	})
	cfg := testConfig(c, tp)
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 3000, ChunkLines: 200}
	out := build(t, cfg)
	done := make(chan *pipeline.Runner, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "kafka", out, cfg.OutputSettings, pipelinetest.ShipOptions{})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	<-stalled
	time.Sleep(time.Second)
	for _, s := range in.Sources {
		if got := in.Committed(s); got != 0 {
			t.Errorf("source %s committed %d while the broker held every produce request", s, got)
		}
	}
	if n := len(consumeFor(t, c.ListenAddrs(), 1, time.Second, tp)); n != 0 {
		t.Errorf("%d records readable while the broker held every produce request", n)
	}
	close(release)
	<-done
	for _, s := range in.Sources {
		if got, want := in.Committed(s), in.Size(s); got != want {
			t.Errorf("source %s: committed %d of %d", s, got, want)
		}
	}
	recs := consume(t, c.ListenAddrs(), 2*3000, tp)
	if err := pipelinetest.CheckSequences(byPartition(t, recs), in.Want()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d produce requests held", held.Load())
}

// TestBrokerDownThenUp: the output is built while no broker answers; the
// batches fail and are retried until the cluster is there.
func TestBrokerDownThenUp(t *testing.T) {
	tp := topic(t)
	probe := cluster(t, nil)
	addr := probe.ListenAddrs()[0]
	probe.Close()
	cfg := DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.Topic = tp
	cfg.Inputs = []string{"in"}
	cfg.Batch.Timeout = config.Dur(20 * time.Millisecond)
	cfg.DeliveryTimeout = config.Dur(time.Second)
	cfg.Retry.Initial = config.Dur(10 * time.Millisecond)
	cfg.Retry.Max = config.Dur(100 * time.Millisecond)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 2000, ChunkLines: 100}
	out := build(t, cfg)
	done := make(chan *pipeline.Runner, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "kafka", out, cfg.OutputSettings, pipelinetest.ShipOptions{})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	time.Sleep(time.Second)
	var port int
	fmt.Sscanf(addr[strings.LastIndexByte(addr, ':')+1:], "%d", &port)
	var c *kfake.Cluster
	for i := 0; ; i++ {
		var err error
		c, err = kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(4, tp))
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer closeCluster(c)
	r := <-done
	if in.Committed("a") != in.Size("a") {
		t.Fatalf("committed %d of %d", in.Committed("a"), in.Size("a"))
	}
	if err := pipelinetest.CheckSequences(byPartition(t, consume(t, c.ListenAddrs(), 2000, tp)), in.Want()); err != nil {
		t.Fatal(err)
	}
	if r.Out.Failures.Load() == 0 {
		t.Fatal("no failed write while the broker was down")
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{kafkasasl.Plain, kafkasasl.ScramSHA256, kafkasasl.ScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			tp := topic(t)
			c := cluster(t, []string{tp}, kfake.EnableSASL(), kfake.Superuser(mech, "shipper", "s3cret-pass"))
			pwFile := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(pwFile, []byte("s3cret-pass\n"), 0o600)
			cfg := testConfig(c, tp)
			cfg.SASL = kafkasasl.Config{Mechanism: mech, Username: "shipper", PasswordFile: pwFile}
			in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
			ship(t, cfg, in, pipelinetest.ShipOptions{})
			if err := pipelinetest.CheckSequences(values(consumeSASL(t, c, mech, tp, 1000)), in.Want()); err != nil {
				t.Fatal(err)
			}

			// A wrong password fails the write, retryably, and the error
			// does not carry the password.
			cfg.SASL = kafkasasl.Config{Mechanism: mech, Username: "shipper", Password: "wrong-pass-xyz"}
			cfg.DeliveryTimeout = config.Dur(time.Second)
			core, logs := observer.New(zap.DebugLevel)
			out, err := cfg.Build(pipeline.BuildContext{Name: "kafka", Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			err = out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
			out.Close(t.Context())
			if err == nil || pipeline.IsPermanent(err) || strings.Contains(err.Error(), "wrong-pass-xyz") {
				t.Fatalf("error %v", err)
			}
			for _, e := range logs.All() {
				if line := fmt.Sprintf("%s %v", e.Message, e.ContextMap()); strings.Contains(line, "wrong-pass-xyz") {
					t.Fatalf("the password is logged: %s", line)
				}
			}
			t.Logf("wrong password: %v", err)
		})
	}
}

func consumeSASL(t *testing.T, c *kfake.Cluster, mech, tp string, want int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(tp),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.SASL(kafkasasl.Mechanism(mech, "shipper", "s3cret-pass")))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(recs) < want && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	return recs
}

func TestTLS(t *testing.T) {
	ca := configtest.NewCA(t)
	tp := topic(t)
	c := cluster(t, []string{tp}, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.Server()}}))

	t.Run("verified", func(t *testing.T) {
		cfg := testConfig(c, tp)
		cfg.TLS = config.TLS{Enabled: true, CAFile: ca.CAFile}
		in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
		ship(t, cfg, in, pipelinetest.ShipOptions{})
		cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(tp),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DialTLSConfig(&tls.Config{RootCAs: ca.Pool()}))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var recs []*kgo.Record
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		for len(recs) < 1000 && ctx.Err() == nil {
			recs = append(recs, cl.PollFetches(ctx).Records()...)
		}
		if err := pipelinetest.CheckSequences(values(recs), in.Want()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		cfg := testConfig(c, tp)
		cfg.TLS = config.TLS{Enabled: true}
		cfg.DeliveryTimeout = config.Dur(time.Second)
		out := build(t, cfg)
		defer out.Close(t.Context())
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
		if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestForcedStopAbandonsWrite: a write stuck on a stalled broker returns
// when its context ends; closing the output then does not hang, and the
// batch's memory is not used by the client afterwards (the race detector
// would see it).
func TestForcedStopAbandonsWrite(t *testing.T) {
	tp := topic(t)
	c := cluster(t, []string{tp})
	release := make(chan struct{})
	var sleeping, resumed atomic.Int64
	// kfake deadlocks in Close when a slept control wakes at the same
	// moment (continueSleptControl waits for a lock the dying control
	// holds), so every held request is released and seen to resume before
	// the cluster closes.
	defer func() {
		close(release)
		for deadline := time.Now().Add(10 * time.Second); resumed.Load() < sleeping.Load() && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}()
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		select {
		case <-release:
			return nil, nil, false
		default:
		}
		sleeping.Add(1)
		c.SleepControl(func() { <-release })
		resumed.Add(1)
		return nil, nil, false
	})
	out := build(t, testConfig(c, tp))
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	lines := make([]string, 100)
	for i := range lines {
		lines[i] = pipelinetest.Line("a", i)
	}
	b := pipeline.NewTestBatch(&pipeline.Source{Name: "a"}, lines...)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := out.Write(ctx, b); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("write error %v", err)
		}
	})
	wg.Wait()
	closed := make(chan struct{})
	go func() { out.Close(context.Background()); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("close hangs")
	}
}

// TestMaxInFlight: several batches produced at once through the one
// client; every line arrives exactly once (order across batches is what
// max_in_flight > 1 gives up).
func TestMaxInFlight(t *testing.T) {
	tp := topic(t)
	c := cluster(t, []string{tp})
	cfg := testConfig(c, tp)
	cfg.MaxInFlight = 4
	cfg.Batch.MaxEvents = 200
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 4000, ChunkLines: 100}
	r := ship(t, cfg, in, pipelinetest.ShipOptions{})
	seen := map[string]int{}
	for _, v := range values(consume(t, c.ListenAddrs(), 3*4000, tp)) {
		seen[v]++
	}
	for _, s := range in.Sources {
		for i := range in.Lines {
			if l := strings.TrimSuffix(pipelinetest.Line(s, i), "\n"); seen[l] != 1 {
				t.Fatalf("line %q arrived %d times", l, seen[l])
			}
		}
	}
	if len(seen) != 3*4000 || r.Out.Delivered.Load() != 3*4000 {
		t.Fatalf("%d distinct lines, %d delivered", len(seen), r.Out.Delivered.Load())
	}
}
