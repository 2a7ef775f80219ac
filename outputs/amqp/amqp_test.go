package amqp

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const brokerURL = "amqp://guest:guest@127.0.0.1:5672/"

// broker returns a channel on the test broker, skipping the test when it is
// unreachable (failing under TAILSHIP_REQUIRE_SERVICES=1, as in CI).
func broker(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.DialConfig(brokerURL, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		msg := fmt.Sprintf("RabbitMQ at 127.0.0.1:5672 is unreachable (%v); start it with: rabbitmq-server -detached", err)
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// unique returns a name no other test run uses.
func unique(t testing.TB) string {
	return fmt.Sprintf("tailship-test.%s.%d.%d", strings.ReplaceAll(t.Name(), "/", "."), os.Getpid(), time.Now().UnixNano())
}

// setup declares an exchange of kind and, for each binding key, an
// exclusive queue bound to it (named after the exchange and the key). The
// exchange is deleted when the test ends; the queues go with the test's
// connection.
func setup(t testing.TB, ch *amqp.Channel, kind string, bindings ...string) (exchange string) {
	t.Helper()
	exchange = unique(t)
	if err := ch.ExchangeDeclare(exchange, kind, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.ExchangeDelete(exchange, false, false) })
	for _, key := range bindings {
		bind(t, ch, exchange, key, nil)
	}
	return exchange
}

func bind(t testing.TB, ch *amqp.Channel, exchange, key string, args amqp.Table) string {
	t.Helper()
	q, err := ch.QueueDeclare(exchange+"."+key, false, false, true, false, args)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, key, exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return q.Name
}

// consumer takes the messages of a queue as they come.
type consumer struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	msgs   []amqp.Delivery
	seen   []bool // by sequence number
	prefix int    // lines 0..prefix-1 are all seen
}

func consume(t testing.TB, ch *amqp.Channel, queue string) *consumer {
	t.Helper()
	tag := unique(t)
	deliveries, err := ch.Consume(queue, tag, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &consumer{}
	c.wg.Go(func() {
		for d := range deliveries {
			c.mu.Lock()
			c.msgs = append(c.msgs, d)
			if _, seq, err := pipelinetest.ParseLine(string(d.Body)); err == nil && seq < 1<<24 {
				for len(c.seen) <= seq {
					c.seen = append(c.seen, false)
				}
				c.seen[seq] = true
				for c.prefix < len(c.seen) && c.seen[c.prefix] {
					c.prefix++
				}
			}
			c.mu.Unlock()
		}
	})
	t.Cleanup(func() { ch.Cancel(tag, false); c.wg.Wait() })
	return c
}

// wait waits until n messages arrived or 10s passed, and returns the
// bodies.
func (c *consumer) wait(n int) []string {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.msgs)
		c.mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c.bodies()
}

func (c *consumer) bodies() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.msgs))
	for i, d := range c.msgs {
		out[i] = string(d.Body)
	}
	return out
}

func testConfig(exchange, key string) *Config {
	c := DefaultConfig()
	c.URL = brokerURL
	c.Exchange = exchange
	c.RoutingKey = key
	c.Inputs = []string{"in"}
	c.Batch.MaxEvents = 500
	c.Batch.Timeout = config.Dur(20 * time.Millisecond)
	c.Retry.Initial = config.Dur(time.Millisecond)
	c.Retry.Max = config.Dur(50 * time.Millisecond)
	return c
}

func build(t testing.TB, c *Config) pipeline.Output {
	t.Helper()
	if err := errors.Join(c.Common().Validate(), c.Validate()); err != nil {
		t.Fatalf("invalid test config: %v", err)
	}
	out, err := c.Build(pipeline.BuildContext{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ship(t *testing.T, c *Config, in *pipelinetest.StaticInput, o pipelinetest.ShipOptions) *pipeline.Runner {
	t.Helper()
	r, _, err := pipelinetest.Ship(in, "amqp", build(t, c), c.OutputSettings, o)
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

// TestPublishConsume: a queue bound to the exchange gets every line once,
// in order per source, as persistent text/plain messages.
func TestPublishConsume(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct", "logs")
	cons := consume(t, ch, ex+".logs")
	c := testConfig(ex, "logs")
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 5000, ChunkLines: 200}
	r := ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(cons.wait(15000), in.Want()); err != nil {
		t.Fatal(err)
	}
	d := cons.msgs[0]
	if d.DeliveryMode != amqp.Persistent || d.ContentType != "text/plain" || d.ContentEncoding != "" {
		t.Errorf("message properties: mode %d, type %q, encoding %q", d.DeliveryMode, d.ContentType, d.ContentEncoding)
	}
	if got := r.Out.Delivered.Load(); got != 15000 {
		t.Errorf("delivered %d, want 15000", got)
	}
}

// serviceProc sets "service" to the line's source, as a parser would.
type serviceProc struct{}

func (serviceProc) Process(ev *pipeline.Event) (bool, error) {
	src, _, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: src})
	return true, nil
}

// TestRoutingKeyTemplate: a topic exchange routes each event by the key
// its fields make; each queue gets its source's lines in order. The
// output declares the exchange itself here.
func TestRoutingKeyTemplate(t *testing.T) {
	ch := broker(t)
	ex := unique(t)
	c := testConfig(ex, "logs.%{env}.%{service}")
	c.ExchangeType = "topic"
	// Declare first (as the output will, with the same settings) so the
	// queues can be bound before shipping.
	if err := ch.ExchangeDeclare(ex, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.ExchangeDelete(ex, false, false) })
	cons := map[string]*consumer{}
	for _, src := range []string{"api", "web"} {
		cons[src] = consume(t, ch, bind(t, ch, ex, "logs.prod."+src, nil))
	}
	in := &pipelinetest.StaticInput{Sources: []string{"api", "web"}, Lines: 3000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{Fields: []pipeline.Field{{Key: "env", Value: "prod"}}, Procs: []pipeline.Processor{serviceProc{}}})
	for src, cn := range cons {
		if err := pipelinetest.CheckSequences(cn.wait(3000), map[string]int{src: 3000}); err != nil {
			t.Errorf("queue %s: %v", src, err)
		}
	}
}

// TestJSONGzip: format = "json" with gzip: each body is a gzip member of
// the event's JSON, labelled content_encoding = gzip.
func TestJSONGzip(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct", "logs")
	cons := consume(t, ch, ex+".logs")
	c := testConfig(ex, "logs")
	c.Format = "json"
	c.Compression = "gzip"
	c.Persistent = false
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 2000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{Fields: []pipeline.Field{{Key: "host", Value: "web-1"}}})
	cons.wait(2000)
	var lines []string
	for _, d := range cons.msgs {
		if d.ContentEncoding != "gzip" || d.ContentType != "application/json" || d.DeliveryMode != amqp.Transient {
			t.Fatalf("properties: encoding %q, type %q, mode %d", d.ContentEncoding, d.ContentType, d.DeliveryMode)
		}
		zr, err := gzip.NewReader(strings.NewReader(string(d.Body)))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Message, Host string }
		if err := json.Unmarshal(plain, &doc); err != nil || doc.Host != "web-1" {
			t.Fatalf("body %s: %v", plain, err)
		}
		lines = append(lines, doc.Message)
	}
	if err := pipelinetest.CheckSequences(lines, in.Want()); err != nil {
		t.Fatal(err)
	}
}

func readDeadLetter(t *testing.T, path string) (lines, errs []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ Line, Error string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		lines = append(lines, rec.Line)
		errs = append(errs, rec.Error)
	}
	return lines, errs
}

// TestUnroutableDeadLettered: with mandatory = true, the messages no queue
// is bound for come back and go to the dead-letter file; the others of the
// same batches are delivered once, in order.
func TestUnroutableDeadLettered(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct", "a")
	cons := consume(t, ch, ex+".a")
	c := testConfig(ex, "%{service}")
	c.Mandatory = true
	c.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 2000, ChunkLines: 100}
	r := ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{serviceProc{}}})
	if err := pipelinetest.CheckSequences(cons.wait(2000), map[string]int{"a": 2000}); err != nil {
		t.Fatal(err)
	}
	dead, reasons := readDeadLetter(t, c.DeadLetterPath)
	if err := pipelinetest.CheckSequences(dead, map[string]int{"b": 2000}); err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	if !strings.Contains(reasons[0], "unroutable") || !strings.Contains(reasons[0], "NO_ROUTE") {
		t.Fatalf("dead-letter reason %q", reasons[0])
	}
	if got := r.Out.DeadLettered.Load(); got != 2000 {
		t.Fatalf("%d dead-lettered, want 2000", got)
	}
}

// longKeyProc gives the events of source "b" a service name too long for a
// routing key.
type longKeyProc struct{}

func (longKeyProc) Process(ev *pipeline.Event) (bool, error) {
	src, _, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	if src == "b" {
		src = strings.Repeat("b", 300)
	}
	ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: src})
	return true, nil
}

// TestRoutingKeyTooLong: an event whose routing key expands beyond AMQP's
// 255 bytes cannot be published, ever: it is dead-lettered at once and the
// other events of its batches are delivered, in order.
func TestRoutingKeyTooLong(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct", "a")
	cons := consume(t, ch, ex+".a")
	c := testConfig(ex, "%{service}")
	c.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 1000, ChunkLines: 100}
	r := ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{longKeyProc{}}})
	if err := pipelinetest.CheckSequences(cons.wait(1000), map[string]int{"a": 1000}); err != nil {
		t.Fatal(err)
	}
	dead, reasons := readDeadLetter(t, c.DeadLetterPath)
	if err := pipelinetest.CheckSequences(dead, map[string]int{"b": 1000}); err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	if !strings.Contains(reasons[0], "routing key of 300 bytes") {
		t.Fatalf("dead-letter reason %q", reasons[0])
	}
	if r.Out.Retries.Load() != 0 {
		t.Fatalf("%d retries for events that can never be published", r.Out.Retries.Load())
	}
}

// TestUnroutableRetried: with unroutable = "retry", returned messages are
// sent again until a queue is bound; then every line arrives, in order
// from the first re-sent one (a batch in flight when the queue appears
// is partly routed and re-sent from its first returned message).
func TestUnroutableRetried(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct")
	c := testConfig(ex, "logs")
	c.Mandatory = true
	c.Unroutable = UnroutableRetry
	out := build(t, c)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 3000, ChunkLines: 100}
	type result struct {
		r   *pipeline.Runner
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "amqp", out, c.OutputSettings, pipelinetest.ShipOptions{})
		done <- result{r, err}
	}()
	// Let a few attempts come back unroutable, then bind a queue.
	time.Sleep(300 * time.Millisecond)
	cons := consume(t, ch, bind(t, ch, ex, "logs", nil))
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	dup := checkResent(t, waitAll(t, cons, 3000), 3000)
	t.Logf("%d lines repeated", dup)
	if res.r.Out.Retries.Load() == 0 {
		t.Fatal("no retry while no queue was bound")
	}
	if res.r.Out.Rejected.Load() != 0 {
		t.Fatalf("%d rejected with unroutable = retry", res.r.Out.Rejected.Load())
	}
}

// TestNackRetried: a queue with x-max-length and x-overflow =
// reject-publish makes the broker nack what does not fit. The batch is
// re-sent from its first nacked message until the consumer makes room;
// every line arrives, the last copy of each in order.
func TestNackRetried(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct")
	q := bind(t, ch, ex, "logs", amqp.Table{"x-max-length": int32(700), "x-overflow": "reject-publish"})
	c := testConfig(ex, "logs")
	out := build(t, c)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 5000, ChunkLines: 100}
	type result struct {
		r   *pipeline.Runner
		err error
	}
	done := make(chan result, 1)
	var runner *pipeline.Runner
	go func() {
		r, _, err := pipelinetest.Ship(in, "amqp", out, c.OutputSettings, pipelinetest.ShipOptions{})
		done <- result{r, err}
	}()
	// The queue fills up (700 of the first 1000 lines fit), the rest is
	// nacked and retried; then a consumer drains the queue.
	deadline := time.Now().Add(10 * time.Second)
	for {
		qi, err := ch.QueueDeclarePassive(q, false, false, true, false, amqp.Table{"x-max-length": int32(700), "x-overflow": "reject-publish"})
		if err != nil {
			t.Fatal(err)
		}
		if qi.Messages >= 700 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a few nacked attempts
	cons := consume(t, ch, q)
	res := <-done
	runner = res.r
	if res.err != nil {
		t.Fatal(res.err)
	}
	dup := checkResent(t, waitAll(t, cons, 5000), 5000)
	if runner.Out.Retries.Load() == 0 {
		t.Fatal("nothing was nacked and retried")
	}
	t.Logf("%d failed attempts while the queue was full, %d lines repeated", runner.Out.Failures.Load(), dup)
}

// proxy forwards TCP connections to RabbitMQ and can cut them all, as a
// broker restart or an operator's close_connection would.
type proxy struct {
	ln      net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
	cuts    int
	stalled chan struct{} // non-nil: the proxy reads nothing from tailship until it is closed
}

// pipe copies from src to dst, holding off while the proxy is stalled.
func (p *proxy) pipe(dst, src net.Conn, fromClient bool) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		if fromClient {
			p.mu.Lock()
			st := p.stalled
			p.mu.Unlock()
			if st != nil {
				<-st
			}
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// stall stops reading from tailship, as a broker under a memory alarm
// does; the returned function resumes.
func (p *proxy) stall() (resume func()) {
	st := make(chan struct{})
	p.mu.Lock()
	p.stalled = st
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		p.stalled = nil
		p.mu.Unlock()
		close(st)
	}
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(up, c, true) })
			p.wg.Go(func() { p.pipe(c, up, false) })
		}
	})
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) > 0 {
		p.cuts++
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// TestConnectionCutMidStream: the connection to the broker is cut over and
// over while the output ships. Nothing is lost, the only repeats are
// messages re-sent after a cut (at least once), and no offset is
// committed before the queue holds every line up to it.
func TestConnectionCutMidStream(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct", "logs")
	cons := consume(t, ch, ex+".logs")
	px := newProxy(t, "127.0.0.1:5672")
	c := testConfig(ex, "logs")
	c.URL = "amqp://guest:guest@" + px.addr() + "/"
	c.Timeout = config.Dur(2 * time.Second)
	const lines = 40000
	lineLen := int64(len(pipelinetest.Line("a", 0)))
	var bad error
	var badMu sync.Mutex
	commits := 0
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: lines, ChunkLines: 100, OnCommit: func(_ string, off int64) {
		// Every line up to a committed offset was confirmed, so it is
		// in the queue and reaches the consumer.
		n := int(off / lineLen)
		commits++
		if err := allSeen(cons, n, 10*time.Second); err != nil {
			badMu.Lock()
			if bad == nil {
				bad = fmt.Errorf("offset %d committed: %w", off, err)
			}
			badMu.Unlock()
		}
	}}
	out := build(t, c)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(40 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				px.cut()
			}
		}
	})
	r, _, err := pipelinetest.Ship(in, "amqp", out, c.OutputSettings, pipelinetest.ShipOptions{})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	badMu.Lock()
	defer badMu.Unlock()
	if bad != nil {
		t.Fatal(bad)
	}
	dup := checkAtLeastOnce(t, waitAll(t, cons, lines), lines)
	if px.cuts == 0 || r.Out.Failures.Load() == 0 {
		t.Fatalf("%d cuts, %d failed attempts: the fault did not happen", px.cuts, r.Out.Failures.Load())
	}
	t.Logf("%d cuts, %d failed attempts, %d lines repeated, %d commits checked", px.cuts, r.Out.Failures.Load(), dup, commits)
}

// waitAll waits until the consumer has seen lines 0..n-1 of one source
// (with repeats, counting messages is not enough) and returns the bodies.
func waitAll(t *testing.T, c *consumer, n int) []string {
	t.Helper()
	if err := allSeen(c, n, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// Repeats of the last lines may still be on their way: everything
	// was confirmed, so they are in the queue; wait until no more come.
	for prev := -1; ; time.Sleep(200 * time.Millisecond) {
		c.mu.Lock()
		got := len(c.msgs)
		c.mu.Unlock()
		if got == prev {
			break
		}
		prev = got
	}
	return c.bodies()
}

// TestBlockedBroker: a broker that stops reading (a resource alarm) makes
// the publish block in the socket write; the attempt still ends, with an
// error, once timeout passes, and once the broker reads again the batch
// goes through on a new connection.
func TestBlockedBroker(t *testing.T) {
	ch := broker(t)
	ex := setup(t, ch, "direct", "logs")
	cons := consume(t, ch, ex+".logs")
	px := newProxy(t, "127.0.0.1:5672")
	c := testConfig(ex, "logs")
	c.URL = "amqp://guest:guest@" + px.addr() + "/"
	c.Timeout = config.Dur(300 * time.Millisecond)
	out := build(t, c)
	defer out.Close(context.Background())
	// A small send buffer, so the batch cannot hide in the kernel.
	out.(*output).dial = func(network, addr string) (net.Conn, error) {
		d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
			return serr
		}}
		return d.Dial(network, addr)
	}
	lines := make([]string, 3000)
	for i := range lines {
		lines[i] = strings.Repeat("p", 800) + " " + strings.TrimSuffix(pipelinetest.Line("a", i), "\n")
	}
	if err := out.Write(context.Background(), pipeline.NewTestBatch(nil, "first")); err != nil {
		t.Fatal(err)
	}
	resume := px.stall()
	err := out.Write(context.Background(), pipeline.NewTestBatch(nil, lines...))
	resume()
	if err == nil || !strings.Contains(err.Error(), "resource alarm") {
		t.Fatalf("a broker that reads nothing: error %v", err)
	}
	t.Logf("while blocked: %v", err)
	// The runner would retry what the error names; so does the test. The
	// timeout is short for a batch this size on a busy machine, so an
	// attempt may get only part of it through, as the one above did.
	pending := lines
	for attempt := 1; ; attempt++ {
		err := out.Write(context.Background(), pipeline.NewTestBatch(nil, pending...))
		if err == nil {
			break
		}
		if attempt == 50 {
			t.Fatalf("after the broker reads again: %v", err)
		}
		var pe *pipeline.PartialError
		if errors.As(err, &pe) {
			if len(pe.Rejected) > 0 {
				t.Fatalf("rejected: %v", err)
			}
			next := make([]string, 0, len(pe.Retry))
			for _, k := range pe.Retry {
				next = append(next, pending[k])
			}
			pending = next
		}
	}
	got := waitAll(t, cons, 3000)
	if got[0] != "first" {
		t.Fatalf("first message %q", got[0])
	}
	// The blocked batch may have got partly through before the stall took
	// effect, and so may attempts after it: those lines are repeated, and
	// the last copy of each is in order.
	dup := checkResent(t, got[1:], 3000)
	t.Logf("%d lines repeated", dup)
}

// allSeen waits until the consumer has seen lines 0..n-1.
func allSeen(c *consumer, n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c.mu.Lock()
		prefix := c.prefix
		c.mu.Unlock()
		if prefix >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("line %d of %d never reached the queue", prefix, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// checkAtLeastOnce checks that lines hold every sequence number of one
// source, with repeats only from re-sending (a sequence restarts lower,
// then counts up again), and returns how many lines were repeats.
func checkAtLeastOnce(t *testing.T, lines []string, n int) int {
	t.Helper()
	seen := make([]int, n)
	dup, prev := 0, -1
	for i, l := range lines {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil || seq >= n {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		if seq > prev+1 {
			t.Fatalf("line %d: seq %d after %d: a hole", i, seq, prev)
		}
		if seen[seq] > 0 {
			dup++
		}
		seen[seq]++
		prev = max(prev, seq)
	}
	for seq, k := range seen {
		if k == 0 {
			t.Fatalf("seq %d lost", seq)
		}
	}
	return dup
}

// checkResent checks lines of one source sent at least once where a
// failure in the middle of a batch may let later lines in before the
// failed one is re-sent (a nack, a return): nothing is lost, and the last
// time each line arrives is in order, because everything from the first
// failed message on is sent again, in order. It returns the repeats.
func checkResent(t *testing.T, lines []string, n int) int {
	t.Helper()
	last := make([]int, n)
	for i := range last {
		last[i] = -1
	}
	for i, l := range lines {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil || seq >= n {
			t.Fatalf("line %d %q: %v", i, l, err)
		}
		last[seq] = i
	}
	for seq := range n {
		if last[seq] < 0 {
			t.Fatalf("seq %d lost", seq)
		}
		if seq > 0 && last[seq] < last[seq-1] {
			t.Fatalf("seq %d last arrived at %d, before seq %d (at %d)", seq, last[seq], seq-1, last[seq-1])
		}
	}
	return len(lines) - n
}

// TestPassiveMissingExchange: exchange_declare = "passive" on an exchange
// that does not exist fails the attempt (retried: it may be created), and
// says so.
func TestPassiveMissingExchange(t *testing.T) {
	broker(t)
	c := testConfig(unique(t), "logs")
	c.ExchangeDeclare = DeclarePassive
	out := build(t, c)
	defer out.Close(context.Background())
	err := out.Write(context.Background(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "declare exchange") || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Fatalf("error %v", err)
	}
}

// TestPasswordMasked: a wrong password fails the attempt, retried, and
// neither the password nor the URL that holds it shows in the error.
func TestPasswordMasked(t *testing.T) {
	broker(t)
	c := testConfig("", "q")
	c.ExchangeDeclare = DeclareNone
	c.URL = ""
	c.URLFile = filepath.Join(t.TempDir(), "url")
	if err := os.WriteFile(c.URLFile, []byte("amqp://guest:Wr0ng-s3cret@127.0.0.1:5672/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := build(t, c)
	defer out.Close(context.Background())
	err := out.Write(context.Background(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "Wr0ng-s3cret") {
		t.Fatalf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "amqp://guest:xxxxx@127.0.0.1:5672/") {
		t.Fatalf("error does not name the (masked) url: %v", err)
	}
}

// TestDefaultExchange: with exchange = "", the routing key names the queue.
func TestDefaultExchange(t *testing.T) {
	ch := broker(t)
	q, err := ch.QueueDeclare(unique(t), false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	cons := consume(t, ch, q.Name)
	c := testConfig("", q.Name)
	c.ExchangeDeclare = DeclareNone
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(cons.wait(1000), in.Want()); err != nil {
		t.Fatal(err)
	}
}
