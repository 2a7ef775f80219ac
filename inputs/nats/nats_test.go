package nats

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tailship/tailship/config"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

const server = "nats://127.0.0.1:4222"

// newStream connects to the real server and creates a stream with a
// unique name and subject, deleted after the test. It skips when the
// server is unreachable (failing under TAILSHIP_REQUIRE_SERVICES=1, as in CI).
func newStream(t testing.TB) (jetstream.JetStream, string, string) {
	t.Helper()
	nc, err := nats.Connect(server, nats.Timeout(2*time.Second))
	if err != nil {
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatalf("NATS at %s unreachable: %v", server, err)
		}
		t.Skipf("NATS at %s unreachable (start nats-server -js): %v", server, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d", time.Now().UnixNano())
	name, subject := "TS_"+id, "tailship.test."+id
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject + ".>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return js, name, subject
}

func publish(t *testing.T, js jetstream.JetStream, subject, source string, from, n int) {
	t.Helper()
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		v := strings.TrimSuffix(pipelinetest.Line(source, i), "\n")
		if _, err := js.Publish(ctx, subject+".seq", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
}

func consumerInfo(t *testing.T, js jetstream.JetStream, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	c, err := js.Consumer(context.Background(), stream, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func testConfig(stream string) *Config {
	c := defaults()
	c.Servers = []string{server}
	c.Stream, c.Consumer = stream, "tailship"
	return c
}

// TestAckAfterDelivery: while the output fails the messages stay
// unacknowledged in the server (num_ack_pending, ack floor 0); once it
// recovers every message arrives once and in order with its metadata, and
// the server's ack floor reaches the last one.
func TestAckAfterDelivery(t *testing.T) {
	js, stream, subject := newStream(t)
	const n = 1000
	publish(t, js, subject, "nats", 0, n)
	var badMeta atomic.Int64
	render := func(src *pipeline.Source, ev *pipeline.Event) string {
		sub, _ := pipeline.Lookup(src, ev, "metadata.subject")
		seq, _ := pipeline.Lookup(src, ev, "metadata.stream_sequence")
		_, s, err := pipelinetest.ParseLine(string(ev.Raw))
		if sub != subject+".seq" || err != nil || seq != int64(s+1) {
			badMeta.Add(1)
		}
		return string(ev.Raw)
	}
	rg := startRig(t, testConfig(stream), "nats", true, func(c *pipelinetest.Capture) { c.Render = render })
	waitFor(t, "failed attempts", func() bool { return rg.Out.Writes() >= 5 })
	waitFor(t, "every message delivered to the input", func() bool {
		return consumerInfo(t, js, stream, "tailship").NumAckPending == n
	})
	if info := consumerInfo(t, js, stream, "tailship"); info.AckFloor.Stream != 0 {
		t.Fatalf("ack floor %d while the output is down", info.AckFloor.Stream)
	}
	rg.Down.Store(false)
	waitFor(t, "all messages", func() bool { return rg.Out.Len() >= n })
	waitFor(t, "all acknowledged", func() bool {
		info := consumerInfo(t, js, stream, "tailship")
		return info.NumAckPending == 0 && info.AckFloor.Stream == n
	})
	if err := pipelinetest.CheckSequences(rg.Out.Lines(), map[string]int{"nats": n}); err != nil {
		t.Fatal(err)
	}
	if badMeta.Load() != 0 {
		t.Fatalf("%d events with wrong metadata", badMeta.Load())
	}
}

// TestUnackedRedeliveredAfterStop: an input stopped while its output is
// down acknowledged nothing; the next one gets every message again (after
// ack_wait) and acknowledges them.
func TestUnackedRedeliveredAfterStop(t *testing.T) {
	js, stream, subject := newStream(t)
	const n = 300
	publish(t, js, subject, "nats", 0, n)
	cfg := testConfig(stream)
	cfg.AckWait = config.Dur(time.Second)
	cfg.DrainTimeout = config.Dur(0)
	rg := startRig(t, cfg, "nats", true)
	waitFor(t, "failed attempts", func() bool { return rg.Out.Writes() >= 3 })
	waitFor(t, "messages held", func() bool { return consumerInfo(t, js, stream, "tailship").NumAckPending > 0 })
	cancelOnly(rg)
	if info := consumerInfo(t, js, stream, "tailship"); info.AckFloor.Stream != 0 {
		t.Fatalf("ack floor %d after a stop with the output down", info.AckFloor.Stream)
	}
	rg2 := startRig(t, cfg, "nats", false)
	waitFor(t, "all acknowledged", func() bool {
		info := consumerInfo(t, js, stream, "tailship")
		return info.NumAckPending == 0 && info.AckFloor.Stream == n
	})
	// Redelivered messages come after newer ones: every one at least
	// once, order not kept.
	seen := make([]int, n)
	for _, l := range rg2.Out.Lines() {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil || seq >= n {
			t.Fatalf("unexpected line %q", l)
		}
		seen[seq]++
	}
	for i, c := range seen {
		if c == 0 {
			t.Fatalf("message %d lost", i)
		}
	}
}

// cancelOnly stops a rig whose output stays down: what it held is given
// up undelivered, like an agent that is killed.
func cancelOnly(rg *rig) {
	rg.GiveUp.Store(true)
	rg.Stop()
}

// TestMessageWithNewlinesIsOneEvent: a message is one event whatever it
// holds; JSON messages are parsed.
func TestMessageWithNewlinesIsOneEvent(t *testing.T) {
	js, stream, subject := newStream(t)
	vals := []string{"a\nb", `{"msg":"x\ny"}`, "c"}
	for _, v := range vals {
		if _, err := js.Publish(context.Background(), subject+".x", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(stream)
	cfg.Parser = "json"
	rg := startRig(t, cfg, "nats", false)
	waitFor(t, "messages", func() bool { return rg.Out.Len() >= 3 })
	if got := rg.Out.Lines(); fmt.Sprint(got) != fmt.Sprint(vals) {
		t.Fatalf("events %q, want %q", got, vals)
	}
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.Parser = "cri"
	c.Multiline.Preset = "java"
	c.DeliverPolicy, c.User = "sometimes", "u"
	err := c.Validate()
	for _, key := range []string{"multiline", "parser", "stream", "consumer", "deliver_policy", "user"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
	if got := redact("nats://u:secret@h:4222,nats://h2:4222"); strings.Contains(got, "secret") {
		t.Fatalf("redact left the password: %s", got)
	}
}
