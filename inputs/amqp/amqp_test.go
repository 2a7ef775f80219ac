package amqp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/pipelinetest"
	"github.com/tailship/tailship/pipeline/template"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const url = "amqp://guest:guest@127.0.0.1:5672/"

// broker connects to the real RabbitMQ, skipping (or failing under
// TAILSHIP_REQUIRE_SERVICES=1) when it is down.
func broker(t *testing.T) *amqp.Channel {
	t.Helper()
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		msg := fmt.Sprintf("RabbitMQ at %s is unreachable (%v); start it with: rabbitmq-server -detached", config.MaskURL(url), err)
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ch
}

func uniqueQueue(t *testing.T) string {
	return fmt.Sprintf("tailship-test.%s.%d.%d", t.Name(), os.Getpid(), time.Now().UnixNano())
}

func publish(t *testing.T, ch *amqp.Channel, queue, src string, from, to int) {
	t.Helper()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	var last *amqp.DeferredConfirmation
	for i := from; i < to; i++ {
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", queue, false, false,
			amqp.Publishing{Body: []byte(strings.TrimSuffix(pipelinetest.Line(src, i), "\n")), DeliveryMode: amqp.Persistent})
		if err != nil {
			t.Fatal(err)
		}
		last = dc
	}
	if last != nil {
		if ok, err := last.WaitContext(context.Background()); err != nil || !ok {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}
}

// ready returns the queue's ready (not delivered, or requeued) messages,
// by a passive declare.
func ready(t *testing.T, ch *amqp.Channel, queue string) int {
	t.Helper()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

type outage struct {
	pipelinetest.Capture
	down atomic.Bool
}

func newOutage(down bool) *outage {
	o := &outage{}
	o.down.Store(down)
	o.Fail = func(int, *pipeline.Batch) error {
		if o.down.Load() {
			return errors.New("receiver down")
		}
		return nil
	}
	return o
}

func start(t testing.TB, cfg *Config, out pipeline.Output) (stop func()) {
	t.Helper()
	return startOutputs(t, cfg, nil, out)
}

// startOutputs runs the input routed to every one of outs (named out0,
// out1, ...), logging to log when it is not nil.
func startOutputs(t testing.TB, cfg *Config, log *zap.Logger, outs ...pipeline.Output) (stop func()) {
	t.Helper()
	if err := errors.Join(cfg.Common().Validate(), cfg.Validate()); err != nil {
		t.Fatal(err)
	}
	in, err := cfg.Build(pipeline.BuildContext{Name: "test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	set := pipeline.DefaultOutputSettings()
	set.Batch.Timeout = config.Dur(10 * time.Millisecond)
	set.Batch.MaxEvents = 250
	set.Retry.Initial = config.Dur(10 * time.Millisecond)
	set.Retry.Max = config.Dur(50 * time.Millisecond)
	stats := &pipeline.Stats{}
	var runners []*pipeline.Runner
	for i, out := range outs {
		runners = append(runners, pipeline.NewRunner(fmt.Sprintf("out%d", i), out, set, nil, stats))
	}
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 16 << 20, Stats: stats})
	abort, cancelAbort := context.WithCancel(context.Background())
	for _, r := range runners {
		r.Start(abort)
	}
	p.Start(abort)
	st := p.NewStream("test", int(cfg.MaxLineBytes), nil, nil, runners)
	ps, err := pipeline.BuildParser(cfg.Common())
	if err != nil {
		t.Fatal(err)
	}
	st.SetParser(ps)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := in.Run(ctx, st); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			p.Drain()
			cancelAbort() // a down output gives up what it holds
			for _, r := range runners {
				_ = r.Stop(context.Background())
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func queueConfig(queue string) *Config {
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Queue = queue
	cfg.QueueDurable = false
	cfg.DrainTimeout = config.Dur(time.Second)
	return cfg
}

func declare(t *testing.T, ch *amqp.Channel, queue string) {
	t.Helper()
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = broker(t).QueueDelete(queue, false, false, false) })
}

// TestOutageHoldsPrefetchWindow: with the output down, the input takes
// only prefetch messages, which stay unacknowledged; the rest stay ready in
// the queue. Once the output is back, every message arrives once and in
// order, and after the input stops the queue is empty: every message was
// acknowledged (unacknowledged ones would have been requeued).
func TestOutageHoldsPrefetchWindow(t *testing.T) {
	ch := broker(t)
	q := uniqueQueue(t)
	declare(t, ch, q)
	const n, prefetch = 3000, 400
	publish(t, ch, q, "m", 0, n)
	cfg := queueConfig(q)
	cfg.Prefetch = prefetch
	cfg.ChunkEvents = 100
	out := newOutage(true)
	stop := start(t, cfg, out)
	eventually(t, "the prefetch window taken", func() bool { return ready(t, ch, q) == n-prefetch && out.Writes() > 0 })
	time.Sleep(200 * time.Millisecond)
	if r := ready(t, ch, q); r != n-prefetch || out.Len() != 0 {
		t.Fatalf("while down: %d ready (want %d), %d delivered (want 0)", r, n-prefetch, out.Len())
	}
	out.down.Store(false)
	eventually(t, "delivery", func() bool { return out.Len() >= n })
	eventually(t, "queue drained", func() bool { return ready(t, ch, q) == 0 })
	stop()
	if r := ready(t, ch, q); r != 0 {
		t.Fatalf("%d messages requeued after the input stopped: they were delivered but not acknowledged", r)
	}
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"m": n}); err != nil {
		t.Fatal(err)
	}
}

// TestStopWhileDownRequeues: an input stopped while its output is down
// leaves what it consumed unacknowledged; the broker requeues it and the
// next run delivers every message, marked redelivered.
func TestStopWhileDownRequeues(t *testing.T) {
	ch := broker(t)
	q := uniqueQueue(t)
	declare(t, ch, q)
	const n = 1000
	publish(t, ch, q, "m", 0, n)
	cfg := queueConfig(q)
	cfg.Prefetch = 300
	cfg.DrainTimeout = config.Dur(100 * time.Millisecond)
	down := newOutage(true)
	stop := start(t, cfg, down)
	eventually(t, "the prefetch window taken", func() bool { return ready(t, ch, q) == n-300 && down.Writes() > 0 })
	stop()
	eventually(t, "requeued", func() bool { return ready(t, ch, q) == n })

	out := newOutage(false)
	redelivered := 0
	var mu sync.Mutex
	out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
		if v, _ := template.FieldValue(src, ev, "metadata.redelivered"); v == "true" {
			mu.Lock()
			redelivered++
			mu.Unlock()
		}
		return string(ev.Raw)
	}
	start(t, queueConfig(q), out)
	eventually(t, "delivery", func() bool { return out.Len() >= n })
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"m": n}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if redelivered != 300 {
		t.Fatalf("%d messages marked redelivered, want the 300 of the first run's window", redelivered)
	}
}

// TestMessagesAreEventsWithMetadata: a message with newlines stays one
// event; JSON is parsed; the binding to an exchange works and the routing
// key reaches a template as %{metadata.routing_key}.
func TestMessagesAreEventsWithMetadata(t *testing.T) {
	ch := broker(t)
	q := uniqueQueue(t)
	ex := q + ".x"
	if err := ch.ExchangeDeclare(ex, "topic", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	cfg := queueConfig(q)
	cfg.Exchange, cfg.RoutingKey = ex, "logs.#"
	cfg.Parser = "json"
	tmpl, err := template.Parse("%{metadata.routing_key}")
	if err != nil {
		t.Fatal(err)
	}
	out := newOutage(false)
	out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
		return string(tmpl.Append(nil, src, ev, time.Now(), nil)) + " " + string(codec.AppendJSON(nil, src, ev))
	}
	start(t, cfg, out)
	t.Cleanup(func() { _, _ = broker(t).QueueDelete(q, false, false, false) })
	eventually(t, "queue bound", func() bool {
		_, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err != nil {
			ch = broker(t) // a 404 closes the channel
		}
		return err == nil
	})
	// Give the bind a moment after the declare.
	time.Sleep(100 * time.Millisecond)
	bodies := []string{"{\"msg\":\"one\",\n \"n\":1}", "plain\nwith two\nnewlines", "skipped"}
	keys := []string{"logs.app", "logs.db", "other"}
	for i, b := range bodies {
		if err := ch.PublishWithContext(context.Background(), ex, keys[i], false, false, amqp.Publishing{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "delivery", func() bool { return out.Len() >= 2 })
	time.Sleep(100 * time.Millisecond)
	got := out.Lines()
	if len(got) != 2 {
		t.Fatalf("got %d events, want 2 (the third routing key is not bound): %q", len(got), got)
	}
	for i, want := range []string{`logs.app {"msg":"one","n":1,"metadata":{"queue":"` + q + `","exchange":"` + ex + `","routing_key":"logs.app","redelivered":false}}`,
		`logs.db {"message":"plain\nwith two\nnewlines","parse_error":`} {
		if !strings.HasPrefix(got[i], want) {
			t.Errorf("event %d = %s\nwant prefix %s", i, got[i], want)
		}
	}
}

func TestConfigErrorsHidePassword(t *testing.T) {
	cfg := DefaultConfig()
	cfg.URL = "amqp://user:s3cretpw@host:notaport/"
	cfg.Prefetch = 0
	err := cfg.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"url", "queue", "prefetch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "s3cretpw") {
		t.Fatalf("error shows the password: %v", err)
	}
}

// TestOnRejectRequeue: with on_reject = "requeue", messages an output
// rejects permanently are nacked back to the queue and delivered again
// (redelivered), instead of being dead-lettered; the acknowledgements of
// the messages around them still go through (the queue ends empty, none
// requeued when the input stops), and with the default, dead_letter, the
// rejected messages are acknowledged and gone.
func TestOnRejectRequeue(t *testing.T) {
	for _, mode := range []string{OnRejectRequeue, OnRejectDeadLetter} {
		t.Run(mode, func(t *testing.T) {
			ch := broker(t)
			q := uniqueQueue(t)
			declare(t, ch, q)
			const n = 2000
			publish(t, ch, q, "m", 0, n)
			var mu sync.Mutex
			seen := map[string]int{}
			redelivered := 0
			out := &refuser{mu: &mu}
			out.write = func(b *pipeline.Batch) error {
				mu.Lock()
				defer mu.Unlock()
				pe := &pipeline.PartialError{}
				i := 0
				for src, ev := range b.All() {
					l := string(ev.Raw)
					seen[l]++
					if v, _ := template.FieldValue(src, ev, "metadata.redelivered"); v == "true" {
						redelivered++
					}
					// Every 100th message is refused the first time.
					if _, seq, _ := pipelinetest.ParseLine(l); seq%100 == 7 && seen[l] == 1 {
						pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i, Reason: "mapping error"})
					} else {
						out.lines = append(out.lines, l)
					}
					i++
				}
				if len(pe.Rejected) > 0 {
					return pe
				}
				return nil
			}
			cfg := queueConfig(q)
			cfg.OnReject = mode
			cfg.Prefetch = 300
			stop := start(t, cfg, out)
			want := n
			if mode == OnRejectDeadLetter {
				want = n - n/100
			}
			eventually(t, "delivery", func() bool { return out.count() >= want && ready(t, ch, q) == 0 })
			time.Sleep(200 * time.Millisecond)
			stop()
			if r := ready(t, ch, q); r != 0 {
				t.Fatalf("%d messages left in the queue after the input stopped", r)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(out.lines) != want {
				t.Fatalf("delivered %d, want %d", len(out.lines), want)
			}
			for i := range n {
				l := strings.TrimSuffix(pipelinetest.Line("m", i), "\n")
				wantSeen := 1
				if i%100 == 7 && mode == OnRejectRequeue {
					wantSeen = 2
				}
				if seen[l] != wantSeen {
					t.Fatalf("%q offered %d times, want %d", l, seen[l], wantSeen)
				}
			}
			if mode == OnRejectRequeue && redelivered != n/100 {
				t.Fatalf("%d redelivered, want %d", redelivered, n/100)
			}
		})
	}
}

// refuser is an output whose write decides per event (a PartialError) and
// records what it accepted in lines, under the test's lock.
type refuser struct {
	write func(b *pipeline.Batch) error
	lines []string
	mu    *sync.Mutex
}

func (r *refuser) Write(_ context.Context, b *pipeline.Batch) error {
	return r.write(b)
}

func (r *refuser) Close(context.Context) error { return nil }

func (r *refuser) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.lines)
}
