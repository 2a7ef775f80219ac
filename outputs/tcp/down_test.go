package tcp

import (
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestReceiverDown5sThenUp: the receiver is down for 5 s while far more
// lines wait than the memory budget holds. Throughout the outage nothing
// is committed (no line reached a receiver), the output's queue stays
// within its bounds and the heap stays flat, since the input waits for
// memory rather than buffering the backlog; once the receiver listens
// again every line arrives once, in order, and the commit reaches the end.
func TestReceiverDown5sThenUp(t *testing.T) {
	if testing.Short() {
		t.Skip("5 s outage")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testConfig(addr)
	out := build(t, c)
	const lines = 400000 // 11 bytes each: 4.4 MB of lines against a 1 MiB budget
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: lines / 2, ChunkLines: 200}
	type result struct {
		r   *pipeline.Runner
		err error
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// Measured before anything is read: a backlog buffered within the
	// first moments would otherwise be in the baseline.
	base := heap()
	started := make(chan *pipeline.Runner, 1)
	done := make(chan result, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "tcp", out, c.OutputSettings, pipelinetest.ShipOptions{
			MemoryLimit: 1 << 20,
			Timeout:     60 * time.Second,
			Started:     func(r *pipeline.Runner) { started <- r },
		})
		done <- result{r, err}
	}()
	r := <-started

	time.Sleep(300 * time.Millisecond) // the budget fills
	var peak uint64
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, src := range in.Sources {
			if f := in.Feeder(src); f != nil && f.Committed() != 0 {
				t.Fatalf("source %s committed to %d while the receiver is down", src, f.Committed())
			}
		}
		if ev, by := r.Queue().Depth(); ev > c.Queue.MaxEvents || by > int(c.Queue.MaxBytes) {
			t.Fatalf("queue at %d events, %d bytes; bounds %d, %d", ev, by, c.Queue.MaxEvents, int64(c.Queue.MaxBytes))
		}
		peak = max(peak, heap())
	}
	if r.Out.Failures.Load() < 10 {
		t.Fatalf("%d failed attempts in 5 s down", r.Out.Failures.Load())
	}
	// The backlog is 4.4 MB of lines and tens of MB as events; the
	// budget is 1 MiB, and queue and buffers a few more.
	if peak > base+6<<20 {
		t.Fatalf("heap grew from %d to %d KiB while the receiver was down", base>>10, peak>>10)
	}

	for i := 0; ; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc := &receiver{ln: ln, handle: func(_ int, c net.Conn) []string { return readLines(c, "none") }}
	rc.serve(ln)
	res := <-done
	rc.close()
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := pipelinetest.CheckSequences(rc.lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	for _, src := range in.Sources {
		if got, want := in.Committed(src), in.Size(src); got != want {
			t.Fatalf("source %s committed %d of %d", src, got, want)
		}
	}
	t.Logf("down 5 s: %d failed attempts, nothing committed, heap %d KiB -> peak %d KiB; then %d lines, 0 lost", r.Out.Failures.Load(), base>>10, peak>>10, len(rc.lines()))
}
