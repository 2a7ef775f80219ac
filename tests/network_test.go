package tests

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// flakySink is an HTTP receiver that fails about half the requests (503, or
// 429 with Retry-After: 0) before looking at them, and keeps the messages
// of the others in the order accepted. It decodes gzip and zstd bodies of
// newline-delimited JSON as a real receiver would.
type flakySink struct {
	mu       sync.Mutex
	rng      *rand.Rand
	lines    []string
	requests int
	failed   int
	bad      []string
}

func (s *flakySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	fail := s.rng.IntN(2) == 0
	throttle := s.rng.IntN(2) == 0
	if fail {
		s.failed++
	}
	s.mu.Unlock()
	if fail {
		if throttle {
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		} else {
			http.Error(w, "try again", http.StatusServiceUnavailable)
		}
		return
	}
	raw, err := io.ReadAll(r.Body)
	var body []byte
	if err == nil {
		switch r.Header.Get("Content-Encoding") {
		case "gzip":
			var zr *gzip.Reader
			if zr, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
				body, err = io.ReadAll(zr)
			}
		case "zstd":
			var d *zstd.Decoder
			if d, err = zstd.NewReader(nil); err == nil {
				body, err = d.DecodeAll(raw, nil)
				d.Close()
			}
		default:
			body = raw
		}
	}
	var got []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for err == nil && sc.Scan() {
		var doc struct {
			Message string `json:"message"`
		}
		if err = json.Unmarshal(sc.Bytes(), &doc); err == nil {
			got = append(got, doc.Message)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad = append(s.bad, err.Error())
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.lines = append(s.lines, got...)
}

func (s *flakySink) snapshot() (lines []string, requests, failed int, bad []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), s.requests, s.failed, append([]string(nil), s.bad...)
}

// syslogSink accepts octet-counted RFC 5424 messages on TCP and keeps their
// MSG parts, connection after connection.
type syslogSink struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	lines []string
	bad   []string
}

func newSyslogSink(t *testing.T) *syslogSink {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &syslogSink{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				s.read(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func (s *syslogSink) read(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		n, err := br.ReadString(' ')
		if err != nil {
			return
		}
		size, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			s.mu.Lock()
			s.bad = append(s.bad, "frame length "+n)
			s.mu.Unlock()
			return
		}
		msg := make([]byte, size)
		if _, err := io.ReadFull(br, msg); err != nil {
			return
		}
		parts := strings.SplitN(string(msg), " ", 8)
		s.mu.Lock()
		if len(parts) != 8 || parts[0] != "<134>1" || parts[3] != "e2e" {
			s.bad = append(s.bad, string(msg))
		} else {
			s.lines = append(s.lines, parts[7])
		}
		s.mu.Unlock()
	}
}

func (s *syslogSink) snapshot() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...), append([]string(nil), s.bad...)
}

const networkConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"

[outputs.web]
type = "http"
inputs = ["logs"]
url = "HTTPURL/ingest"
format = "ndjson"
compression = "COMPRESSION"
batch = { max_events = 2000, timeout = "100ms" }
retry = { initial = "5ms", max = "50ms" }
dead_letter_path = "%[1]s/data/web-dead.jsonl"

[outputs.syslog]
type = "tcp"
inputs = ["logs"]
address = "TCPADDR"
framing = "octet_counted"
syslog = { facility = "local0", severity = "info", app_name = "e2e" }
batch = { max_events = 3000, timeout = "100ms" }
`

// TestShipToFlakyHTTPAndSyslog runs the binary shipping two files to an
// HTTP receiver that fails half of all requests and to a syslog receiver
// over TCP, adds lines while it runs, stops it with SIGTERM, restarts it
// with more lines, and checks at both far ends that every sequence number
// arrived exactly once, in file order.
func TestShipToFlakyHTTPAndSyslog(t *testing.T) {
	for _, comp := range []string{"gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			web := &flakySink{rng: rand.New(rand.NewPCG(7, uint64(len(comp))))}
			srv := httptest.NewServer(web)
			defer srv.Close()
			sys := newSyslogSink(t)

			dir := t.TempDir()
			tmpl := strings.NewReplacer("HTTPURL", srv.URL, "TCPADDR", sys.ln.Addr().String(), "COMPRESSION", comp).Replace(networkConfig)
			cfg := writeConfig(t, dir, tmpl)
			want := map[string]int{"n0": 40000, "n1": 30000}
			for f, n := range want {
				appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, 0, n)
			}
			total := func() int { return want["n0"] + want["n1"] }
			waitFor := func(a *agentProc, n int) {
				t.Helper()
				deadline := time.Now().Add(120 * time.Second)
				for {
					lines, _, _, _ := web.snapshot()
					sl, _ := sys.snapshot()
					if len(lines) >= n && len(sl) >= n {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("waited for %d lines: http has %d, syslog %d; log:\n%s", n, len(lines), len(sl), a.log)
					}
					if a.cmd.ProcessState != nil {
						t.Fatalf("agent exited early; log:\n%s", a.log)
					}
					time.Sleep(100 * time.Millisecond)
				}
			}

			a := startAgent(t, cfg)
			waitFor(a, total())
			for f := range want {
				appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, want[f], want[f]+5000)
				want[f] += 5000
			}
			time.Sleep(300 * time.Millisecond)
			if code := a.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, a.log)
			}
			for f := range want {
				appendSeq(t, filepath.Join(dir, "logs", f+".log"), f, want[f], want[f]+3000)
				want[f] += 3000
			}
			a = startAgent(t, cfg)
			waitFor(a, total())
			time.Sleep(500 * time.Millisecond) // a duplicate would show up now
			if code := a.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("exit code %d; log:\n%s", code, a.log)
			}

			lines, requests, failed, bad := web.snapshot()
			if len(bad) > 0 {
				t.Fatalf("http receiver could not decode %d requests: %v", len(bad), bad[0])
			}
			lost, dup, err := tally(lines, want, inOrder)
			if err != nil || lost != 0 || dup != 0 {
				t.Errorf("http: lost %d, duplicated %d, err %v", lost, dup, err)
			}
			if failed < requests/3 {
				t.Errorf("only %d of %d requests failed", failed, requests)
			}
			sl, sbad := sys.snapshot()
			if len(sbad) > 0 {
				t.Fatalf("syslog receiver got %d malformed messages: %q", len(sbad), sbad[0])
			}
			lost, dup, err = tally(sl, want, inOrder)
			if err != nil || lost != 0 || dup != 0 {
				t.Errorf("syslog: lost %d, duplicated %d, err %v", lost, dup, err)
			}
			if dl, _ := readOutput(filepath.Join(dir, "data", "web-dead.jsonl"), "none"); len(dl) > 0 {
				t.Errorf("%d lines dead-lettered; 503 and 429 must be retried", len(dl))
			}
			t.Logf("%s: %d lines over %d http requests (%d failed), %d over syslog", comp, len(lines), requests, failed, len(sl))
		})
	}
}

// TestHTTPRejectionDeadLettered: a receiver that refuses everything with 400
// makes the agent dead-letter every line (with the reason) and commit past
// them, rather than retry forever or lose them silently.
func TestHTTPRejectionDeadLettered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Error(w, "mapping error", http.StatusBadRequest)
	}))
	defer srv.Close()
	dir := t.TempDir()
	tmpl := strings.Replace(networkConfig, "HTTPURL", srv.URL, 1)
	tmpl = strings.Replace(tmpl, "COMPRESSION", "gzip", 1)
	// Only the http output.
	tmpl = tmpl[:strings.Index(tmpl, "[outputs.syslog]")]
	cfg := writeConfig(t, dir, tmpl)
	appendSeq(t, filepath.Join(dir, "logs", "r.log"), "r", 0, 5000)
	a := startAgent(t, cfg)
	dead := filepath.Join(dir, "data", "web-dead.jsonl")
	deadline := time.Now().Add(60 * time.Second)
	var recs []string
	for time.Now().Before(deadline) {
		recs, _ = readOutput(dead, "none")
		if len(recs) >= 5000 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}
	var lines []string
	for _, r := range recs {
		var rec struct{ Output, Reason, Error, Line string }
		if err := json.Unmarshal([]byte(r), &rec); err != nil {
			t.Fatal(err)
		}
		if rec.Output != "web" || rec.Reason != "rejected" || !strings.Contains(rec.Error, "400 Bad Request: mapping error") {
			t.Fatalf("record %s", r)
		}
		lines = append(lines, rec.Line)
	}
	lost, dup, err := tally(lines, map[string]int{"r": 5000}, inOrder)
	if err != nil || lost != 0 || dup != 0 {
		t.Fatalf("dead-letter file: lost %d, duplicated %d, err %v", lost, dup, err)
	}
	// Committed: a restart sends nothing again.
	a = startAgent(t, cfg)
	time.Sleep(time.Second)
	a.stop(syscall.SIGTERM)
	if again, _ := readOutput(dead, "none"); len(again) != 5000 {
		t.Fatalf("after restart the dead-letter file has %d lines, want 5000 (nothing re-sent)", len(again))
	}
}
