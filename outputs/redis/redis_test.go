package redis

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const redisAddr = "127.0.0.1:6379"

// server returns a client of the test server, skipping the test when it is
// unreachable (failing under TAILSHIP_REQUIRE_SERVICES=1, as in CI).
func server(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: redisAddr, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		msg := fmt.Sprintf("Redis at %s is unreachable (%v); start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no", redisAddr, err)
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// unique returns a name no other test run uses, and deletes the keys
// under it when the test ends.
func unique(t testing.TB, rc *goredis.Client) string {
	t.Helper()
	name := fmt.Sprintf("tailship-test:%s:%d:%d", strings.ReplaceAll(t.Name(), "/", "."), os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, name+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	return name
}

func testConfig(key string) *Config {
	c := DefaultConfig()
	c.Address = redisAddr
	c.Key = key
	c.Inputs = []string{"in"}
	c.Batch.MaxEvents = 500
	c.Batch.Timeout = config.Dur(20 * time.Millisecond)
	c.Retry.Initial = config.Dur(time.Millisecond)
	c.Retry.Max = config.Dur(50 * time.Millisecond)
	return c
}

func build(t testing.TB, c *Config, name string) pipeline.Output {
	t.Helper()
	if err := errors.Join(c.Common().Validate(), c.Validate()); err != nil {
		t.Fatalf("invalid test config: %v", err)
	}
	out, err := c.Build(pipeline.BuildContext{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ship sends in through a real pipeline to the output and checks that
// every source was committed to its end.
func ship(t *testing.T, c *Config, in *pipelinetest.StaticInput, o pipelinetest.ShipOptions) (*pipeline.Runner, *pipeline.Stats) {
	t.Helper()
	r, stats, err := pipelinetest.Ship(in, "redis", build(t, c, "test"), c.OutputSettings, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range in.Sources {
		if got, want := in.Committed(name), in.Size(name); got != want {
			t.Errorf("source %s: committed %d of %d", name, got, want)
		}
	}
	return r, stats
}

func lrange(t testing.TB, rc *goredis.Client, key string) []string {
	t.Helper()
	l, err := rc.LRange(context.Background(), key, 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func xrange(t testing.TB, rc *goredis.Client, key, field string) []string {
	t.Helper()
	entries, err := rc.XRange(context.Background(), key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		v, _ := e.Values[field].(string)
		out = append(out, v)
	}
	return out
}

func TestList(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 5000, ChunkLines: 200}
	r, _ := ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(lrange(t, rc, key), in.Want()); err != nil {
		t.Fatal(err)
	}
	if d := r.Out.Delivered.Load(); d != 15000 {
		t.Fatalf("delivered %d events, want 15000", d)
	}
}

func TestStream(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	c.Mode = ModeStream
	c.StreamField = "line"
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 4000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(xrange(t, rc, key, "line"), in.Want()); err != nil {
		t.Fatal(err)
	}
}

// TestStreamMaxLen: MAXLEN ~ trims the stream to about max_len entries
// (Redis trims whole nodes, so a few more may stay), keeping the newest.
func TestStreamMaxLen(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	c.Mode = ModeStream
	c.MaxLen = 1000
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 20000, ChunkLines: 500}
	ship(t, c, in, pipelinetest.ShipOptions{})
	got := xrange(t, rc, key, "message")
	if len(got) < 1000 || len(got) > 2000 {
		t.Fatalf("stream holds %d entries with max_len = 1000", len(got))
	}
	// What stays is the newest, in order, without a hole.
	for i, l := range got {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		if want := 20000 - len(got) + i; seq != want {
			t.Fatalf("entry %d: seq %d, want %d", i, seq, want)
		}
	}
}

// subscriber collects the messages of a channel (pattern) in order.
type subscriber struct {
	ps   *goredis.PubSub
	wg   sync.WaitGroup
	mu   sync.Mutex
	msgs map[string][]string // by channel
	n    int
}

func subscribe(t *testing.T, rc *goredis.Client, pattern string) *subscriber {
	t.Helper()
	ps := rc.PSubscribe(context.Background(), pattern)
	if _, err := ps.Receive(context.Background()); err != nil { // the subscription is active
		t.Fatal(err)
	}
	s := &subscriber{ps: ps, msgs: map[string][]string{}}
	ch := ps.Channel(goredis.WithChannelSize(100000))
	s.wg.Go(func() {
		for m := range ch {
			s.mu.Lock()
			s.msgs[m.Channel] = append(s.msgs[m.Channel], m.Payload)
			s.n++
			s.mu.Unlock()
		}
	})
	t.Cleanup(s.close)
	return s
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *subscriber) close() {
	s.ps.Close()
	s.wg.Wait()
}

// TestPubSub: a subscriber connected before shipping gets every message
// once, in order; the channel is a template, one per source.
func TestPubSub(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	sub := subscribe(t, rc, key+":*")
	c := testConfig(key + ":%{service}")
	c.Mode = ModePubSub
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 5000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{serviceProc{}}})
	deadline := time.Now().Add(10 * time.Second)
	for sub.count() < 10000 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	sub.close()
	for _, src := range in.Sources {
		if err := pipelinetest.CheckSequences(sub.msgs[key+":"+src], map[string]int{src: 5000}); err != nil {
			t.Errorf("channel %s: %v", src, err)
		}
	}
	if len(sub.msgs) != 2 {
		t.Errorf("messages on %d channels, want 2", len(sub.msgs))
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

// TestKeyTemplate: each event goes to the list its fields name, each list
// in order; a source field works as well as an event field.
func TestKeyTemplate(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key + ":%{env}:%{service}")
	in := &pipelinetest.StaticInput{Sources: []string{"api", "web", "db"}, Lines: 3000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{
		Fields: []pipeline.Field{{Key: "env", Value: "prod"}},
		Procs:  []pipeline.Processor{serviceProc{}},
	})
	for _, src := range in.Sources {
		if err := pipelinetest.CheckSequences(lrange(t, rc, key+":prod:"+src), map[string]int{src: 3000}); err != nil {
			t.Errorf("list %s: %v", src, err)
		}
	}
}

// TestJSONCompressed: format = "json" with zstd: each element is one zstd
// frame holding the event's JSON.
func TestJSONCompressed(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	c.Format = "json"
	c.Compression = "zstd"
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 2000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{Fields: []pipeline.Field{{Key: "host", Value: "web-1"}}})
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var lines []string
	for _, el := range lrange(t, rc, key) {
		plain, err := dec.DecodeAll([]byte(el), nil)
		if err != nil {
			t.Fatalf("element %q: %v", el, err)
		}
		var doc struct{ Message, Host string }
		if err := json.Unmarshal(plain, &doc); err != nil || doc.Host != "web-1" {
			t.Fatalf("element %s: %v", plain, err)
		}
		lines = append(lines, doc.Message)
	}
	if err := pipelinetest.CheckSequences(lines, in.Want()); err != nil {
		t.Fatal(err)
	}
}

// TestWrongTypeDeadLettered: a key that holds a string cannot take RPUSH;
// those events are rejected for good and written to the dead-letter file,
// while the events of the same batches for another key are delivered.
func TestWrongTypeDeadLettered(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	if err := rc.Set(context.Background(), key+":b", "not a list", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c := testConfig(key + ":%{service}")
	c.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 2000, ChunkLines: 100}
	r, _ := ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{serviceProc{}}})
	if err := pipelinetest.CheckSequences(lrange(t, rc, key+":a"), map[string]int{"a": 2000}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(c.DeadLetterPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var dead []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ Line, Error string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		if !strings.Contains(rec.Error, "WRONGTYPE") {
			t.Fatalf("dead-letter error %q", rec.Error)
		}
		dead = append(dead, rec.Line)
	}
	if err := pipelinetest.CheckSequences(dead, map[string]int{"b": 2000}); err != nil {
		t.Fatalf("dead-letter file: %v", err)
	}
	if got := r.Out.DeadLettered.Load(); got != 2000 {
		t.Fatalf("%d events dead-lettered, want 2000", got)
	}
	if got := r.Out.Delivered.Load(); got != 2000 {
		t.Fatalf("%d events delivered, want 2000", got)
	}
}

// commitChecker follows what Redis holds as the pipeline commits: at every
// commit of n lines, Redis must already hold lines 0..n-1 of the source
// (repeats allowed). fetch returns what was added since its last call.
type commitChecker struct {
	fetch   func() ([]string, error)
	lineLen int64
	seen    []bool
	prefix  int // lines 0..prefix-1 are all seen
	commits int
	bad     error
	mu      sync.Mutex
}

func newCommitChecker(rc *goredis.Client, mode, key string, lines int) *commitChecker {
	c := &commitChecker{lineLen: int64(len(pipelinetest.Line("a", 0))), seen: make([]bool, lines)}
	if mode == ModeStream {
		last := "-"
		c.fetch = func() ([]string, error) {
			entries, err := rc.XRange(context.Background(), key, last, "+").Result()
			out := make([]string, 0, len(entries))
			for _, e := range entries {
				last = "(" + e.ID
				v, _ := e.Values["message"].(string)
				out = append(out, v)
			}
			return out, err
		}
	} else {
		var read int64
		c.fetch = func() ([]string, error) {
			els, err := rc.LRange(context.Background(), key, read, -1).Result()
			read += int64(len(els))
			return els, err
		}
	}
	return c
}

func (c *commitChecker) onCommit(_ string, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad != nil {
		return
	}
	c.commits++
	n := int(off / c.lineLen)
	if c.prefix >= n {
		return
	}
	els, err := c.fetch()
	if err != nil {
		c.bad = err
		return
	}
	for _, l := range els {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil || seq >= len(c.seen) {
			c.bad = fmt.Errorf("element %q: %v", l, err)
			return
		}
		c.seen[seq] = true
	}
	for c.prefix < len(c.seen) && c.seen[c.prefix] {
		c.prefix++
	}
	if c.prefix < n {
		c.bad = fmt.Errorf("offset %d (%d lines) committed while Redis holds lines only up to %d", off, n, c.prefix)
	}
}

func (c *commitChecker) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bad == nil && c.commits == 0 {
		return errors.New("no commit was checked")
	}
	return c.bad
}

// checkAtLeastOnce checks that lines hold every sequence number of one
// source, that repeats come only from re-sending (a sequence restarts
// lower, then counts up again) and returns how many lines were repeats.
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
		if seq > prev {
			prev = seq
		}
	}
	for seq, k := range seen {
		if k == 0 {
			t.Fatalf("seq %d lost", seq)
		}
	}
	return dup
}

// killer kills the output's connection to Redis from a second client
// every interval, found by its client name, until stopped.
func killer(t *testing.T, rc *goredis.Client, name string, every time.Duration) (stop func() int) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	kills := 0
	wg.Go(func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			list, err := rc.ClientList(context.Background()).Result()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(list, "\n") {
				if !strings.Contains(line, " name="+name+" ") {
					continue
				}
				for _, f := range strings.Fields(line) {
					if id, ok := strings.CutPrefix(f, "id="); ok {
						n, _ := strconv.ParseInt(id, 10, 64)
						if rc.ClientKillByFilter(context.Background(), "ID", strconv.FormatInt(n, 10)).Err() == nil {
							kills++
						}
					}
				}
			}
		}
	})
	return func() int { close(done); wg.Wait(); return kills }
}

// TestConnectionKilledMidStream: tailship's connection is killed with
// CLIENT KILL from a second client over and over while it ships. Nothing is
// lost, the only repeats are re-sent commands (at least once), and no
// offset is committed before Redis holds every line up to it.
func TestConnectionKilledMidStream(t *testing.T) {
	for _, mode := range []string{ModeList, ModeStream} {
		t.Run(mode, func(t *testing.T) {
			rc := server(t)
			// A kill often lands on a pooled connection between batches,
			// which go-redis replaces unseen, so a failed attempt is not
			// required (TestClientPause stalls a pipeline mid-batch); the
			// kills themselves are, and every run is checked in full.
			killedMidStream(t, rc, mode)
		})
	}
}

// killedMidStream ships through the killer once, checks that nothing was
// lost and nothing committed early, and returns the failed attempts.
func killedMidStream(t *testing.T, rc *goredis.Client, mode string) int64 {
	t.Helper()
	key := unique(t, rc)
	c := testConfig(key)
	c.Mode = mode
	const lines = 60000
	chk := newCommitChecker(rc, mode, key, lines)
	read := func() []string { return lrange(t, rc, key) }
	if mode == ModeStream {
		read = func() []string { return xrange(t, rc, key, "message") }
	}
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: lines, ChunkLines: 100, OnCommit: chk.onCommit}
	name := strings.ReplaceAll(key, ":", "_")
	out := build(t, c, name)
	stop := killer(t, rc, "tailship-"+name, 15*time.Millisecond)
	r, _, err := pipelinetest.Ship(in, "redis", out, c.OutputSettings, pipelinetest.ShipOptions{})
	kills := stop()
	if err != nil {
		t.Fatal(err)
	}
	if err := chk.err(); err != nil {
		t.Fatal(err)
	}
	if got := in.Committed("a"); got != in.Size("a") {
		t.Fatalf("committed %d of %d", got, in.Size("a"))
	}
	dup := checkAtLeastOnce(t, read(), lines)
	if kills == 0 {
		t.Fatal("no connection was killed: the fault did not happen")
	}
	t.Logf("%d connections killed, %d failed attempts, %d retries, %d lines repeated", kills, r.Out.Failures.Load(), r.Out.Retries.Load(), dup)
	return r.Out.Failures.Load()
}

// TestClientPause: CLIENT PAUSE stalls the server mid-stream for longer
// than the output's timeout; the attempts time out and are retried, and
// once the pause ends everything is there (repeats allowed: a command
// that timed out may have run after the pause).
func TestClientPause(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	c.Timeout = config.Dur(150 * time.Millisecond)
	const lines = 40000
	chk := newCommitChecker(rc, ModeList, key, lines)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: lines, ChunkLines: 100, OnCommit: chk.onCommit}
	out := build(t, c, strings.ReplaceAll(key, ":", "_"))
	paused := make(chan error, 1)
	go func() {
		// Once some lines are in, pause writes for 600ms, twice.
		for rc.LLen(context.Background(), key).Val() < 5000 {
			time.Sleep(time.Millisecond)
		}
		err := rc.Do(context.Background(), "CLIENT", "PAUSE", "600", "WRITE").Err()
		if err == nil {
			time.Sleep(900 * time.Millisecond)
			err = rc.Do(context.Background(), "CLIENT", "PAUSE", "600", "WRITE").Err()
		}
		paused <- err
	}()
	r, _, err := pipelinetest.Ship(in, "redis", out, c.OutputSettings, pipelinetest.ShipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-paused; err != nil {
		t.Fatal(err)
	}
	if err := chk.err(); err != nil {
		t.Fatal(err)
	}
	dup := checkAtLeastOnce(t, lrange(t, rc, key), lines)
	if r.Out.Failures.Load() == 0 {
		t.Fatal("no attempt failed during the pause")
	}
	t.Logf("%d failed attempts, %d lines repeated, %d commits checked", r.Out.Failures.Load(), dup, chk.commits)
}

// TestMaxInFlight: with batches in flight at once (each on a connection of
// its own), every line arrives once; order across batches is given up, as
// max_in_flight says.
func TestMaxInFlight(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	c.MaxInFlight = 4
	c.Batch.MaxEvents = 200
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 10000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	seen := map[string]int{}
	for _, l := range lrange(t, rc, key) {
		seen[l]++
	}
	for _, src := range in.Sources {
		for i := range 10000 {
			if l := strings.TrimSuffix(pipelinetest.Line(src, i), "\n"); seen[l] != 1 {
				t.Fatalf("%q arrived %d times", l, seen[l])
			}
		}
	}
	if len(seen) != 20000 {
		t.Fatalf("%d distinct lines, want 20000", len(seen))
	}
}

// TestServerDown: with nothing listening, writes fail with an error that
// names the address and are retried, not rejected.
func TestServerDown(t *testing.T) {
	c := testConfig("k")
	c.Address = "127.0.0.1:1" // nothing listens on port 1
	out := build(t, c, "down")
	defer out.Close(context.Background())
	err := out.Write(context.Background(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %v", err)
	}
}

// TestACLUser: username with password_file authenticates as a Redis 6 ACL
// user (created for the test, allowed only its own keys), in db 0.
func TestACLUser(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	user := strings.ReplaceAll(key, ":", "-")
	ctx := context.Background()
	if err := rc.Do(ctx, "ACL", "SETUSER", user, "on", ">acl-pw-1", "~"+key+"*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Do(ctx, "ACL", "DELUSER", user) })
	c := testConfig(key)
	c.Username = user
	c.PasswordFile = filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(c.PasswordFile, []byte("acl-pw-1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(lrange(t, rc, key), in.Want()); err != nil {
		t.Fatal(err)
	}
	// The same user may not write elsewhere: NOPERM is not a
	// password problem and is retried (an operator can fix the ACL).
	c.Key = "elsewhere-" + key
	out := build(t, c, "acl")
	defer out.Close(ctx)
	err := out.Write(ctx, pipeline.NewTestBatch(nil, "x"))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("error %v", err)
	}
}

// TestPasswordNotInErrors: a wrong password fails the attempt (retried) and
// the error does not carry the password.
func TestPasswordNotInErrors(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	c := testConfig(key)
	c.Username = "nosuchuser"
	c.PasswordFile = filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(c.PasswordFile, []byte("s3cr3t-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := build(t, c, "auth")
	defer out.Close(context.Background())
	err := out.Write(context.Background(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || pipeline.IsPermanent(err) {
		t.Fatalf("error %v", err)
	}
	if strings.Contains(err.Error(), "s3cr3t-pw") {
		t.Fatalf("error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "WRONGPASS") && !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("error does not say why: %v", err)
	}
	if n := rc.Exists(context.Background(), key).Val(); n != 0 {
		t.Fatal("written without authentication")
	}
}
