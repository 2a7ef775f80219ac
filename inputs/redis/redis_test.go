package redis

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

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/pipelinetest"
	"github.com/tailship/tailship/pipeline/template"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const addr = "127.0.0.1:6379"

// client connects to the real Redis, skipping (or failing under
// TAILSHIP_REQUIRE_SERVICES=1) when it is down.
func client(t *testing.T) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		msg := fmt.Sprintf("Redis at %s is unreachable (%v); start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no", addr, err)
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func uniqueKey(t *testing.T) string {
	return fmt.Sprintf("tailship-test:%s:%d:%d", t.Name(), os.Getpid(), time.Now().UnixNano())
}

// outage is an output that fails every write while down is set.
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

// rig runs a redis input through a real pipeline into out.
type rig struct {
	stop func()
}

func start(t *testing.T, cfg *Config, out pipeline.Output) *rig { return startTB(t, cfg, out) }

func startBench(b *testing.B, cfg *Config, out pipeline.Output) func() {
	return startTB(b, cfg, out).stop
}

func startTB(t testing.TB, cfg *Config, out pipeline.Output) *rig {
	t.Helper()
	if err := errors.Join(cfg.Common().Validate(), cfg.Validate()); err != nil {
		t.Fatal(err)
	}
	in, err := cfg.Build(pipeline.BuildContext{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	set := pipeline.DefaultOutputSettings()
	set.Batch.Timeout = config.Dur(10 * time.Millisecond)
	set.Batch.MaxEvents = 250
	set.Retry.Initial = config.Dur(10 * time.Millisecond)
	set.Retry.Max = config.Dur(50 * time.Millisecond)
	stats := &pipeline.Stats{}
	runner := pipeline.NewRunner("out", out, set, nil, stats)
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 16 << 20, Stats: stats})
	abort, cancelAbort := context.WithCancel(context.Background())
	runner.Start(abort)
	p.Start(abort)
	st := p.NewStream("test", int(cfg.MaxLineBytes), nil, nil, []*pipeline.Runner{runner})
	if ps, err := pipeline.BuildParser(cfg.Common()); err != nil {
		t.Fatal(err)
	} else {
		st.SetParser(ps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := in.Run(ctx, st); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	var once sync.Once
	r := &rig{stop: func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			p.Drain()
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			defer c()
			if err := runner.Stop(sctx); err != nil {
				cancelAbort()
				_ = runner.Stop(context.Background())
			}
			cancelAbort()
		})
	}}
	t.Cleanup(r.stop)
	return r
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

func pendingCount(t *testing.T, c *goredis.Client, key, group string) int64 {
	t.Helper()
	p, err := c.XPending(context.Background(), key, group).Result()
	if err != nil {
		if strings.HasPrefix(err.Error(), "NOGROUP") {
			return 0
		}
		t.Fatal(err)
	}
	return p.Count
}

func xaddLines(t *testing.T, c *goredis.Client, key, src string, from, to int) {
	t.Helper()
	pipe := c.Pipeline()
	for i := from; i < to; i++ {
		pipe.XAdd(context.Background(), &goredis.XAddArgs{Stream: key, Values: []string{"message", strings.TrimSuffix(pipelinetest.Line(src, i), "\n")}})
	}
	if _, err := pipe.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func streamConfig(key string) *Config {
	cfg := DefaultConfig()
	cfg.Key = key
	cfg.Group = "g"
	cfg.Consumer = "c1"
	cfg.Block = config.Dur(50 * time.Millisecond)
	return cfg
}

// TestStreamOutageKeepsEntriesPending: while the output is down, every
// entry read stays pending in the group (XPENDING), none is acknowledged;
// once the output is back every entry arrives once, in order, and the
// group's pending list empties.
func TestStreamOutageKeepsEntriesPending(t *testing.T) {
	c := client(t)
	key := uniqueKey(t)
	t.Cleanup(func() { c.Del(context.Background(), key) })
	const n = 3000
	xaddLines(t, c, key, "s", 0, n)
	out := newOutage(true)
	start(t, streamConfig(key), out)
	eventually(t, "every entry read and pending", func() bool { return pendingCount(t, c, key, "g") == n })
	if out.Len() != 0 {
		t.Fatalf("%d events delivered while the output is down", out.Len())
	}
	time.Sleep(100 * time.Millisecond)
	if got := pendingCount(t, c, key, "g"); got != n {
		t.Fatalf("pending %d while the output is down, want %d (an entry was acknowledged before delivery)", got, n)
	}
	xaddLines(t, c, key, "s", n, n+500) // read while down, too
	out.down.Store(false)
	eventually(t, "delivery", func() bool { return out.Len() >= n+500 })
	eventually(t, "acknowledgement", func() bool { return pendingCount(t, c, key, "g") == 0 })
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"s": n + 500}); err != nil {
		t.Fatal(err)
	}
}

// TestStreamClaimFromCrashedConsumer: a consumer that read entries and
// died leaves them pending; a new consumer claims them once they have been
// idle for claim_idle, and delivers them along with new entries.
func TestStreamClaimFromCrashedConsumer(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	key := uniqueKey(t)
	t.Cleanup(func() { c.Del(ctx, key) })
	if err := c.XGroupCreateMkStream(ctx, key, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	xaddLines(t, c, key, "s", 0, 400)
	// The crashed consumer read them all and acknowledged nothing.
	res, err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "dead", Streams: []string{key, ">"}, Count: 1000, Block: -1}).Result()
	if err != nil || len(res[0].Messages) != 400 {
		t.Fatalf("crashed consumer read %v, %v", res, err)
	}
	xaddLines(t, c, key, "t", 0, 100) // never read by anyone
	cfg := streamConfig(key)
	cfg.Consumer = "alive"
	cfg.ClaimIdle = config.Dur(300 * time.Millisecond)
	out := newOutage(false)
	start(t, cfg, out)
	eventually(t, "claimed and new entries delivered", func() bool { return out.Len() >= 500 })
	eventually(t, "acknowledged", func() bool { return pendingCount(t, c, key, "g") == 0 })
	got := out.Lines()
	var s, tl []string
	for _, l := range got {
		if strings.HasPrefix(l, "s ") {
			s = append(s, l)
		} else {
			tl = append(tl, l)
		}
	}
	if err := pipelinetest.CheckSequences(s, map[string]int{"s": 400}); err != nil {
		t.Fatalf("claimed entries: %v", err)
	}
	if err := pipelinetest.CheckSequences(tl, map[string]int{"t": 100}); err != nil {
		t.Fatalf("new entries: %v", err)
	}
}

// TestStreamOwnPendingAfterKill: entries this consumer read before it was
// killed (pending at its own name) are delivered first when it starts
// again, without waiting for claim_idle.
func TestStreamOwnPendingAfterKill(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	key := uniqueKey(t)
	t.Cleanup(func() { c.Del(ctx, key) })
	if err := c.XGroupCreateMkStream(ctx, key, "g", "0").Err(); err != nil {
		t.Fatal(err)
	}
	xaddLines(t, c, key, "s", 0, 1200)
	if err := c.XReadGroup(ctx, &goredis.XReadGroupArgs{Group: "g", Consumer: "c1", Streams: []string{key, ">"}, Count: 1000, Block: -1}).Err(); err != nil {
		t.Fatal(err)
	}
	cfg := streamConfig(key)
	cfg.ClaimIdle = config.Dur(time.Hour)
	out := newOutage(false)
	start(t, cfg, out)
	eventually(t, "delivery", func() bool { return out.Len() >= 1200 })
	eventually(t, "acknowledged", func() bool { return pendingCount(t, c, key, "g") == 0 })
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"s": 1200}); err != nil {
		t.Fatal(err)
	}
}

// TestListOutageKeepsProcessingList: elements moved off the list wait in
// the processing list (LLEN) while the output is down and are removed
// once delivered; elements a killed run left there come first.
func TestListOutageKeepsProcessingList(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	key := uniqueKey(t)
	cfg := DefaultConfig()
	cfg.Mode = ModeList
	cfg.Key = key
	cfg.Consumer = "c1"
	cfg.Block = config.Dur(50 * time.Millisecond)
	proc := key + ":processing:c1"
	t.Cleanup(func() { c.Del(ctx, key, proc) })
	// Left by a killed run: oldest at the right.
	for i := range 50 {
		c.LPush(ctx, proc, strings.TrimSuffix(pipelinetest.Line("s", i), "\n"))
	}
	var vals []any
	for i := 50; i < 2050; i++ {
		vals = append(vals, strings.TrimSuffix(pipelinetest.Line("s", i), "\n"))
	}
	if err := c.RPush(ctx, key, vals...).Err(); err != nil {
		t.Fatal(err)
	}
	out := newOutage(true)
	start(t, cfg, out)
	eventually(t, "every element moved to the processing list", func() bool {
		return c.LLen(ctx, key).Val() == 0 && c.LLen(ctx, proc).Val() == 2050
	})
	time.Sleep(100 * time.Millisecond)
	if n := c.LLen(ctx, proc).Val(); n != 2050 || out.Len() != 0 {
		t.Fatalf("while down: processing list %d (want 2050), delivered %d (want 0)", n, out.Len())
	}
	out.down.Store(false)
	eventually(t, "delivery", func() bool { return out.Len() >= 2050 })
	eventually(t, "processing list emptied", func() bool { return c.LLen(ctx, proc).Val() == 0 })
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"s": 2050}); err != nil {
		t.Fatal(err)
	}
}

// TestMessagesAreEventsWithMetadata: a JSON message with newlines inside
// stays one event, is parsed, and carries metadata that an output
// template reaches as %{metadata.key}.
func TestMessagesAreEventsWithMetadata(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	key := uniqueKey(t)
	t.Cleanup(func() { c.Del(ctx, key) })
	msgs := []string{"{\"msg\":\"one\",\n \"n\":1}", "plain\nwith two\nnewlines", "{\"msg\":\"three\"}"}
	for _, m := range msgs {
		c.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"message", m}})
	}
	c.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"a", "1", "b", "2"}}) // no message field
	tmpl, err := template.Parse("%{metadata.key}|%{metadata.group}")
	if err != nil {
		t.Fatal(err)
	}
	out := newOutage(false)
	out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
		return string(tmpl.Append(nil, src, ev, time.Now(), nil)) + " " + string(codec.AppendJSON(nil, src, ev))
	}
	cfg := streamConfig(key)
	cfg.Parser = "json"
	start(t, cfg, out)
	eventually(t, "delivery", func() bool { return out.Len() >= 4 })
	got := out.Lines()
	if len(got) != 4 {
		t.Fatalf("got %d events, want 4: %q", len(got), got)
	}
	prefix := key + "|g "
	for i, want := range []string{`"msg":"one"`, `"message":"plain\nwith two\nnewlines"`, `"msg":"three"`, `"a":"1","b":"2"`} {
		if !strings.HasPrefix(got[i], prefix) || !strings.Contains(got[i], want) || !strings.Contains(got[i], `"metadata":{"mode":"stream","key":`) {
			t.Errorf("event %d = %s; want prefix %q and %s and metadata", i, got[i], prefix, want)
		}
	}
}

// TestPubSub: messages published while subscribed arrive, in order.
func TestPubSub(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	key := uniqueKey(t)
	cfg := DefaultConfig()
	cfg.Mode = ModePubSub
	cfg.Key = key
	cfg.Block = config.Dur(50 * time.Millisecond)
	out := newOutage(false)
	start(t, cfg, out)
	eventually(t, "subscription", func() bool { return c.PubSubNumSub(ctx, key).Val()[key] > 0 })
	for i := range 1000 {
		c.Publish(ctx, key, strings.TrimSuffix(pipelinetest.Line("p", i), "\n"))
	}
	eventually(t, "delivery", func() bool { return out.Len() >= 1000 })
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"p": 1000}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigErrors(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mode = "queue"
	cfg.Start = "middle"
	cfg.Count = 0
	cfg.ProcessingKey = "x"
	err := cfg.Validate()
	for _, want := range []string{"mode", "key", "start", "count", "processing_key"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	cfg = DefaultConfig()
	cfg.Key = "k"
	cfg.Password = "s3cret-pw"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestIDLess(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"1-0", "1-1", true}, {"1-1", "1-0", false}, {"9-5", "10-0", true}, {"10-0", "9-99", false}, {"5-2", "5-10", true}, {"5-10", "5-10", false}} {
		if got := idLess(tc.a, tc.b); got != tc.want {
			t.Errorf("idLess(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}
