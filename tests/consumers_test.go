package tests

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// bulkSink is a fake Elasticsearch _bulk endpoint: it checks the request
// as Elasticsearch would, keeps every document's message and index in the
// order indexed, and answers 503 to every request while down is set.
type bulkSink struct {
	down     atomic.Bool
	requests atomic.Int64
	rejected atomic.Int64 // bulk requests answered 503 because down was set
	mu       sync.Mutex
	messages []string
	indices  map[string]int
}

func newBulkSink(t *testing.T) (*bulkSink, *httptest.Server) {
	s := &bulkSink{indices: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *bulkSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.URL.Path != "/_bulk" || r.Method != http.MethodPost {
		http.Error(w, "no handler", http.StatusNotFound)
		return
	}
	if s.down.Load() {
		s.rejected.Add(1)
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, "bad gzip", http.StatusBadRequest)
			return
		}
		body = zr
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var msgs, idx []string
	var items []string
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || action["create"].Index == "" {
			http.Error(w, "bad action", http.StatusBadRequest)
			return
		}
		if !sc.Scan() {
			http.Error(w, "action without document", http.StatusBadRequest)
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			http.Error(w, "bad document", http.StatusBadRequest)
			return
		}
		m, _ := doc["message"].(string)
		msgs = append(msgs, m)
		idx = append(idx, action["create"].Index)
		items = append(items, `{"create":{"status":201}}`)
	}
	s.mu.Lock()
	s.messages = append(s.messages, msgs...)
	for _, i := range idx {
		s.indices[i]++
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"took":1,"errors":false,"items":[%s]}`, strings.Join(items, ","))
}

func (s *bulkSink) snapshot() ([]string, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := map[string]int{}
	for k, v := range s.indices {
		idx[k] = v
	}
	return append([]string(nil), s.messages...), idx
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool, logs ...*agentProc) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, p := range logs {
				b.WriteString(p.log.String())
			}
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rabbit(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	needService(t, "RabbitMQ", err, "rabbitmq-server -detached")
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ch
}

const nodeConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
fields = { service = "app" }

[outputs.rabbit]
type = "amqp"
inputs = ["logs"]
url = "amqp://guest:guest@127.0.0.1:5672/"
exchange = "EXCHANGE"
exchange_type = "topic"
exchange_durable = false
routing_key = "logs.%%{service}"
format = "json"
batch = { max_events = 1000, timeout = "50ms" }
`

const aggregatorConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "20s"

[api]
listen = ""

[inputs.rabbit]
type = "amqp"
url = "amqp://guest:${RABBIT_PASSWORD:-guest}@127.0.0.1:5672/"
queue = "QUEUE"
queue_durable = false
exchange = "EXCHANGE"
routing_key = "logs.#"
prefetch = 1000
parser = "json"

[outputs.search]
type = "http"
inputs = ["rabbit"]
url = "ESURL"
format = "elasticsearch"
index = "logs-%%{service}-%%{metadata.routing_key}"
batch = { max_events = 700, timeout = "50ms" }
retry = { initial = "50ms", max = "300ms" }
`

// TestAggregatorRabbitMQToElasticsearch: file -> tailship (node agent,
// amqp output) -> RabbitMQ -> tailship (aggregator, amqp input) -> a fake
// Elasticsearch _bulk endpoint. The endpoint is down for a while: the
// queue then holds what the aggregator cannot deliver (its prefetch window
// unacknowledged, the rest ready); once it is back every line arrives
// exactly once, in order, in the index named from the event's field and
// the message's routing key, and the queue ends empty.
func TestAggregatorRabbitMQToElasticsearch(t *testing.T) {
	ch := rabbit(t)
	id := fmt.Sprintf("tailship-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())
	exchange, queue := id+".x", id+".q"
	if err := ch.ExchangeDeclare(exchange, "topic", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c := rabbit(t)
		c.QueueDelete(queue, false, false, false)
		c.ExchangeDelete(exchange, false, false)
	})
	es, srv := newBulkSink(t)
	es.down.Store(true)

	nodeDir, aggDir := t.TempDir(), t.TempDir()
	repl := strings.NewReplacer("EXCHANGE", exchange, "QUEUE", queue, "ESURL", srv.URL)
	node := startAgent(t, writeConfig(t, nodeDir, repl.Replace(nodeConfig)))
	agg := startAgent(t, writeConfig(t, aggDir, repl.Replace(aggregatorConfig)))

	const n = 30000
	appendSeq(t, filepath.Join(nodeDir, "logs", "a.log"), "a", 0, n/2)
	appendSeq(t, filepath.Join(nodeDir, "logs", "b.log"), "b", 0, n/2)
	// While Elasticsearch is down: the aggregator holds its window
	// unacknowledged and the rest waits in the queue.
	// A passive declare of a queue not there yet closes the channel.
	ready := func() int {
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		if err != nil {
			ch = rabbit(t)
			return -1
		}
		return q.Messages
	}
	waitFor(t, "messages waiting in the queue while Elasticsearch is down", 60*time.Second, func() bool {
		return ready() >= n-1000-200 && es.requests.Load() > 0
	}, node, agg)
	if got, _ := es.snapshot(); len(got) != 0 {
		t.Fatalf("%d documents indexed while down", len(got))
	}
	es.down.Store(false)
	waitFor(t, "every line indexed", 90*time.Second, func() bool {
		got, _ := es.snapshot()
		return len(got) >= n
	}, node, agg)
	waitFor(t, "queue empty", 20*time.Second, func() bool { return ready() == 0 })
	if code := agg.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("aggregator exit %d; log:\n%s", code, agg.log)
	}
	if code := node.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("node exit %d; log:\n%s", code, node.log)
	}
	if r := ready(); r != 0 {
		t.Fatalf("after the aggregator stopped, %d messages were requeued: delivered but not acknowledged", r)
	}
	got, idx := es.snapshot()
	lost, dup, err := tally(got, map[string]int{"a": n / 2, "b": n / 2}, inOrder)
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d, %v", lost, dup, err)
	}
	if want := "logs-app-logs.app"; idx[want] != n || len(idx) != 1 {
		t.Fatalf("indices %v, want all %d in %s", idx, n, want)
	}
}

func redisClient(t *testing.T) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379", DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	needService(t, "Redis", c.Ping(ctx).Err(), `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no`)
	t.Cleanup(func() { c.Close() })
	return c
}

const consumerConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "20s"

[api]
listen = ""

[inputs.in]
INPUT

[outputs.search]
type = "http"
inputs = ["in"]
url = "ESURL"
format = "elasticsearch"
index = "logs"
batch = { max_events = 500, timeout = "50ms" }
retry = { initial = "50ms", max = "300ms" }
`

// killN is how many sequence numbers consumerKill publishes per source;
// half are delivered before Elasticsearch goes down.
const killN = 6000

// consumerCase is one broker input run through consumerKill.
type consumerCase struct {
	input string // the [inputs.in] body
	// sources are the names publish numbers messages under (seqLine's
	// first field), nil for {"m"}: several where the broker keeps order
	// only per partition.
	sources []string
	// publish puts sequence numbers [from, to) of every source in the
	// broker.
	publish func(from, to int)
	// held reports that the broker holds exactly the second half
	// unacknowledged (pending, uncommitted) and the first half settled.
	held func() bool
	// settled reports that the broker holds nothing unacknowledged.
	settled func() bool
	// order is what the far end may see: restartsOK where a redelivery
	// starts over from the oldest unacknowledged message, orderElsewhere
	// where the broker redelivers single messages after later ones.
	order order
}

// consumerKill runs a consumer input in the real binary against a fake
// Elasticsearch: the first half of the messages is delivered, then
// Elasticsearch goes down, the second half is published, and tailship is
// SIGKILLed while it has them in hand and the broker still holds them
// unacknowledged (held, checked once the output has failed and again
// after more failed retries). The kill thus always lands with undelivered
// messages taken from the broker. A new tailship delivers the rest: every
// message at least once, none lost, order as c.order allows, and nothing
// left unacknowledged.
func consumerKill(t *testing.T, c consumerCase) {
	es, srv := newBulkSink(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, strings.NewReplacer("INPUT", c.input, "ESURL", srv.URL).Replace(consumerConfig))
	if c.sources == nil {
		c.sources = []string{"m"}
	}
	want := map[string]int{}
	for _, s := range c.sources {
		want[s] = killN
	}
	total := len(c.sources) * killN
	p := startAgent(t, cfg)
	c.publish(0, killN/2)
	waitFor(t, "first half indexed", 60*time.Second, func() bool { got, _ := es.snapshot(); return len(got) >= total/2 }, p)
	es.down.Store(true)
	c.publish(killN/2, killN)
	// Everything published before the outage is indexed, so a rejected
	// request carries messages of the second half: tailship has them.
	waitFor(t, "a bulk request of the second half rejected", 60*time.Second, func() bool { return es.rejected.Load() > 0 }, p)
	waitFor(t, "messages held unacknowledged in the broker while Elasticsearch is down", 60*time.Second, c.held, p)
	r := es.rejected.Load()
	waitFor(t, "more failed retries", 30*time.Second, func() bool { return es.rejected.Load() >= r+3 }, p)
	if !c.held() {
		t.Fatalf("the broker stopped holding the undelivered messages while Elasticsearch was still down; log:\n%s", p.log)
	}
	if got, _ := es.snapshot(); len(got) != total/2 {
		t.Fatalf("%d messages indexed while Elasticsearch was down, want the %d from before", len(got), total/2)
	}
	p.stop(syscall.SIGKILL)
	es.down.Store(false)
	p = startAgent(t, cfg)
	waitFor(t, "every message indexed after the restart", 90*time.Second, func() bool {
		got, _ := es.snapshot()
		lost, _, _ := tally(got, want, c.order)
		return lost == 0
	}, p)
	waitFor(t, "everything acknowledged", 30*time.Second, c.settled, p)
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d; log:\n%s", code, p.log)
	}
	got, _ := es.snapshot()
	lost, dup, err := tally(got, want, c.order)
	if err != nil || lost != 0 {
		t.Fatalf("lost %d, %v", lost, err)
	}
	t.Logf("%d messages, %d delivered again after the SIGKILL (at least once)", total, dup)
}

func seqBody(i int) string { return strings.TrimSuffix(seqLine("m", i), "\n") }

// TestRedisStreamInputThroughSIGKILL: see consumerKill; held is XPENDING.
func TestRedisStreamInputThroughSIGKILL(t *testing.T) {
	c := redisClient(t)
	ctx := context.Background()
	key := fmt.Sprintf("tailship-e2e:stream:%d:%d", os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() { c.Del(ctx, key) })
	input := fmt.Sprintf("type = \"redis\"\nmode = \"stream\"\nkey = %q\ngroup = \"agg\"\nconsumer = \"one\"\nstart = \"beginning\"\nblock = \"100ms\"", key)
	pending := func() int64 {
		p, err := c.XPending(ctx, key, "agg").Result()
		if err != nil {
			return -1
		}
		return p.Count
	}
	consumerKill(t, consumerCase{input: input, order: restartsOK, publish: func(from, to int) {
		pipe := c.Pipeline()
		for i := from; i < to; i++ {
			pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"message", seqBody(i)}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}, held: func() bool { return pending() >= killN/2 }, settled: func() bool { return pending() == 0 }})
}

// TestRedisListInputThroughSIGKILL: see consumerKill; held is the LLEN of
// the processing list.
func TestRedisListInputThroughSIGKILL(t *testing.T) {
	c := redisClient(t)
	ctx := context.Background()
	key := fmt.Sprintf("tailship-e2e:list:%d:%d", os.Getpid(), time.Now().UnixNano())
	proc := key + ":work"
	t.Cleanup(func() { c.Del(ctx, key, proc) })
	input := fmt.Sprintf("type = \"redis\"\nmode = \"list\"\nkey = %q\nprocessing_key = %q", key, proc)
	consumerKill(t, consumerCase{input: input, order: restartsOK, publish: func(from, to int) {
		var vals []any
		for i := from; i < to; i++ {
			vals = append(vals, seqBody(i))
		}
		if err := c.RPush(ctx, key, vals...).Err(); err != nil {
			t.Fatal(err)
		}
	}, held: func() bool { return c.LLen(ctx, proc).Val() >= killN/2 && c.LLen(ctx, key).Val() == 0 },
		settled: func() bool { return c.LLen(ctx, proc).Val() == 0 && c.LLen(ctx, key).Val() == 0 }})
}

// TestAMQPInputThroughSIGKILL: see consumerKill; held is the prefetch
// window: the queue's ready count stays at what the window does not hold.
func TestAMQPInputThroughSIGKILL(t *testing.T) {
	ch := rabbit(t)
	queue := fmt.Sprintf("tailship-e2e-kill-%d-%d", os.Getpid(), time.Now().UnixNano())
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rabbit(t).QueueDelete(queue, false, false, false) })
	input := fmt.Sprintf("type = \"amqp\"\nurl = \"amqp://guest:guest@127.0.0.1:5672/\"\nqueue = %q\nprefetch = 1000", queue)
	ready := func() int {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			return -1
		}
		return q.Messages
	}
	consumerKill(t, consumerCase{input: input, order: restartsOK, publish: func(from, to int) {
		for i := from; i < to; i++ {
			if err := ch.PublishWithContext(context.Background(), "", queue, false, false, amqp.Publishing{Body: []byte(seqBody(i)), DeliveryMode: amqp.Persistent}); err != nil {
				t.Fatal(err)
			}
		}
	}, held: func() bool { return ready() == killN/2-1000 }, settled: func() bool { return ready() == 0 }})
}

// TestStdinPipeExitsZero: printf ... | tailship run ships every line,
// the last one without a newline, and exits 0 once all are delivered,
// although the receiver is down at first.
func TestStdinPipeExitsZero(t *testing.T) {
	es, srv := newBulkSink(t)
	es.down.Store(true)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, strings.NewReplacer("INPUT", "type = \"stdin\"", "ESURL", srv.URL).Replace(consumerConfig))
	const n = 5000
	var b strings.Builder
	for i := range n {
		b.WriteString(seqLine("m", i))
	}
	lines := filepath.Join(dir, "lines.txt")
	if err := os.WriteFile(lines, []byte(strings.TrimSuffix(b.String(), "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	// A shell pipe, as a user writes it; printf adds the last line with
	// no newline after it.
	script := fmt.Sprintf("{ cat %s; printf '\\n%%s' 'm 000005000 tail'; } | %s run --config %s", lines, binary, cfg)
	cmd := exec.Command("sh", "-c", script)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitFor(t, "a first failed attempt", 30*time.Second, func() bool { return es.requests.Load() > 0 })
	time.Sleep(300 * time.Millisecond)
	es.down.Store(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("tailship: %v; log:\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("tailship did not exit after stdin closed; log:\n%s", out.String())
	}
	got, _ := es.snapshot()
	if len(got) != n+1 || got[n] != "m 000005000 tail" {
		t.Fatalf("got %d lines, want %d ending with the unterminated one; log:\n%s", len(got), n+1, out.String())
	}
	lost, dup, err := tally(got[:n], map[string]int{"m": n}, inOrder)
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("lost %d, duplicated %d, %v", lost, dup, err)
	}
}
