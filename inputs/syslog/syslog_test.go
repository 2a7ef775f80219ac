package syslog

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config/configtest"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// render records "<protocol>|<message field>" so a test checks both what
// the parser took out of the syslog frame and where it came from.
func render(src *pipeline.Source, ev *pipeline.Event) string {
	text := func(key string) string {
		switch v, _ := pipeline.Lookup(src, ev, key); t := v.(type) {
		case *pipeline.Text:
			return string(*t)
		case pipeline.Text:
			return string(t)
		case string:
			return t
		default:
			return fmt.Sprint(t)
		}
	}
	return text("metadata.protocol") + "|" + text("message")
}

func listen(t *testing.T, mode string, mutate func(*Config)) (*rig, string) {
	t.Helper()
	c := defaults()
	c.Mode, c.Address = mode, "127.0.0.1:0"
	if mutate != nil {
		mutate(c)
	}
	rg := startRig(t, c, "syslog", false, func(c *pipelinetest.Capture) { c.Render = render })
	return rg, rg.Input.(*Input).Addr().String()
}

// split returns the messages of one protocol, without the prefix.
func messages(lines []string, proto string) []string {
	var out []string
	for _, l := range lines {
		if m, ok := strings.CutPrefix(l, proto+"|"); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestLogSyslogClients: Go's log/syslog writes over TCP and UDP; every
// message arrives once, in order, parsed.
func TestLogSyslogClients(t *testing.T) {
	const n = 500
	for _, mode := range []string{"tcp", "udp"} {
		t.Run(mode, func(t *testing.T) {
			rg, addr := listen(t, mode, func(c *Config) {
				// Localhost UDP does not drop below the socket buffer.
				c.ReceiveBuffer = 4 << 20
			})
			w, err := syslog.Dial(mode, addr, syslog.LOG_INFO|syslog.LOG_LOCAL0, "seqtest")
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := w.Info(strings.TrimSuffix(pipelinetest.Line(mode, i), "\n")); err != nil {
					t.Fatal(err)
				}
				if mode == "udp" && i%50 == 49 {
					// Let the reader keep up: UDP has no flow control
					// and this test is about framing, not overload.
					waitFor(t, "udp messages", func() bool { return rg.Out.Len() >= i+1-50 })
				}
			}
			w.Close()
			waitFor(t, "messages", func() bool { return rg.Out.Len() >= n })
			got := messages(rg.Out.Lines(), mode)
			if err := pipelinetest.CheckSequences(got, map[string]int{mode: n}); err != nil {
				t.Fatalf("%v\nfirst lines: %q", err, rg.Out.Lines()[:3])
			}
			if d := rg.Stats.ParseErrors.Load(); d != 0 {
				t.Fatalf("%d parse errors", d)
			}
		})
	}
}

func rfc5424(i int, msg string) string {
	return fmt.Sprintf("<165>1 2026-12-02T05:00:00.%06dZ host.example app 42 ID%d [x@32473 seq=\"%d\"] %s", i, i, i, msg)
}

// TestOctetCountedTCP: RFC 6587 octet counting, messages with newlines
// kept whole, newline-framed messages on another connection mixed in.
func TestOctetCountedTCP(t *testing.T) {
	const n = 1000
	rg, addr := listen(t, "tcp", nil)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(conn)
	for i := range n {
		msg := rfc5424(i, strings.TrimSuffix(pipelinetest.Line("oc", i), "\n"))
		if i%10 == 0 {
			msg += "\n  continued"
		}
		fmt.Fprintf(bw, "%d %s", len(msg), msg)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	waitFor(t, "messages", func() bool { return rg.Out.Len() >= n })
	got := messages(rg.Out.Lines(), "tcp")
	var seqs []string
	for i, m := range got {
		line, rest, _ := strings.Cut(m, "\n")
		if (i%10 == 0) != (rest == "  continued") {
			t.Fatalf("message %d: %q: the embedded newline was not kept in one event", i, m)
		}
		seqs = append(seqs, line)
	}
	if err := pipelinetest.CheckSequences(seqs, map[string]int{"oc": n}); err != nil {
		t.Fatal(err)
	}
}

// TestTLS: a client trusting the test CA delivers; with client_ca_file a
// client without a certificate is refused and one with a certificate the
// CA signed delivers.
func TestTLS(t *testing.T) {
	ca := configtest.NewCA(t)
	certFile, keyFile := writeServerCert(t, ca)
	clientCert, clientKey := ca.Client()
	rg, addr := listen(t, "tcp", func(c *Config) {
		c.TLS = ServerTLS{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.CAFile}
	})
	roots := ca.Pool()
	if _, err := sendTLS(addr, &tls.Config{RootCAs: roots, ServerName: "localhost"}, "nocert", 1); err == nil {
		// The refusal may surface at the first read rather than at the
		// handshake under TLS 1.3; the message must not arrive either way.
		t.Log("client without a certificate was not refused at write time")
	}
	kp, err := tls.LoadX509KeyPair(clientCert, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	if _, err := sendTLS(addr, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{kp}}, "tls", n); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "messages", func() bool { return rg.Out.Len() >= n })
	got := messages(rg.Out.Lines(), "tcp")
	if err := pipelinetest.CheckSequences(got, map[string]int{"tls": n}); err != nil {
		t.Fatal(err)
	}
	// A client that does not trust the server's CA gets a verification
	// error: certificates are checked by default on the client side.
	if _, err := sendTLS(addr, &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost", Certificates: []tls.Certificate{kp}}, "untrusted", 1); err == nil {
		t.Fatal("handshake with an untrusting client succeeded")
	}
}

func sendTLS(addr string, cfg *tls.Config, source string, n int) (int, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	bw := bufio.NewWriter(conn)
	for i := range n {
		fmt.Fprintf(bw, "%s\n", rfc5424(i, strings.TrimSuffix(pipelinetest.Line(source, i), "\n")))
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	// Read until the server closes or a short while passes, so a refused
	// handshake is reported.
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, err = conn.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return n, nil
	}
	return n, err
}

func writeServerCert(t *testing.T, ca *configtest.CA) (certFile, keyFile string) {
	t.Helper()
	c := ca.Server()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	var cp []byte
	for _, der := range c.Certificate {
		cp = append(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestConnectionLimit: with max_connections = 1 a second client is served
// only once the first one closes.
func TestConnectionLimit(t *testing.T) {
	rg, addr := listen(t, "tcp", func(c *Config) { c.MaxConnections = 1; c.Parser = "none" })
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(first, "first 00000000\n")
	waitFor(t, "first message", func() bool { return rg.Out.Len() == 1 })
	second, err := net.Dial("tcp", addr) // the kernel's accept queue takes it
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	fmt.Fprintf(second, "second 00000000\n")
	time.Sleep(200 * time.Millisecond)
	if rg.Out.Len() != 1 {
		t.Fatalf("second connection served over the limit: %q", rg.Out.Lines())
	}
	first.Close()
	waitFor(t, "second message", func() bool { return rg.Out.Len() == 2 })
	second.Close()
}

func TestReadFrame(t *testing.T) {
	for _, tc := range []struct {
		framing, in string
		max         int
		want        []string
		cut         int
		err         bool
	}{
		{"auto", "a\r\nb\n\nc", 100, []string{"a", "b", "c"}, 0, false},
		{"auto", "5 hello3 a\nb", 100, []string{"hello", "a\nb"}, 0, false},
		{"auto", "11 hello world", 5, []string{"hello"}, 1, false},
		{"newline", "hello world\nok\n", 5, []string{"hello", "ok"}, 1, false},
		{"newline", "12345\n", 5, []string{"12345"}, 0, false},
		{"octet_counted", "3 abc\n4 defg", 100, []string{"abc", "defg"}, 0, false},
		{"octet_counted", "<13>x", 100, nil, 0, true},
		{"auto", "10 short", 100, nil, 0, true},
		{"auto", "1234567890123 x", 100, nil, 0, true},
	} {
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
		var got []string
		var buf []byte
		cuts := 0
		var err error
		for {
			start := len(buf)
			var cut bool
			buf, cut, err = readFrame(br, tc.framing, tc.max, buf)
			if len(buf) > start {
				got = append(got, string(buf[start:]))
			}
			if cut {
				cuts++
			}
			if err != nil {
				break
			}
		}
		if isFraming := strings.Contains(err.Error(), errFraming.Error()); isFraming != tc.err {
			t.Errorf("%s %q: err %v", tc.framing, tc.in, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) || cuts != tc.cut {
			t.Errorf("%s %q: got %q (%d cut), want %q (%d cut)", tc.framing, tc.in, got, cuts, tc.want, tc.cut)
		}
	}
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.Parser = "cri"
	c.Multiline.Preset = "java"
	c.Mode, c.Framing, c.MaxConnections = "sctp", "lines", 0
	c.TLS.CertFile = "x"
	err := c.Validate()
	for _, key := range []string{"multiline", "parser", "mode", "address", "framing", "max_connections", "tls.cert_file"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
}

// TestUDPDropsCounted: while the output is down the input stops reading,
// the kernel drops what overflows the small receive buffer, and the input
// counts those drops: every datagram sent is delivered once or counted as
// dropped (the count may include dropped probes, so it is a lower bound
// check: nothing is lost uncounted).
func TestUDPDropsCounted(t *testing.T) {
	rg, addr := listen(t, "udp", func(c *Config) {
		c.ReceiveBuffer = 64 << 10
		c.Parser = "none"
	})
	rg.Down.Store(true)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pad := strings.Repeat("x", 1000)
	const n = 30000 // 30 MB: more than the queue and memory budget hold
	for i := range n {
		fmt.Fprintf(conn, "udp %08d %s", i, pad)
	}
	// One more datagram once the backlog is read carries the final drop
	// count (the kernel reports it with the next datagram received).
	rg.Down.Store(false)
	dropped := rg.Stats.Dropped("udp_receive_overflow")
	waitFor(t, "delivered + dropped = sent", func() bool {
		fmt.Fprintf(conn, "udp %08d %s", n, pad) // repeated: a probe may be dropped too
		time.Sleep(50 * time.Millisecond)
		got := rg.Out.Len()
		return dropped.Load() > 0 && int64(got)+dropped.Load() >= n
	})
	seen := map[int]int{}
	for _, l := range rg.Out.Lines() {
		var seq int
		if _, err := fmt.Sscanf(strings.TrimPrefix(l, "udp|"), "udp %08d", &seq); err != nil {
			t.Fatalf("line %q: %v", l[:20], err)
		}
		seen[seq]++
		if seen[seq] > 1 && seq < n {
			t.Fatalf("datagram %d delivered twice", seq)
		}
	}
	delivered := 0
	for seq := range seen {
		if seq < n {
			delivered++
		}
	}
	if int64(delivered)+dropped.Load() < n {
		t.Fatalf("%d delivered + %d counted dropped < %d sent", delivered, dropped.Load(), n)
	}
	t.Logf("%d of %d datagrams delivered, %d counted as dropped by the kernel", delivered, n, dropped.Load())
}

// TestTCPBackpressure: while the output is down the input stops reading,
// so the sender's writes block once the memory budget and the socket
// buffers are full; once the output is back every message arrives once.
func TestTCPBackpressure(t *testing.T) {
	rg, addr := listen(t, "tcp", func(c *Config) { c.Parser = "none" })
	rg.Down.Store(true)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const perBlock = 10000
	block := func(b int) []byte {
		var sb strings.Builder
		for i := b * perBlock; i < (b+1)*perBlock; i++ {
			fmt.Fprintf(&sb, "bp %08d %s\n", i, strings.Repeat("x", 87)) // 100 bytes
		}
		return []byte(sb.String())
	}
	blocks, blocked := 0, false
	var rest []byte
	for blocks < 200 && !blocked { // 200 MB: far beyond budget, queue and socket buffers
		buf := block(blocks)
		_ = conn.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := conn.Write(buf)
		blocks++
		if err != nil {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Fatal(err)
			}
			blocked, rest = true, buf[n:]
		}
	}
	if !blocked {
		t.Fatalf("wrote %d MB to a stalled pipeline without blocking: the input reads without bound", blocks)
	}
	t.Logf("the sender blocked after about %d MB", blocks)
	rg.Down.Store(false)
	_ = conn.SetWriteDeadline(time.Time{})
	if _, err := conn.Write(rest); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	n := blocks * perBlock
	waitFor(t, "messages", func() bool { return rg.Out.Len() >= n })
	got := messages(rg.Out.Lines(), "tcp")
	for i := range got {
		got[i] = got[i][:len("bp 00000000")]
	}
	if err := pipelinetest.CheckSequences(got, map[string]int{"bp": n}); err != nil {
		t.Fatal(err)
	}
}

// TestRFC3164AndRFC5424Parsed: classic BSD syslog and RFC 5424 frames sent
// raw over UDP are parsed into their fields, with the peer as metadata.
func TestRFC3164AndRFC5424Parsed(t *testing.T) {
	fields := func(src *pipeline.Source, ev *pipeline.Event) string {
		var out []string
		for _, k := range []string{"hostname", "appname", "procid", "severity", "message", "metadata.protocol"} {
			v, _ := pipeline.Lookup(src, ev, k)
			out = append(out, fmt.Sprintf("%s=%v", k, v))
		}
		peer, _ := pipeline.Lookup(src, ev, "metadata.peer")
		if s, _ := peer.(string); !strings.HasPrefix(s, "127.0.0.1:") {
			out = append(out, fmt.Sprintf("bad peer %v", peer))
		}
		return strings.Join(out, " ")
	}
	c := defaults()
	c.Mode, c.Address = "udp", "127.0.0.1:0"
	rg := startRig(t, c, "syslog", false, func(c *pipelinetest.Capture) { c.Render = fields })
	conn, err := net.Dial("udp", rg.Input.(*Input).Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("<34>Oct 11 22:14:15 mymachine su[99]: 'su root' failed for lonvick on /dev/pts/8"))
	waitFor(t, "first", func() bool { return rg.Out.Len() == 1 })
	conn.Write([]byte(`<165>1 2003-10-11T22:14:15.003Z host.example.com evntslog 42 ID47 [exampleSDID@32473 iut="3"] An application event` + "\n"))
	waitFor(t, "second", func() bool { return rg.Out.Len() == 2 })
	want := []string{
		"hostname=mymachine appname=su procid=99 severity=2 message='su root' failed for lonvick on /dev/pts/8 metadata.protocol=udp",
		"hostname=host.example.com appname=evntslog procid=42 severity=5 message=An application event metadata.protocol=udp",
	}
	if got := rg.Out.Lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
}

// loggerFields records what the syslog parser took out of a frame that
// util-linux logger wrote, and the first bytes of the frame itself: the
// parser keeps no version field, so "<PRI>1 " in the raw frame is what shows
// logger sent RFC 5424 version 1, and msgid and structured_data (which only
// the 5424 path makes) show the parser read it as 5424.
func loggerFields(src *pipeline.Source, ev *pipeline.Event) string {
	var out []string
	for _, k := range []string{"metadata.protocol", "facility", "severity", "hostname", "appname", "procid", "msgid", "structured_data", "message"} {
		v, _ := pipeline.Lookup(src, ev, k)
		switch t := v.(type) {
		case *pipeline.Text:
			v = string(*t)
		case pipeline.Text:
			v = string(t)
		}
		out = append(out, fmt.Sprint(v))
	}
	raw := ev.Raw
	if len(raw) > 7 {
		raw = raw[:7]
	}
	return strings.Join(append(out, string(raw)), "\t")
}

// TestLoggerRFC5424: util-linux logger, a real syslog client, writes RFC
// 5424 over TCP with newline framing, over TCP with octet counting (RFC
// 6587) and over UDP, one message per line it reads on stdin. Every
// sequence number arrives exactly once (in order over TCP) and every
// message's header (PRI, version, hostname, app name, procid, msgid,
// structured data) is parsed as logger sent it.
func TestLoggerRFC5424(t *testing.T) {
	logger, err := exec.LookPath("logger")
	if err != nil {
		const why = "util-linux logger (Debian package bsdutils) is not installed: no real RFC 5424 client to test with"
		if os.Getenv("TAILSHIP_REQUIRE_SERVICES") == "1" {
			t.Fatal(why + "; .ci/run installs it") // CI must run this test, not skip it
		}
		t.Skip(why)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for _, tc := range []struct {
		name, mode, framing string
		flags               []string
	}{
		{"tcp", "tcp", "newline", []string{"--tcp"}},
		{"tcp_octet_counted", "tcp", "octet_counted", []string{"--tcp", "--octet-count"}},
		{"udp", "udp", "", []string{"--udp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The framing is fixed rather than auto, so a client that
			// framed differently from what its flags say fails here.
			c := defaults()
			c.Mode, c.Address = tc.mode, "127.0.0.1:0"
			if tc.framing != "" {
				c.Framing = tc.framing
			}
			rg := startRig(t, c, "syslog", false, func(c *pipelinetest.Capture) { c.Render = loggerFields })
			_, port, _ := net.SplitHostPort(rg.Input.(*Input).Addr().String())
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			args := append([]string{"--rfc5424", "-n", "127.0.0.1", "-P", port,
				"-p", "local0.info", "-t", "tailship-seq", "--id=4242", "--msgid", "SEQ",
				"--sd-id", "seq@32473", "--sd-param", `run="` + tc.name + `"`}, tc.flags...)
			cmd := exec.CommandContext(ctx, logger, args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatalf("start %s: %v", logger, err)
			}
			for i := range n {
				if _, err := io.WriteString(stdin, pipelinetest.Line(tc.name, i)); err != nil {
					t.Fatalf("write line %d to logger: %v (stderr: %s)", i, err, stderr.String())
				}
				if tc.mode == "udp" && i%50 == 49 {
					// logger sends a datagram per line as soon as it
					// reads it; pacing its stdin keeps the burst within
					// the socket buffer, since UDP has no flow control
					// and this test is about the client's format.
					waitFor(t, "udp messages", func() bool { return rg.Out.Len() >= i+1-50 })
				}
			}
			stdin.Close()
			if err := cmd.Wait(); err != nil {
				t.Fatalf("logger: %v: %s", err, stderr.String())
			}
			waitFor(t, "messages", func() bool { return rg.Out.Len() >= n })
			time.Sleep(100 * time.Millisecond) // a duplicate would land now
			lines := rg.Out.Lines()
			var msgs []string
			for i, l := range lines {
				f := strings.Split(l, "\t")
				if len(f) != 10 {
					t.Fatalf("event %d: %q", i, l)
				}
				proto, facility, severity, hostname, app, procid, msgid, sd, msg, raw := f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9]
				// local0.info is PRI 16*8+6.
				if proto != tc.mode || facility != "16" || severity != "6" || raw != "<134>1 " ||
					app != "tailship-seq" || procid != "4242" || msgid != "SEQ" ||
					!strings.Contains(sd, `[seq@32473 run="`+tc.name+`"]`) {
					t.Fatalf("event %d parsed as %q", i, l)
				}
				// logger may send the FQDN where the kernel's name is short.
				if h, _, _ := strings.Cut(hostname, "."); h != strings.Split(host, ".")[0] {
					t.Fatalf("event %d: hostname %q, this host is %q", i, hostname, host)
				}
				msgs = append(msgs, msg)
			}
			if rg.Stats.ParseErrors.Load() != 0 {
				t.Fatalf("%d parse errors", rg.Stats.ParseErrors.Load())
			}
			if tc.mode == "tcp" {
				if err := pipelinetest.CheckSequences(msgs, map[string]int{tc.name: n}); err != nil {
					t.Fatal(err)
				}
				return
			}
			// Datagrams are read one at a time, but their order is not
			// part of UDP's promise: count each sequence number instead.
			seen := make([]int, n)
			for _, m := range msgs {
				src, seq, err := pipelinetest.ParseLine(m)
				if err != nil || src != tc.name || seq >= n {
					t.Fatalf("message %q: %v", m, err)
				}
				seen[seq]++
			}
			var lost, dup int
			for _, c := range seen {
				if c == 0 {
					lost++
				} else if c > 1 {
					dup += c - 1
				}
			}
			if lost != 0 || dup != 0 {
				t.Fatalf("%d of %d datagrams lost, %d duplicated (%d counted dropped by the kernel)", lost, n, dup, rg.Stats.Dropped("udp_receive_overflow").Load())
			}
		})
	}
}
