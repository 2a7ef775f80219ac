package nats

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/config/configtest"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const serverAddr = "127.0.0.1:4222"

// requireNATS skips the test when the shared NATS server is not there,
// unless TAILSHIP_REQUIRE_SERVICES=1 (CI), where that is a failure.
func requireNATS(t testing.TB) {
	t.Helper()
	c, err := net.DialTimeout("tcp", serverAddr, time.Second)
	if err == nil {
		c.Close()
		return
	}
	msg := fmt.Sprintf("NATS with JetStream is not reachable at %s (%v); start it with: start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log", serverAddr, err)
	if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var streamSeq atomic.Int64

// stream is a JetStream stream made for one test, on subjects
// prefix.>, deleted when the test ends.
type stream struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	name   string
	prefix string
}

func newStream(t testing.TB, addr string, mod func(*jetstream.StreamConfig)) *stream {
	t.Helper()
	requireNATS(t)
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := streamSeq.Add(1)
	s := &stream{nc: nc, js: js,
		name:   fmt.Sprintf("TAILSHIP_TEST_%d_%d_%d", os.Getpid(), time.Now().UnixNano(), n),
		prefix: fmt.Sprintf("tailship.test.%d.%d.%d", os.Getpid(), time.Now().UnixNano(), n)}
	sc := jetstream.StreamConfig{Name: s.name, Subjects: []string{s.prefix + ".>"}, Storage: jetstream.MemoryStorage}
	if mod != nil {
		mod(&sc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, sc); err != nil {
		nc.Close()
		t.Fatalf("create stream %s: %v", s.name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, s.name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("delete stream %s: %v", s.name, err)
		}
		nc.Close()
	})
	return s
}

// read consumes the stream from the start until want messages arrived
// (and a little longer, to catch extra ones) or 20s pass.
func (s *stream) read(t testing.TB, want int) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := s.js.OrderedConsumer(ctx, s.name, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Second
		if len(msgs) >= want {
			wait = 200 * time.Millisecond
		}
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(wait))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			got++
		}
		if got == 0 && len(msgs) >= want {
			break
		}
	}
	return msgs
}

// snapshot returns the bodies of every message in the stream now.
func (s *stream) snapshot() (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, s.name)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, info.State.Msgs)
	for n := uint64(0); n < info.State.Msgs; {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			out[string(m.Data())] = true
			got++
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if got == 0 {
			return nil, fmt.Errorf("read %d of %d messages", n, info.State.Msgs)
		}
		n += uint64(got)
	}
	return out, nil
}

func bodies(msgs []jetstream.Msg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Data())
	}
	return out
}

func testConfig(addr, subject string) *Config {
	c := DefaultConfig()
	c.URL = "nats://" + addr
	c.Subject = subject
	c.Inputs = []string{"in"}
	c.Batch.MaxEvents = 500
	c.Batch.Timeout = config.Dur(20 * time.Millisecond)
	c.Retry.Initial = config.Dur(5 * time.Millisecond)
	c.Retry.Max = config.Dur(100 * time.Millisecond)
	c.AckTimeout = config.Dur(2 * time.Second)
	return c
}

func build(t testing.TB, c *Config) pipeline.Output {
	t.Helper()
	if err := errors.Join(c.Common().Validate(), c.Validate()); err != nil {
		t.Fatalf("invalid test config: %v", err)
	}
	out, err := c.Build(pipeline.BuildContext{Name: "nats"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ship(t *testing.T, c *Config, in *pipelinetest.StaticInput, o pipelinetest.ShipOptions) *pipeline.Runner {
	t.Helper()
	r, _, err := pipelinetest.Ship(in, "nats", build(t, c), c.OutputSettings, o)
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

func TestEveryLineOnceInOrder(t *testing.T) {
	s := newStream(t, serverAddr, nil)
	c := testConfig(serverAddr, s.prefix+".logs")
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 5000, ChunkLines: 300}
	r := ship(t, c, in, pipelinetest.ShipOptions{})
	msgs := s.read(t, 3*5000)
	if err := pipelinetest.CheckSequences(bodies(msgs), in.Want()); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if m.Subject() != s.prefix+".logs" {
			t.Fatalf("subject %q", m.Subject())
		}
	}
	if d := r.Out.Delivered.Load(); d != 3*5000 || r.Out.Failures.Load() != 0 {
		t.Fatalf("delivered %d, %d failures", d, r.Out.Failures.Load())
	}
}

// service sets field "service" per source: a is "api", b is "web.ui *"
// (which one subject token cannot hold), c has none.
type service struct{}

func (service) Process(ev *pipeline.Event) (bool, error) {
	src, _, _ := pipelinetest.ParseLine(string(ev.Raw))
	switch src {
	case "a":
		ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: "api"})
	case "b":
		ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: "web.ui *"})
	}
	return true, nil
}

// TestJSONAndSubjectTemplate: format = "json" makes the body the event as
// JSON, and %{service} picks the subject per event, folded into one token;
// an event without the field goes to "unknown".
func TestJSONAndSubjectTemplate(t *testing.T) {
	s := newStream(t, serverAddr, nil)
	c := testConfig(serverAddr, s.prefix+".%{service}.logs")
	c.Format = "json"
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 2000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{service{}},
		Fields: []pipeline.Field{{Key: "host", Value: "web-1"}}})
	want := map[string]string{"a": s.prefix + ".api.logs", "b": s.prefix + ".web_ui__.logs", "c": s.prefix + ".unknown.logs"}
	msgs := s.read(t, 3*2000)
	var lines []string
	for _, m := range msgs {
		var doc struct{ Message, Host string }
		if err := json.Unmarshal(m.Data(), &doc); err != nil {
			t.Fatalf("body %q: %v", m.Data(), err)
		}
		src, _, err := pipelinetest.ParseLine(doc.Message)
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject() != want[src] || doc.Host != "web-1" {
			t.Fatalf("message %q on %s, want %s", m.Data(), m.Subject(), want[src])
		}
		lines = append(lines, doc.Message)
	}
	if err := pipelinetest.CheckSequences(lines, in.Want()); err != nil {
		t.Fatal(err)
	}
}

// proxy forwards TCP connections to NATS; cut drops every connection and
// refuses new ones until restore, as a network partition does, without
// touching the shared server.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool
	cuts  int

	muted atomic.Bool // the server's bytes are dropped: stored, never acknowledged
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.serve)
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			dst.Close()
			src.Close()
			p.mu.Lock()
			delete(p.conns, dst)
			delete(p.conns, src)
			p.mu.Unlock()
		}
		p.wg.Go(func() { pipe(up, c) })
		p.wg.Go(func() { pipe(c, &mutable{up, &p.muted}) })
	}
}

// mutable is the server side of a proxied connection; reads from it come
// back empty-handed while muted, so what the server says is lost.
type mutable struct {
	net.Conn
	muted *atomic.Bool
}

func (m *mutable) Read(b []byte) (int, error) {
	for {
		n, err := m.Conn.Read(b)
		if n == 0 || err != nil || !m.muted.Load() {
			return n, err
		}
	}
}

// cut resets every connection (what was in flight is lost) and refuses
// new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	p.cuts++
	for c := range p.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *proxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// quarterDone waits until q quarters of source a are committed, so faults
// land at about a quarter, half and three quarters of the way; false when
// stop closed first.
func quarterDone(in *pipelinetest.StaticInput, q int, stop <-chan struct{}) bool {
	for in.Committed("a") < int64(q)*in.Size("a")/4 {
		select {
		case <-stop:
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return true
}

// TestConnectionCut: the network between the agent and NATS is cut three
// times while lines are shipped, for 300ms each. Nothing is lost, and each
// file's lines arrive in order: a batch hit by a cut is retried from its
// first unacknowledged message, and messages stored whose acknowledgement
// was lost are sent again with the same Nats-Msg-Id, which the stream
// drops: every line is stored exactly once.
func TestConnectionCut(t *testing.T) {
	s := newStream(t, serverAddr, nil)
	px := newProxy(t, serverAddr)
	c := testConfig(px.addr(), s.prefix+".logs")
	c.AckTimeout = config.Dur(time.Second)
	const lines = 30000
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: lines, ChunkLines: 100}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 3; i++ {
			if !quarterDone(in, i+1, stop) {
				return
			}
			px.cut()
			// While cut, nothing more can be stored: what is committed
			// now must already be in the stream.
			time.Sleep(300 * time.Millisecond)
			committed := map[string]int64{"a": in.Committed("a"), "b": in.Committed("b")}
			stored, err := s.snapshot()
			px.restore()
			if err != nil {
				t.Errorf("read the stream during cut %d: %v", i+1, err)
				return
			}
			for src, off := range committed {
				n := int(off / int64(len(pipelinetest.Line(src, 0))))
				for seq := range n {
					if !stored[pipelinetest.Line(src, seq)[:len(pipelinetest.Line(src, seq))-1]] {
						t.Errorf("cut %d: source %s committed %d lines, but line %d is not in the stream", i+1, src, n, seq)
						break
					}
				}
			}
		}
	})
	r := ship(t, c, in, pipelinetest.ShipOptions{})
	close(stop)
	wg.Wait()
	msgs := s.read(t, 2*lines)

	seen := map[string][]int{"a": make([]int, lines), "b": make([]int, lines)}
	prev := map[string]int{"a": -1, "b": -1}
	var firsts []string
	dups := 0
	for _, m := range msgs {
		l := string(m.Data())
		src, seq, err := pipelinetest.ParseLine(l)
		if err != nil || seen[src] == nil || seq >= lines {
			t.Fatalf("message %q", l)
		}
		if seen[src][seq]++; seen[src][seq] == 1 {
			firsts = append(firsts, l)
		} else {
			dups++
		}
		if seq > prev[src]+1 {
			t.Fatalf("source %s: seq %d after %d: a gap", src, seq, prev[src])
		}
		prev[src] = seq
	}
	if err := pipelinetest.CheckSequences(firsts, in.Want()); err != nil {
		t.Fatal(err)
	}
	if px.cuts < 3 || r.Out.Failures.Load() == 0 {
		t.Fatalf("%d cuts, %d failed writes: the faults did not happen", px.cuts, r.Out.Failures.Load())
	}
	t.Logf("%d messages for %d lines (%d duplicates after %d cuts), %d failed writes, %d retries",
		len(msgs), 2*lines, dups, px.cuts, r.Out.Failures.Load(), r.Out.Retries.Load())
	if dups > 0 {
		t.Fatalf("%d lines stored twice: the stream did not drop retried messages by their Nats-Msg-Id", dups)
	}
}

// TestLostAcksNotStoredTwice: the server's answers are lost for a moment
// (it stores what it gets and its acknowledgements never arrive), then the
// connection is cut, three times. The retries re-send stored messages;
// with msg_id the stream drops them by their Nats-Msg-Id and every line is
// stored once. Without, the same faults store lines twice, which shows the
// faults are real.
func TestLostAcksNotStoredTwice(t *testing.T) {
	for _, withID := range []bool{true, false} {
		t.Run(fmt.Sprintf("msg_id=%v", withID), func(t *testing.T) {
			s := newStream(t, serverAddr, nil)
			px := newProxy(t, serverAddr)
			c := testConfig(px.addr(), s.prefix+".logs")
			c.MsgID = withID
			c.AckTimeout = config.Dur(500 * time.Millisecond)
			const lines = 20000
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: lines, ChunkLines: 100}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; i < 3; i++ {
					if !quarterDone(in, i+1, stop) {
						return
					}
					px.muted.Store(true)
					time.Sleep(100 * time.Millisecond)
					px.cut()
					px.muted.Store(false)
					time.Sleep(100 * time.Millisecond)
					px.restore()
				}
			})
			r := ship(t, c, in, pipelinetest.ShipOptions{})
			close(stop)
			wg.Wait()
			msgs := s.read(t, 2*lines)
			seen := map[string]int{}
			var firsts []string
			for _, m := range msgs {
				l := string(m.Data())
				if seen[l]++; seen[l] == 1 {
					firsts = append(firsts, l)
				}
			}
			if err := pipelinetest.CheckSequences(firsts, in.Want()); err != nil {
				t.Fatal(err)
			}
			dups := len(msgs) - len(firsts)
			t.Logf("%d messages for %d lines, %d stored twice; %d cuts, %d failed writes", len(msgs), 2*lines, dups, px.cuts, r.Out.Failures.Load())
			if px.cuts < 3 || r.Out.Failures.Load() == 0 {
				t.Fatalf("%d cuts, %d failed writes: the faults did not happen", px.cuts, r.Out.Failures.Load())
			}
			if withID && dups > 0 {
				t.Fatalf("%d lines stored twice despite Nats-Msg-Id", dups)
			}
			if !withID && dups == 0 {
				t.Fatal("no line stored twice without Nats-Msg-Id: the lost acknowledgements did not happen")
			}
		})
	}
}

// bigLine replaces line 700 of source b with size bytes of random text.
type bigLine struct{ line []byte }

func newBigLine(size int) *bigLine {
	raw := make([]byte, size*3/4)
	rand.Read(raw)
	return &bigLine{[]byte("b 00000700 " + base64.StdEncoding.EncodeToString(raw))}
}

func (b *bigLine) Process(ev *pipeline.Event) (bool, error) {
	if string(ev.Raw) == "b 00000700" {
		ev.Raw = b.line
	}
	return true, nil
}

// TestTooLargeDeadLettered: a message larger than the stream's
// max_msg_size (refused by the server) or than the server's max_payload
// (refused by the client) is dead-lettered; every other line arrives once,
// in order, and the checkpoint reaches the end.
func TestTooLargeDeadLettered(t *testing.T) {
	cases := []struct {
		name string
		size int
		want string
	}{
		{"stream max_msg_size", 8 << 10, "maximum"},
		{"server max_payload", 2 << 20, "maximum payload exceeded"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStream(t, serverAddr, func(sc *jetstream.StreamConfig) { sc.MaxMsgSize = 4096 })
			c := testConfig(serverAddr, s.prefix+".logs")
			c.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
			big := newBigLine(tc.size)
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 2000, ChunkLines: 100}
			r := ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{big}})
			var rest []string
			for _, l := range bodies(s.read(t, 2*2000-1)) {
				if len(l) > 1000 {
					t.Fatal("the big line arrived")
				}
				if src, seq, _ := pipelinetest.ParseLine(l); src == "b" && seq > 700 {
					l = fmt.Sprintf("b %08d", seq-1)
				}
				rest = append(rest, l)
			}
			if err := pipelinetest.CheckSequences(rest, map[string]int{"a": 2000, "b": 1999}); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(c.DeadLetterPath)
			if err != nil {
				t.Fatal(err)
			}
			var dead struct{ Reason, Error, Line string }
			if err := json.Unmarshal(data, &dead); err != nil || dead.Line != string(big.line) || !strings.Contains(dead.Error, tc.want) {
				t.Fatalf("dead letter %.300s: %v", data, err)
			}
			if r.Out.DeadLettered.Load() != 1 || r.Out.Delivered.Load() != 2*2000-1 {
				t.Fatalf("dead-lettered %d, delivered %d", r.Out.DeadLettered.Load(), r.Out.Delivered.Load())
			}
		})
	}
}

// TestNoStreamYet: publishing to a subject no stream holds fails (no
// acknowledgement) and is retried; once the stream exists, every line
// arrives once, in order.
func TestNoStreamYet(t *testing.T) {
	requireNATS(t)
	prefix := fmt.Sprintf("tailship.test.late.%d.%d", os.Getpid(), time.Now().UnixNano())
	c := testConfig(serverAddr, prefix+".logs")
	c.AckTimeout = config.Dur(500 * time.Millisecond)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 3000, ChunkLines: 100}
	out := build(t, c)
	type result struct {
		r   *pipeline.Runner
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "nats", out, c.OutputSettings, pipelinetest.ShipOptions{})
		done <- result{r, err}
	}()
	time.Sleep(500 * time.Millisecond)
	if got := in.Committed("a"); got != 0 {
		t.Errorf("committed %d with no stream to store the lines", got)
	}
	s := newStream(t, serverAddr, func(sc *jetstream.StreamConfig) { sc.Subjects = []string{prefix + ".>"} })
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := pipelinetest.CheckSequences(bodies(s.read(t, 3000)), in.Want()); err != nil {
		t.Fatal(err)
	}
	if in.Committed("a") != in.Size("a") || res.r.Out.Failures.Load() == 0 {
		t.Fatalf("committed %d of %d, %d failed writes", in.Committed("a"), in.Size("a"), res.r.Out.Failures.Load())
	}
}

// ownServer starts a nats-server of this test's own (so the shared one is
// not reconfigured) with JetStream and the given auth flags.
func ownServer(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nats-server"); err != nil {
			if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
				t.Fatal("nats-server binary not found")
			}
			t.Skip("nats-server binary not found")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, append([]string{"-a", "127.0.0.1", "-p", port, "-js", "-sd", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if i > 200 {
			t.Fatalf("nats-server on %s did not start", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAuth: token and user/password auth, from files or the config, against
// a server that requires them; a wrong secret fails retryably without the
// secret in the error.
func TestAuth(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("t0ken-s3cret\n"), 0o600)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("pa55-s3cret\n"), 0o600)
	cases := []struct {
		name   string
		server []string
		good   func(*Config)
		bad    func(*Config)
		secret string
		client nats.Option
	}{
		{"token", []string{"--auth", "t0ken-s3cret"},
			func(c *Config) { c.TokenFile = tokenFile },
			func(c *Config) { c.Token = "wrong-t0ken-xyz" }, "wrong-t0ken-xyz", nats.Token("t0ken-s3cret")},
		{"user and password", []string{"--user", "shipper", "--pass", "pa55-s3cret"},
			func(c *Config) { c.User, c.PasswordFile = "shipper", pwFile },
			func(c *Config) { c.User, c.Password = "shipper", "wrong-pa55-xyz" }, "wrong-pa55-xyz", nats.UserInfo("shipper", "pa55-s3cret")},
		{"credentials in the URL", []string{"--user", "shipper", "--pass", "pa55-s3cret"},
			func(c *Config) { c.URL = strings.Replace(c.URL, "nats://", "nats://shipper:pa55-s3cret@", 1) },
			func(c *Config) { c.URL = strings.Replace(c.URL, "nats://", "nats://shipper:wrong-pa55-xyz@", 1) }, "wrong-pa55-xyz", nats.UserInfo("shipper", "pa55-s3cret")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := ownServer(t, tc.server...)
			nc, err := nats.Connect("nats://"+addr, tc.client)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			js, _ := jetstream.New(nc)
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "AUTH", Subjects: []string{"auth.>"}}); err != nil {
				t.Fatal(err)
			}
			st := &stream{nc: nc, js: js, name: "AUTH", prefix: "auth"}
			c := testConfig(addr, "auth.logs")
			tc.good(c)
			in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
			ship(t, c, in, pipelinetest.ShipOptions{})
			if err := pipelinetest.CheckSequences(bodies(st.read(t, 1000)), in.Want()); err != nil {
				t.Fatal(err)
			}

			c = testConfig(addr, "auth.logs")
			tc.bad(c)
			core, logs := observer.New(zap.DebugLevel)
			out, err := c.Build(pipeline.BuildContext{Name: "nats", Logger: zap.New(core)})
			if err != nil {
				t.Fatal(err)
			}
			err = out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
			out.Close(t.Context())
			if err == nil || pipeline.IsPermanent(err) || strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("error %v", err)
			}
			for _, e := range logs.All() {
				if line := fmt.Sprintf("%s %v", e.Message, e.ContextMap()); strings.Contains(line, tc.secret) {
					t.Fatalf("the secret is logged: %s", line)
				}
			}
			t.Logf("wrong secret: %v", err)
		})
	}
}

// TestTLS: a server of the test's own that requires TLS; the output
// verifies it against tls.ca_file (with a tls:// URL, or nats:// and
// tls.enabled), and an unknown CA fails retryably.
func TestTLS(t *testing.T) {
	ca := configtest.NewCA(t)
	cert := ca.Server()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	kder, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	addr := ownServer(t, "--tls", "--tlscert", certFile, "--tlskey", keyFile)

	nc, err := nats.Connect("tls://"+addr, nats.Secure(&tls.Config{RootCAs: ca.Pool()}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "TLS", Subjects: []string{"tls.>"}}); err != nil {
		t.Fatal(err)
	}
	st := &stream{nc: nc, js: js, name: "TLS", prefix: "tls"}

	for i, url := range []string{"tls://" + addr, "nats://" + addr} {
		c := testConfig(addr, fmt.Sprintf("tls.logs%d", i))
		c.URL = url
		c.TLS = config.TLS{Enabled: true, CAFile: ca.CAFile}
		in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
		ship(t, c, in, pipelinetest.ShipOptions{})
		if err := pipelinetest.CheckSequences(bodies(st.read(t, 1000*(i+1)))[1000*i:], in.Want()); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}

	c := testConfig(addr, "tls.logs")
	c.URL = "tls://" + addr
	c.TLS = config.TLS{Enabled: true}
	out := build(t, c)
	defer out.Close(t.Context())
	err = out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("error %v", err)
	}
}
