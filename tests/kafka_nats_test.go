package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const kafkaNATSConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"

[outputs.kafka]
type = "kafka"
inputs = ["logs"]
brokers = ["KAFKAADDR"]
topic = "KAFKATOPIC"
batch = { max_events = 2000, timeout = "100ms" }
retry = { initial = "5ms", max = "50ms" }
dead_letter_path = "%[1]s/data/kafka-dead.jsonl"

[outputs.rabbit]
type = "amqp"
inputs = ["logs"]
url = "amqp://guest:guest@127.0.0.1:5672/"
exchange = "EXCHANGE"
routing_key = "logs"
batch = { max_events = 1000, timeout = "100ms" }
dead_letter_path = "%[1]s/data/rabbit-dead.jsonl"
`

// natsOutputConfig is added to kafkaNATSConfig when NATS is reachable.
const natsOutputConfig = `
[outputs.nats]
type = "nats"
inputs = ["logs"]
url = "nats://127.0.0.1:4222"
subject = "NATSSUBJECT"
format = "json"
batch = { max_events = 3000, timeout = "100ms" }
retry = { initial = "5ms", max = "50ms" }
dead_letter_path = "%[1]s/data/nats-dead.jsonl"
`

// TestFanOutToKafkaRabbitMQAndNATSThenResume runs the binary shipping two
// files to Kafka (an in-process kfake cluster that refuses every fifth
// produce request with a retriable error) and to the real RabbitMQ at once
// (issue 5's fan-out to two outputs), and to the real NATS JetStream server
// as a third output when it is reachable; it adds lines while the agent
// runs, stops it with SIGTERM, restarts it with more lines, and checks at
// every far end that every sequence number arrived exactly once, in file
// order (per partition for Kafka, where records are keyed by file).
// Without NATS the Kafka and RabbitMQ part still runs (NATS is required,
// like every service, under TAILSHIP_REQUIRE_SERVICES=1).
func TestFanOutToKafkaRabbitMQAndNATSThenResume(t *testing.T) {
	withNATS := true
	if c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second); err != nil {
		msg := fmt.Sprintf("NATS with JetStream is not reachable at 127.0.0.1:4222 (%v; start it with: nats-server -js)", err)
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Logf("%s: shipping to Kafka and RabbitMQ only", msg)
		withNATS = false
	} else {
		c.Close()
	}
	id := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano())
	topic := "e2e-" + id

	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	var produces, refused atomic.Int64
	kc.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		kc.KeepControl()
		if produces.Add(1)%5 != 0 {
			return nil, nil, false
		}
		refused.Add(1)
		req := kr.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	var (
		js     jetstream.JetStream
		stream string
		conf   = kafkaNATSConfig
	)
	subject := "tailship.e2e." + id + ".logs"
	if withNATS {
		nc, err := nats.Connect("nats://127.0.0.1:4222")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		js, _ = jetstream.New(nc)
		stream = "TAILSHIP_E2E_" + id
		if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Storage: jetstream.MemoryStorage}); err != nil {
			t.Fatal(err)
		}
		defer js.DeleteStream(context.Background(), stream)
		conf += natsOutputConfig
	}

	rabbit := consumeRabbit(t, "tailship-e2e-fanout."+id)

	dir := t.TempDir()
	tmpl := strings.NewReplacer("KAFKAADDR", kc.ListenAddrs()[0], "KAFKATOPIC", topic, "NATSSUBJECT", subject,
		"EXCHANGE", rabbit.exchange).Replace(conf)
	cfg := writeConfig(t, dir, tmpl)
	want := map[string]int{"n0": 30000, "n1": 20000}
	for f, n := range want {
		appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, 0, n)
	}
	total := func() int { return want["n0"] + want["n1"] }
	kafkaLines := func() []string { return readKafka(t, kc.ListenAddrs(), topic) }
	natsLines := func() []string {
		if !withNATS {
			return nil
		}
		return readNATS(t, js, stream)
	}
	waitFor := func(a *agentProc, n int) {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			k, s, r := len(kafkaLines()), len(natsLines()), len(rabbit.lines())
			if k >= n && (s >= n || !withNATS) && r >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("waited for %d lines: kafka has %d, nats %d, rabbitmq %d; log:\n%s", n, k, s, r, a.log)
			}
			if a.cmd.ProcessState != nil {
				t.Fatalf("agent exited early; log:\n%s", a.log)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	a := startAgent(t, cfg)
	waitFor(a, total())
	for f := range want {
		appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, want[f], want[f]+5000)
		want[f] += 5000
	}
	time.Sleep(300 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, a.log)
	}
	for f := range want {
		appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, want[f], want[f]+3000)
		want[f] += 3000
	}
	a = startAgent(t, cfg)
	waitFor(a, total())
	time.Sleep(500 * time.Millisecond) // a duplicate would show up now
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}

	kl := kafkaLines()
	lost, dup, err := tally(kl, want, inOrder)
	if err != nil || lost != 0 || dup != 0 {
		t.Errorf("kafka: lost %d, duplicated %d, err %v", lost, dup, err)
	}
	nl := natsLines()
	if withNATS {
		lost, dup, err = tally(nl, want, inOrder)
		if err != nil || lost != 0 || dup != 0 {
			t.Errorf("nats: lost %d, duplicated %d, err %v", lost, dup, err)
		}
	}
	rl := rabbit.lines()
	lost, dup, err = tally(rl, want, inOrder)
	if err != nil || lost != 0 || dup != 0 {
		t.Errorf("rabbitmq: lost %d, duplicated %d, err %v", lost, dup, err)
	}
	if refused.Load() == 0 {
		t.Error("no produce request was refused: the fault did not happen")
	}
	for _, f := range []string{"kafka-dead.jsonl", "nats-dead.jsonl", "rabbit-dead.jsonl"} {
		if _, err := os.Stat(filepath.Join(dir, "data", f)); err == nil {
			t.Errorf("%s exists: nothing may be rejected", f)
		}
	}
	t.Logf("kafka: %d records (%d of %d produce requests refused); rabbitmq: %d messages; nats (included: %v): %d messages", len(kl), refused.Load(), produces.Load(), len(rl), withNATS, len(nl))
}

// readKafka returns every record value of topic, partition after
// partition, each in offset order.
func readKafka(t *testing.T, addrs []string, topic string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byPart := map[int32][]*kgo.Record{}
	for idle := 0; idle < 3; {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		recs := fs.Records()
		if len(recs) == 0 {
			idle++
		}
		for _, r := range recs {
			byPart[r.Partition] = append(byPart[r.Partition], r)
		}
	}
	parts := make([]int32, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var out []string
	for _, p := range parts {
		for _, r := range byPart[p] {
			out = append(out, string(r.Value))
		}
	}
	return out
}

// readNATS returns the message of every JSON event in the stream, in
// stream order.
func readNATS(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for uint64(len(out)) < info.State.Msgs {
		batch, err := cons.Fetch(2000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			var doc struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(m.Data(), &doc); err != nil {
				t.Fatalf("message %q: %v", m.Data(), err)
			}
			out = append(out, doc.Message)
			got++
		}
		if got == 0 {
			break
		}
	}
	return out
}

// rabbitSink is a queue bound to a fresh exchange on the local RabbitMQ,
// consumed for the test's lifetime.
type rabbitSink struct {
	exchange string
	mu       sync.Mutex
	got      []string
}

func consumeRabbit(t *testing.T, exchange string) *rabbitSink {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	needService(t, "RabbitMQ at 127.0.0.1:5672", err, "rabbitmq-server -detached")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare(exchange, false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "logs", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &rabbitSink{exchange: exchange}
	var wg sync.WaitGroup
	wg.Go(func() {
		for d := range deliveries {
			s.mu.Lock()
			s.got = append(s.got, trimNL(string(d.Body)))
			s.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ch.ExchangeDelete(exchange, false, false)
		ch.Close()
		conn.Close()
		wg.Wait()
	})
	return s
}

func (s *rabbitSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}
