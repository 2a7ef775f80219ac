package amqp

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestPassiveDeclare: queue_declare = "passive" against a queue that does
// not exist logs an error that says so and what to do, keeps retrying and
// does not create the queue; once the queue exists it consumes, and an
// input started against an existing queue consumes at once.
func TestPassiveDeclare(t *testing.T) {
	ch := broker(t)
	q := uniqueQueue(t)
	cfg := queueConfig(q)
	cfg.QueueDeclare = DeclarePassive
	core, logs := observer.New(zap.WarnLevel)
	out := newOutage(false)
	stop := startOutputs(t, cfg, zap.New(core), out)
	failed := func() int {
		n := 0
		for _, e := range logs.FilterMessage("cannot consume from the broker; retrying").All() {
			msg := e.ContextMap()["error"]
			if s, _ := msg.(string); strings.Contains(s, "does not exist") && strings.Contains(s, `queue_declare = "passive" does not create it`) && strings.Contains(s, q) {
				n++
			}
		}
		return n
	}
	eventually(t, "a clear error for the missing queue, twice (retried)", func() bool { return failed() >= 2 })
	if all := logs.All(); len(all) != failed() {
		t.Fatalf("other warnings than the missing queue: %v", all)
	}
	// Still missing: a passive declare of our own fails (and takes its
	// channel with it, hence a fresh one).
	if _, err := broker(t).QueueDeclarePassive(q, false, false, false, false, nil); err == nil {
		t.Fatal("the passive input created the queue")
	}

	declare(t, ch, q)
	const n = 500
	publish(t, ch, q, "m", 0, n)
	eventually(t, "delivery once the queue exists", func() bool { return out.Len() >= n })
	eventually(t, "queue drained", func() bool { return ready(t, ch, q) == 0 })
	stop()
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"m": n}); err != nil {
		t.Fatal(err)
	}

	core2, logs2 := observer.New(zap.WarnLevel)
	publish(t, ch, q, "m", n, n+100)
	out2 := newOutage(false)
	startOutputs(t, cfg, zap.New(core2), out2)
	eventually(t, "delivery from the existing queue", func() bool { return out2.Len() >= 100 })
	if logs2.Len() != 0 {
		t.Fatalf("warnings consuming an existing queue passively: %v", logs2.All())
	}
	for _, l := range out2.Lines() {
		if _, seq, err := pipelinetest.ParseLine(l); err != nil || seq < n {
			t.Fatalf("second input read %q (err %v): acknowledged messages came back", l, err)
		}
	}
}

// TestTwoOutputsAckAfterBoth: a queue routed to two outputs, one of them
// down. The up output gets the whole prefetch window at once, but no
// message is acknowledged while the other has not delivered it: the
// broker sends nothing past the window for as long as the outage lasts
// (an ack after one output would free the window and let more in). Once
// the second output is back every message reaches both, in order, and
// is acknowledged: nothing is requeued when the input stops.
func TestTwoOutputsAckAfterBoth(t *testing.T) {
	ch := broker(t)
	q := uniqueQueue(t)
	declare(t, ch, q)
	const n, prefetch = 2000, 300
	publish(t, ch, q, "m", 0, n)
	cfg := queueConfig(q)
	cfg.Prefetch = prefetch
	cfg.ChunkEvents = 50
	up, down := newOutage(false), newOutage(true)
	stop := startOutputs(t, cfg, nil, up, down)
	eventually(t, "the window at the up output", func() bool {
		return up.Len() == prefetch && down.Writes() >= 3 && ready(t, ch, q) == n-prefetch
	})
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if r := ready(t, ch, q); r != n-prefetch || up.Len() != prefetch || down.Len() != 0 {
			t.Fatalf("with one output down: %d ready (want %d), %d at the up output (want %d), %d at the down one",
				r, n-prefetch, up.Len(), prefetch, down.Len())
		}
	}
	down.down.Store(false)
	eventually(t, "every message at both outputs", func() bool { return up.Len() >= n && down.Len() >= n })
	eventually(t, "queue drained", func() bool { return ready(t, ch, q) == 0 })
	stop()
	if r := ready(t, ch, q); r != 0 {
		t.Fatalf("%d messages requeued after the input stopped: delivered to both but not acknowledged", r)
	}
	for name, o := range map[string]*outage{"up": up, "down": down} {
		if err := pipelinetest.CheckSequences(o.Lines(), map[string]int{"m": n}); err != nil {
			t.Fatalf("%s output: %v", name, err)
		}
	}
}
