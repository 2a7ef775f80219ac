package tcp

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/config/configtest"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// receiver is a TCP server; handle decides what to do with connection n
// (from 0) and returns the lines it took from it. Lines are kept per
// connection, in order.
type receiver struct {
	ln     net.Listener
	handle func(n int, c net.Conn) []string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns [][]string
}

// newReceiver listens on 127.0.0.1; rcvbuf > 0 shrinks the receive buffer
// of accepted connections.
func newReceiver(t *testing.T, rcvbuf int, handle func(n int, c net.Conn) []string) *receiver {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if rcvbuf <= 0 {
			return nil
		}
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{ln: ln, handle: handle}
	r.serve(ln)
	t.Cleanup(r.close)
	return r
}

func (r *receiver) serve(ln net.Listener) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, nil)
			r.mu.Unlock()
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer c.Close()
				lines := r.handle(n, c)
				r.mu.Lock()
				r.conns[n] = lines
				r.mu.Unlock()
			}()
		}
	}()
}

func (r *receiver) close() {
	r.ln.Close()
	r.wg.Wait()
}

func (r *receiver) addr() string { return r.ln.Addr().String() }

// lines returns every line received, connection after connection.
func (r *receiver) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.conns {
		out = append(out, c...)
	}
	return out
}

// readLines reads newline-delimited lines until EOF, decompressing the
// connection's stream as a receiver expecting compression would.
func readLines(c net.Conn, compression string) []string {
	var rd io.Reader = c
	switch compression {
	case "gzip":
		zr, err := gzip.NewReader(c) // multistream: one member per batch
		if err != nil {
			return nil
		}
		rd = zr
	case "zstd":
		d, err := zstd.NewReader(c)
		if err != nil {
			return nil
		}
		defer d.Close()
		rd = d
	case "snappy":
		rd = s2.NewReader(c)
	}
	var out []string
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func testConfig(addr string) *Config {
	c := DefaultConfig()
	c.Address = addr
	c.Inputs = []string{"in"}
	c.Batch.MaxEvents = 500
	c.Batch.Timeout = config.Dur(20 * time.Millisecond)
	c.Retry.Initial = config.Dur(time.Millisecond)
	c.Retry.Max = config.Dur(20 * time.Millisecond)
	return c
}

func build(t *testing.T, c *Config) pipeline.Output {
	t.Helper()
	if err := errors.Join(c.Common().Validate(), c.Validate()); err != nil {
		t.Fatalf("invalid test config: %v", err)
	}
	out, err := c.Build(pipeline.BuildContext{Name: "tcp"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ship(t *testing.T, c *Config, in *pipelinetest.StaticInput) *pipeline.Runner {
	t.Helper()
	r, _, err := pipelinetest.Ship(in, "tcp", build(t, c), c.OutputSettings, pipelinetest.ShipOptions{})
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

// eventually polls cond for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestNewlineEveryCompression(t *testing.T) {
	for _, comp := range []string{"none", "gzip", "zstd", "snappy"} {
		t.Run(comp, func(t *testing.T) {
			rc := newReceiver(t, 0, func(_ int, c net.Conn) []string { return readLines(c, comp) })
			c := testConfig(rc.addr())
			c.Compression = comp
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 5000, ChunkLines: 200}
			ship(t, c, in)
			rc.close() // the output closed its connection; wait for the reader
			if err := pipelinetest.CheckSequences(rc.lines(), in.Want()); err != nil {
				t.Fatal(err)
			}
			if len(rc.conns) != 1 {
				t.Errorf("%d connections, want 1", len(rc.conns))
			}
		})
	}
}

func TestJSONFormat(t *testing.T) {
	rc := newReceiver(t, 0, func(_ int, c net.Conn) []string { return readLines(c, "none") })
	c := testConfig(rc.addr())
	c.Format = "json"
	out := build(t, c)
	if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, `a "quoted" line`)); err != nil {
		t.Fatal(err)
	}
	out.Close(t.Context())
	rc.close()
	if l := rc.lines(); len(l) != 1 || l[0] != `{"message":"a \"quoted\" line"}` {
		t.Fatalf("lines %q", l)
	}
}

// readSyslog parses octet-counted frames (RFC 6587) holding RFC 5424
// messages, checking each header against want, and returns the messages.
func readSyslog(c net.Conn, want func(hdr []string) error) []string {
	br := bufio.NewReader(c)
	var out []string
	for {
		lenText, err := br.ReadString(' ')
		if err != nil {
			return out
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenText, " "))
		if err != nil || n <= 0 {
			out = append(out, "BAD FRAME LENGTH "+lenText)
			return out
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(br, msg); err != nil {
			return out
		}
		// <PRI>VERSION TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
		parts := strings.SplitN(string(msg), " ", 8)
		if len(parts) != 8 {
			out = append(out, "BAD MESSAGE "+string(msg))
			continue
		}
		if err := want(parts[:7]); err != nil {
			out = append(out, "BAD HEADER "+err.Error())
			continue
		}
		out = append(out, parts[7])
	}
}

func TestOctetCountedSyslog(t *testing.T) {
	host, _ := os.Hostname()
	check := func(h []string) error {
		if h[0] != "<157>1" { // local3 (19) * 8 + notice (5)
			return fmt.Errorf("PRI/VERSION %q", h[0])
		}
		ts, err := time.Parse(time.RFC3339Nano, h[1])
		if err != nil || time.Since(ts) > time.Minute || time.Since(ts) < 0 {
			return fmt.Errorf("TIMESTAMP %q", h[1])
		}
		if h[2] != host || h[3] != "billing" || h[4] != strconv.Itoa(os.Getpid()) || h[5] != "ACCESS" || h[6] != "-" {
			return fmt.Errorf("header %q", h)
		}
		return nil
	}
	rc := newReceiver(t, 0, func(_ int, c net.Conn) []string { return readSyslog(c, check) })
	c := testConfig(rc.addr())
	c.Framing = FramingOctetCounted
	c.Syslog = Syslog{Facility: "local3", Severity: "notice", AppName: "billing", MsgID: "ACCESS"}
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 3000, ChunkLines: 100}
	ship(t, c, in)
	rc.close()
	if err := pipelinetest.CheckSequences(rc.lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
}

func TestSyslogFrameBytes(t *testing.T) {
	h := &syslogHeader{pri: 14, hostname: "web-1", appName: "app", procID: "42", msgID: "-"}
	now := time.Date(2026, 11, 23, 1, 2, 3, 456789000, time.UTC)
	got := string(h.appendFrames(nil, pipeline.NewTestBatch(nil, "hello world", "ünïcode"), now, false))
	m1 := "<14>1 2026-11-23T01:02:03.456789Z web-1 app 42 - - hello world"
	m2 := "<14>1 2026-11-23T01:02:03.456789Z web-1 app 42 - - ünïcode"
	want := fmt.Sprintf("%d %s%d %s", len(m1), m1, len(m2), m2)
	if got != want {
		t.Fatalf("frames\n%q\nwant\n%q", got, want)
	}
	src := &pipeline.Source{Fields: []pipeline.Field{{Key: "service", Value: "api"}}}
	got = string(h.appendFrames(nil, pipeline.NewTestBatch(src, `say "hi"`), now, true))
	m := `<14>1 2026-11-23T01:02:03.456789Z web-1 app 42 - - {"message":"say \"hi\"","service":"api"}`
	if want := fmt.Sprintf("%d %s", len(m), m); got != want {
		t.Fatalf("json frame\n%q\nwant\n%q", got, want)
	}
}

// smallSendBuffer dials with a tiny socket send buffer, so that a batch
// cannot hide in kernel buffers: the write is still going on when the
// receiver drops the connection, as it is with a real network's batch
// sizes.
func smallSendBuffer(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 4096) })
		return serr
	}}
	return d.DialContext(ctx, "tcp", addr)
}

// reset closes c with RST, as a crashed receiver's kernel would.
func reset(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// completeLines returns the whole lines in b (a torn last line is what a
// receiver loses when the connection breaks).
func completeLines(b []byte) []string {
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return strings.Split(string(b[:i]), "\n")
	}
	return nil
}

// TestReceiverDropsConnectionMidBatch: the receiver resets the connection
// in the middle of a batch three times (twice in the first batch, once in
// the second). Nothing is lost: the interrupted batch is re-sent whole on a
// new connection, so its lines that got through before the reset arrive
// twice, and only those.
func TestReceiverDropsConnectionMidBatch(t *testing.T) {
	const batch = 5000
	lineLen := len(pipelinetest.Line("a", 0)) // 11 bytes: batches are 55,000 bytes
	cut := map[int]int{0: 20000, 1: 9000, 2: batch*lineLen + 20000}
	rc := newReceiver(t, 4096, func(n int, c net.Conn) []string {
		at, ok := cut[n]
		if !ok {
			return readLines(c, "none")
		}
		buf := make([]byte, at)
		got, _ := io.ReadFull(c, buf)
		reset(c)
		return completeLines(buf[:got])
	})
	c := testConfig(rc.addr())
	c.Batch.MaxEvents = batch
	c.Batch.Timeout = config.Dur(10 * time.Second) // only full batches, and the last at Stop
	c.dial = smallSendBuffer
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 20000, ChunkLines: 500}
	r := ship(t, c, in)
	rc.close()

	lines := rc.lines()
	seen := make([]int, 20000)
	prev := -1
	restarts := 0
	for _, l := range lines {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		seen[seq]++
		if seq != prev+1 {
			// Only a re-sent batch may go back, and only to its start.
			if seq%batch != 0 || seq > prev {
				t.Fatalf("seq %d after %d", seq, prev)
			}
			restarts++
		}
		prev = seq
	}
	lost, dup := 0, 0
	for _, n := range seen {
		if n == 0 {
			lost++
		}
		if n > 1 {
			dup += n - 1
		}
	}
	if lost != 0 || restarts != 3 {
		t.Fatalf("lost %d lines, %d restarts (want 0 and 3); %d connections", lost, restarts, len(rc.conns))
	}
	// What arrived twice is what got through before each reset.
	if want := (20000 + 9000 + 20000) / lineLen; dup > want {
		t.Fatalf("%d duplicates, more than the %d lines received before the resets", dup, want)
	}
	if f := r.Out.Failures.Load(); f < 3 {
		t.Fatalf("%d failed writes, want at least 3", f)
	}
	t.Logf("%d lines received for 20000 sent (%d duplicates from 3 resets), %d failed writes", len(lines), dup, r.Out.Failures.Load())
}

// TestReceiverClosedBetweenBatches: the receiver closes an idle connection
// (a restart, an idle timeout). The next batch must not go into the dead
// socket, where the first write would succeed and the lines vanish: the
// output sees the close and reconnects first.
func TestReceiverClosedBetweenBatches(t *testing.T) {
	for _, how := range []string{"close", "reset"} {
		t.Run(how, func(t *testing.T) {
			took := make(chan struct{}, 4)
			rc := newReceiver(t, 0, func(n int, c net.Conn) []string {
				if n > 0 {
					return readLines(c, "none")
				}
				br := bufio.NewReader(c)
				l, _ := br.ReadString('\n')
				if how == "reset" {
					reset(c)
				} else {
					c.Close()
				}
				took <- struct{}{} // only once the connection is closed
				return []string{strings.TrimSuffix(l, "\n")}
			})
			out := build(t, testConfig(rc.addr()))
			if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "first")); err != nil {
				t.Fatal(err)
			}
			<-took
			time.Sleep(20 * time.Millisecond) // the FIN or RST reaches the client
			if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "second")); err != nil {
				t.Fatal(err)
			}
			out.Close(t.Context())
			rc.close()
			if l := rc.lines(); len(l) != 2 || l[0] != "first" || l[1] != "second" {
				t.Fatalf("received %q over %d connections", l, len(rc.conns))
			}
		})
	}
}

// TestReceiverDownThenUp: while nothing listens, writes fail and are
// retried; once the receiver is up, everything arrives once, in order.
func TestReceiverDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testConfig(addr)
	out := build(t, c)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 2000, ChunkLines: 100}
	type result struct {
		r   *pipeline.Runner
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "tcp", out, c.OutputSettings, pipelinetest.ShipOptions{})
		done <- result{r, err}
	}()
	time.Sleep(200 * time.Millisecond)
	// Listen again on the same port.
	var rc *receiver
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc = &receiver{ln: ln, handle: func(_ int, c net.Conn) []string { return readLines(c, "none") }}
	rc.serve(ln)
	res := <-done
	rc.close()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := pipelinetest.CheckSequences(rc.lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	if f := res.r.Out.Failures.Load(); f == 0 {
		t.Fatal("no failed attempt while the receiver was down")
	}
}

func TestConnectErrorNamesAddress(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	out := build(t, testConfig(addr))
	defer out.Close(t.Context())
	err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
	if err == nil || !strings.Contains(err.Error(), "connect to "+addr) || pipeline.IsPermanent(err) {
		t.Fatalf("error %v", err)
	}
}

// TestStalledReceiverTimesOut: a receiver that accepts and never reads
// makes the write fail after write_timeout, not hang.
func TestStalledReceiverTimesOut(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, 4096, func(_ int, c net.Conn) []string { <-release; return nil })
	defer close(release)
	c := testConfig(rc.addr())
	c.WriteTimeout = config.Dur(200 * time.Millisecond)
	c.dial = smallSendBuffer
	out := build(t, c)
	defer out.Close(t.Context())
	big := make([]string, 20000)
	for i := range big {
		big[i] = pipelinetest.Line("a", i)
	}
	start := time.Now()
	err := out.Write(t.Context(), pipeline.NewTestBatch(nil, big...))
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("write took %v with a 200ms write_timeout", d)
	}
}

func tlsReceiver(t *testing.T, ca *configtest.CA, requireClient bool) *receiver {
	cfg := &tls.Config{Certificates: []tls.Certificate{ca.Server()}}
	if requireClient {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = ca.Pool()
	}
	return newReceiver(t, 0, func(_ int, c net.Conn) []string {
		return readLines(tls.Server(c, cfg), "none")
	})
}

func TestTLS(t *testing.T) {
	ca := configtest.NewCA(t)

	t.Run("verified", func(t *testing.T) {
		rc := tlsReceiver(t, ca, false)
		c := testConfig(rc.addr())
		c.TLS = config.TLS{Enabled: true, CAFile: ca.CAFile}
		in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 5000, ChunkLines: 100}
		ship(t, c, in)
		rc.close()
		if err := pipelinetest.CheckSequences(rc.lines(), in.Want()); err != nil {
			t.Fatal(err)
		}
		if len(rc.conns) != 1 {
			t.Fatalf("%d connections: the health check must not break a TLS connection", len(rc.conns))
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		rc := tlsReceiver(t, ca, false)
		c := testConfig(rc.addr())
		c.TLS = config.TLS{Enabled: true}
		out := build(t, c)
		defer out.Close(t.Context())
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "x"))
		if err == nil || !strings.Contains(err.Error(), "tls handshake with "+rc.addr()) ||
			!strings.Contains(err.Error(), "certificate signed by unknown authority") || !strings.Contains(err.Error(), "tls.ca_file") {
			t.Fatalf("error %v", err)
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		rc := tlsReceiver(t, ca, true)
		c := testConfig(rc.addr())
		c.TLS = config.TLS{Enabled: true, CAFile: ca.CAFile}
		c.TLS.CertFile, c.TLS.KeyFile = ca.Client()
		out := build(t, c)
		if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "mutual")); err != nil {
			t.Fatal(err)
		}
		out.Close(t.Context())
		rc.close()
		if l := rc.lines(); len(l) != 1 || l[0] != "mutual" {
			t.Fatalf("lines %q", l)
		}
	})
}
