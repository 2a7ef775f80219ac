package http

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is a valid config for url with quick retries and small batches.
func testConfig(url string) *Config {
	c := DefaultConfig()
	c.URL = url
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
	out, err := c.Build(pipeline.BuildContext{Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ship runs in through the pipeline into the output c describes.
func ship(t *testing.T, c *Config, in *pipelinetest.StaticInput, o pipelinetest.ShipOptions) (*pipeline.Runner, *pipeline.Stats) {
	t.Helper()
	r, stats, err := pipelinetest.Ship(in, "web", build(t, c), c.OutputSettings, o)
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

// sortedSeqCheck checks lines hold every line of want exactly once, in any
// order (for max_in_flight > 1).
func sortedSeqCheck(lines []string, want map[string]int) error {
	sorted := append([]string(nil), lines...)
	sort.Strings(sorted) // lines of one source sort by seq: fixed width
	return pipelinetest.CheckSequences(sorted, want)
}

func TestNDJSONEveryCompression(t *testing.T) {
	for _, comp := range []string{"none", "gzip", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			s, srv := newNDJSONServer(t, nil)
			c := testConfig(srv.URL + "/ingest")
			c.Compression = comp
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 3000, ChunkLines: 256}
			r, _ := ship(t, c, in, pipelinetest.ShipOptions{})
			if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
				t.Fatal(err)
			}
			want := comp
			if comp == "none" {
				want = ""
			}
			if n, _ := s.counts(); s.encodings[want] != n {
				t.Errorf("Content-Encoding counts %v over %d requests, want all %q", s.encodings, n, want)
			}
			if ct := s.headers[0].Get("Content-Type"); ct != "application/x-ndjson" {
				t.Errorf("Content-Type %q", ct)
			}
			if d := r.Out.Delivered.Load(); d != 9000 {
				t.Errorf("Delivered %d", d)
			}
		})
	}
}

func TestRawFormatAndHeaders(t *testing.T) {
	s, srv := newNDJSONServer(t, nil)
	s.raw = true
	c := testConfig(srv.URL)
	c.Format = FormatRaw
	c.Compression = "none"
	c.Headers = map[string]string{"X-Team": "logs", "User-Agent": "custom/1"}
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 1000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	h := s.headers[0]
	if h.Get("X-Team") != "logs" || h.Get("User-Agent") != "custom/1" || h.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("headers %v", h)
	}
}

// halfFail fails about half the requests, with 503 or with 429 and a
// Retry-After of 0 seconds.
func halfFail(seed uint64) failure {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed))
	return func(int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch rng.IntN(4) {
		case 0:
			return 503, ""
		case 1:
			return 429, "0"
		}
		return 0, ""
	}
}

// TestHalfOfRequestsFail: with half the requests answered 503 or 429, every
// line arrives exactly once and in order, and the failures are counted.
func TestHalfOfRequestsFail(t *testing.T) {
	s, srv := newNDJSONServer(t, halfFail(1))
	c := testConfig(srv.URL)
	c.Batch.MaxEvents = 200
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 5000, ChunkLines: 128}
	r, stats := ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	n, failed := s.counts()
	if failed < n/4 {
		t.Errorf("only %d of %d requests failed; the test is not testing much", failed, n)
	}
	if got := r.Out.Retries.Load(); got != int64(failed) {
		t.Errorf("Retries %d, want %d (one per failed request)", got, failed)
	}
	if d := stats.DroppedByReason(); len(d) != 0 {
		t.Errorf("drops %v", d)
	}
	t.Logf("%d requests, %d failed", n, failed)
}

// TestHalfOfRequestsFailInFlight: the same with four batches in flight:
// order across batches is given up, nothing else.
func TestHalfOfRequestsFailInFlight(t *testing.T) {
	s, srv := newNDJSONServer(t, halfFail(2))
	c := testConfig(srv.URL)
	c.Batch.MaxEvents = 200
	c.MaxInFlight = 4
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 5000, ChunkLines: 128}
	ship(t, c, in, pipelinetest.ShipOptions{})
	if err := sortedSeqCheck(s.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	s, srv := newNDJSONServer(t, func(n int) (int, string) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if n == 1 {
			return 429, "1"
		}
		return 0, ""
	})
	c := testConfig(srv.URL)
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 10, ChunkLines: 10}
	ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 || at[1].Sub(at[0]) < time.Second {
		t.Fatalf("attempts at %v; want the retry 1s (Retry-After) after the first", at)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 11, 23, 1, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{"86400", time.Hour, true}, // capped
		{"Mon, 23 Nov 2026 01:00:30 GMT", 30 * time.Second, true},
		{"Mon, 23 Nov 2026 00:59:00 GMT", 0, true}, // in the past: now
		{"soon", 0, false},
		{"-3", 0, false},
	} {
		got, ok := retryAfter(tc.v, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
}

// TestStatusClasses: which statuses are retried and which are permanent.
func TestStatusClasses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {413, true}, {301, true},
		{408, false}, {429, false}, {500, false}, {502, false}, {503, false}, {504, false},
	} {
		srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(tc.status)
		}))
		defer srv.Close()
		out := build(t, testConfig(srv.URL))
		err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "one line"))
		out.Close(t.Context())
		if err == nil {
			t.Errorf("%d: no error", tc.status)
			continue
		}
		if pipeline.IsPermanent(err) != tc.permanent {
			t.Errorf("%d: permanent = %v, want %v (%v)", tc.status, pipeline.IsPermanent(err), tc.permanent, err)
		}
		if !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
			t.Errorf("%d: error does not name the status: %v", tc.status, err)
		}
	}
}

// TestPermanentRejectionDeadLettered: a 400 is not retried; its events go
// to the dead-letter file with the reason and the server's message.
func TestPermanentRejectionDeadLettered(t *testing.T) {
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	s, srv := newNDJSONServer(t, func(n int) (int, string) {
		if n == 2 {
			return 400, ""
		}
		return 0, ""
	})
	c := testConfig(srv.URL)
	c.Batch.MaxEvents = 100
	c.DeadLetterPath = dl
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 300, ChunkLines: 100}
	r, stats := ship(t, c, in, pipelinetest.ShipOptions{})
	if n, _ := s.counts(); n != 3 {
		t.Errorf("%d requests, want 3 (the rejected batch is not retried)", n)
	}
	if got := len(s.Lines()); got != 200 {
		t.Errorf("%d lines accepted, want 200", got)
	}
	data, err := os.ReadFile(dl)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 100 || !strings.Contains(lines[0], `"reason":"rejected"`) ||
		!strings.Contains(lines[0], `"output":"web"`) || !strings.Contains(lines[0], "400 Bad Request: injected failure") ||
		!strings.Contains(lines[0], `"line":"a 00000100"`) {
		t.Errorf("dead-letter file: %d lines, first %s", len(lines), lines[0])
	}
	if r.Out.DeadLettered.Load() != 100 || len(stats.DroppedByReason()) != 0 {
		t.Errorf("dead-lettered %d, drops %v", r.Out.DeadLettered.Load(), stats.DroppedByReason())
	}
}

// TestRetriesExhaustedDeadLettered: with retry.max_elapsed, a receiver that
// stays down makes the batch go to the dead-letter file.
func TestRetriesExhaustedDeadLettered(t *testing.T) {
	dl := filepath.Join(t.TempDir(), "dead.jsonl")
	_, srv := newNDJSONServer(t, func(int) (int, string) { return 503, "" })
	c := testConfig(srv.URL)
	c.Retry.MaxElapsed = config.Dur(50 * time.Millisecond)
	c.DeadLetterPath = dl
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 50, ChunkLines: 50}
	r, _ := ship(t, c, in, pipelinetest.ShipOptions{})
	data, _ := os.ReadFile(dl)
	if n := strings.Count(string(data), `"reason":"retries_exhausted"`); n != 50 {
		t.Errorf("%d retries_exhausted records, want 50", n)
	}
	if r.Out.DeadLettered.Load() != 50 {
		t.Errorf("DeadLettered %d", r.Out.DeadLettered.Load())
	}
}

// TestMaxInFlightConcurrentRequests: with max_in_flight = 3 and a slow
// receiver, up to three requests are outstanding at once, never more, and
// every line arrives once.
func TestMaxInFlightConcurrentRequests(t *testing.T) {
	var mu sync.Mutex
	cur, peak := 0, 0
	var lines []string
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		cur++
		peak = max(peak, cur)
		mu.Unlock()
		body, err := decodeBody(r)
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		cur--
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			lines = append(lines, l)
		}
		mu.Unlock()
		if err != nil {
			nethttp.Error(w, err.Error(), 400)
		}
	}))
	defer srv.Close()
	c := testConfig(srv.URL)
	c.Format = FormatRaw
	c.Batch.MaxEvents = 100
	c.MaxInFlight = 3
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 3000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	mu.Lock()
	defer mu.Unlock()
	if peak < 2 || peak > 3 {
		t.Fatalf("peak %d requests in flight, want 2..3", peak)
	}
	if err := sortedSeqCheck(lines, in.Want()); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionDroppedMidRequest: the receiver drops the connection while
// reading some requests (nothing processed), and after processing others
// but before answering. Nothing is lost; the only repeats are the batches
// the receiver took but never confirmed, which is what at-least-once means.
func TestConnectionDroppedMidRequest(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	unconfirmed := 0
	n := 0
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		drop := func() {
			conn, _, err := w.(nethttp.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
			}
		}
		if k%4 == 1 {
			io.CopyN(io.Discard, r.Body, 100) // part of the body, then gone
			drop()
			return
		}
		body, err := decodeBody(r)
		if err != nil {
			nethttp.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			lines = append(lines, l)
		}
		if k%4 == 2 {
			unconfirmed += strings.Count(string(body), "\n")
		}
		mu.Unlock()
		if k%4 == 2 {
			drop() // processed, never confirmed
		}
	}))
	defer srv.Close()
	c := testConfig(srv.URL)
	c.Format = FormatRaw
	c.Batch.MaxEvents = 300
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 6000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})

	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, l := range lines {
		seen[l]++
	}
	dup := 0
	for _, v := range seen {
		dup += v - 1
	}
	if len(seen) != 6000 {
		t.Fatalf("%d distinct lines of 6000 arrived", len(seen))
	}
	if dup != unconfirmed || unconfirmed == 0 {
		t.Fatalf("%d duplicates, want exactly the %d lines processed but not confirmed", dup, unconfirmed)
	}
	// Apart from the repeats, order holds.
	var uniq []string
	last := map[string]bool{}
	for _, l := range lines {
		if !last[l] {
			uniq = append(uniq, l)
			last[l] = true
		}
	}
	if err := pipelinetest.CheckSequences(uniq, in.Want()); err != nil {
		t.Fatal(err)
	}
}

// TestUnavailableForAWhile: the receiver answers 503 and 429, each with a
// Retry-After of one second, to every request for its first 1.5 s. Nothing
// is lost, every failed attempt is counted as a retry, and no retry comes
// sooner than the Retry-After that preceded it.
func TestUnavailableForAWhile(t *testing.T) {
	start := time.Now()
	var mu sync.Mutex
	var at []time.Time
	var failedAt []bool
	s, srv := newNDJSONServer(t, func(n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		fail := time.Since(start) < 1500*time.Millisecond
		failedAt = append(failedAt, fail)
		if !fail {
			return 0, ""
		}
		if n%2 == 0 {
			return 429, "1"
		}
		return 503, "1"
	})
	c := testConfig(srv.URL)
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 5000, ChunkLines: 250}
	r, _ := ship(t, c, in, pipelinetest.ShipOptions{})
	if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	failures := 0
	for i := range at {
		if !failedAt[i] {
			continue
		}
		failures++
		if i+1 < len(at) && at[i+1].Sub(at[i]) < time.Second-10*time.Millisecond {
			t.Fatalf("attempt %d came %v after a Retry-After: 1 answer", i+1, at[i+1].Sub(at[i]))
		}
	}
	if failures < 2 {
		t.Fatalf("only %d failed attempts in the first 1.5 s", failures)
	}
	if f, re := r.Out.Failures.Load(), r.Out.Retries.Load(); f != int64(failures) || re != int64(failures) {
		t.Fatalf("runner counted %d failed attempts and %d retries; the receiver refused %d", f, re, failures)
	}
}

// TestSlowReceiverBackpressure: a receiver that takes 20 ms per request is
// far slower than the input. The output's queue fills up to its bounds and
// never past them (chunks are far smaller than the bounds, so the one chunk
// an empty queue always admits never applies), the input is
// held back (lines read but not yet delivered never exceed what the memory
// budget lets the pipeline hold), and nothing is lost.
func TestSlowReceiverBackpressure(t *testing.T) {
	s, srv := newNDJSONServer(t, func(int) (int, string) { time.Sleep(20 * time.Millisecond); return 0, "" })
	c := testConfig(srv.URL)
	c.Queue.MaxEvents = 2000
	c.Queue.MaxBytes = 64 << 10
	c.Batch.MaxEvents = 500
	const chunk = 100
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 20000, ChunkLines: chunk}

	var taken atomic.Int64 // events the pool has processed, i.e. read from the input
	count := procFunc(func(*pipeline.Event) (bool, error) { taken.Add(1); return true, nil })
	var maxEvents, maxBytes, maxAhead int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	started := func(r *pipeline.Runner) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
				ev, by := r.Queue().Depth()
				maxEvents, maxBytes = max(maxEvents, ev), max(maxBytes, by)
				maxAhead = max(maxAhead, int(taken.Load())-s.Len())
			}
		})
	}
	// Large enough that the queue, not the budget, is what fills first
	// (each chunk also charges its events, ~80 bytes a line).
	const budget = 512 << 10
	ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{count}, Started: started, MemoryLimit: budget})
	close(stop)
	wg.Wait()
	if err := pipelinetest.CheckSequences(s.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	lineBytes := len(pipelinetest.Line("a", 0))
	if maxEvents > c.Queue.MaxEvents || maxBytes > int(c.Queue.MaxBytes) {
		t.Fatalf("queue held up to %d events / %d bytes; bounds %d / %d", maxEvents, maxBytes, c.Queue.MaxEvents, c.Queue.MaxBytes)
	}
	// Full means the next chunk would not fit under one of the bounds.
	if maxEvents+chunk <= c.Queue.MaxEvents && maxBytes+chunk*lineBytes <= int(c.Queue.MaxBytes) {
		t.Fatalf("the queue peaked at %d events / %d bytes, never full (bounds %d / %d): the receiver was not slower than the input",
			maxEvents, maxBytes, c.Queue.MaxEvents, c.Queue.MaxBytes)
	}
	// Every chunk is charged to the budget from its read until every
	// output acknowledged it: queue, batches, and chunks parked in the
	// reorder step behind a worker that waits to push.
	bound := budget / pipeline.BufClass(chunk*lineBytes) * chunk
	if maxAhead > bound {
		t.Fatalf("the input ran %d lines ahead of the receiver; backpressure should hold it within %d", maxAhead, bound)
	}
	t.Logf("queue peak %d events / %d bytes; input at most %d lines ahead of the receiver", maxEvents, maxBytes, maxAhead)
}

type procFunc func(*pipeline.Event) (bool, error)

func (f procFunc) Process(ev *pipeline.Event) (bool, error) { return f(ev) }
