package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestBatchClosesOnMaxEvents(t *testing.T) {
	out := &pipelinetest.Capture{}
	r := newRig(t, rigOptions{workers: 3}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 95, ChunkLines: 7}
	r.runInput(in)
	r.stop()

	// Batches span chunks (7 lines each) and close at exactly 10 events; the
	// remainder is flushed by Stop.
	if got, want := out.BatchSizes(), repeat(10, 9, 5); !equalInts(got, want) {
		t.Fatalf("batch sizes %v, want %v", got, want)
	}
	if err := pipelinetest.CheckSequences(out.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	st := &r.runners[0].Out
	if st.Delivered.Load() != 95 || st.Batches.Load() != 10 {
		t.Fatalf("Delivered %d Batches %d", st.Delivered.Load(), st.Batches.Load())
	}
	checkCommitted(t, in)
	if !out.Closed() {
		t.Fatal("Stop did not close the output")
	}
}

func TestBatchClosesOnMaxBytes(t *testing.T) {
	const lineBytes = 11 // "s 00000000\n"; Batch.Bytes counts the newline
	if n := len(pipelinetest.Line("s", 0)); n != lineBytes {
		t.Fatalf("line length %d", n)
	}
	for _, tc := range []struct {
		maxBytes config.Size
		want     []int
	}{
		{100, repeat(9, 10, 5)},         // 9*11 = 99 fits, 10*11 does not
		{99, repeat(9, 10, 5)},          // exactly full
		{98, repeat(8, 11, 7)},          // 8*11 = 88
		{5, repeat(1, 95)},              // a line above the limit goes alone
		{1 << 20, repeat(95, 1)},        // only Stop closes it
		{lineBytes * 95, repeat(95, 1)}, // closed on bytes by the last line
	} {
		t.Run(fmt.Sprint(tc.maxBytes), func(t *testing.T) {
			out := &pipelinetest.Capture{}
			r := newRig(t, rigOptions{workers: 2}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
				s.Batch.MaxEvents = 1000
				s.Batch.MaxBytes = tc.maxBytes
			})})
			in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 95, ChunkLines: 13}
			r.runInput(in)
			r.stop()
			if got := out.BatchSizes(); !equalInts(got, tc.want) {
				t.Fatalf("batch sizes %v, want %v", got, tc.want)
			}
			if err := pipelinetest.CheckSequences(out.Lines(), in.Want()); err != nil {
				t.Fatal(err)
			}
			checkCommitted(t, in)
		})
	}
}

func TestBatchClosesOnTimeout(t *testing.T) {
	const timeout = 80 * time.Millisecond
	out := &pipelinetest.Capture{}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 1000
		s.Batch.Timeout = config.Dur(timeout)
	})})
	f := pipelinetest.NewFeeder(r.stream, "s")
	total := 0
	for round, n := range []int{5, 3, 7} {
		start := time.Now()
		if err := f.Emit(r.ctx, n); err != nil {
			t.Fatal(err)
		}
		total += n
		// Not before the timeout...
		time.Sleep(timeout / 2)
		if b := out.Batches(); b != round {
			t.Fatalf("round %d: %d batches delivered after %v, before the %v timeout", round, b, timeout/2, timeout)
		}
		// ...but after it, with no other limit reached.
		eventually(t, "the timeout to close the batch", func() bool { return out.Batches() == round+1 })
		if d := time.Since(start); d < timeout {
			t.Fatalf("round %d: batch closed after %v, before the %v timeout", round, d, timeout)
		}
		if got := out.BatchSizes()[round]; got != n {
			t.Fatalf("round %d: batch of %d events, want %d", round, got, n)
		}
		// The batch is acknowledged just after Write returns.
		eventually(t, "the delivered batch to be committed", func() bool { return f.Committed() == pipelinetest.Size("s", total) })
	}
	r.stop()
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"s": total}); err != nil {
		t.Fatal(err)
	}
}

func TestPermanentErrorNotRetried(t *testing.T) {
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		if firstSeq(b) == 10 {
			return pipeline.Permanent(errors.New("400 bad request"))
		}
		return nil
	}}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 30, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	if w := out.Writes(); w != 3 {
		t.Fatalf("%d writes, want 3 (the rejected batch must not be retried)", w)
	}
	var want []string
	for i := range 30 {
		if i < 10 || i >= 20 {
			want = append(want, fmt.Sprintf("s %08d", i))
		}
	}
	if got := out.Lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	st := &r.runners[0].Out
	for name, c := range map[string]struct{ got, want int64 }{
		"Rejected":          {st.Rejected.Load(), 10},
		"Delivered":         {st.Delivered.Load(), 20},
		"Failures":          {st.Failures.Load(), 1},
		"Retries":           {st.Retries.Load(), 0},
		"Dropped(rejected)": {r.stats.Dropped("rejected").Load(), 10},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", name, c.got, c.want)
		}
	}
	// A rejected batch is counted as lost and acknowledged.
	checkCommitted(t, in)
}

func TestTransientErrorRetried(t *testing.T) {
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		if attempt <= 2 {
			return errors.New("503 unavailable")
		}
		return nil
	}}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 30, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	if err := pipelinetest.CheckSequences(out.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	if got := out.BatchSizes(); !equalInts(got, repeat(10, 3)) {
		t.Fatalf("batch sizes %v", got)
	}
	st := &r.runners[0].Out
	if out.Writes() != 9 || st.Retries.Load() != 6 || st.Failures.Load() != 6 ||
		st.Delivered.Load() != 30 || st.Rejected.Load() != 0 || st.ConsecutiveFails.Load() != 0 {
		t.Fatalf("writes %d retries %d failures %d delivered %d rejected %d consecutive %d",
			out.Writes(), st.Retries.Load(), st.Failures.Load(), st.Delivered.Load(), st.Rejected.Load(), st.ConsecutiveFails.Load())
	}
	if d := r.stats.DroppedByReason(); len(d) != 0 {
		t.Fatalf("drops %v", d)
	}
	checkCommitted(t, in)
}

func TestThrottleDelayHonoured(t *testing.T) {
	const delay = 150 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if attempt == 1 {
			return pipeline.Throttle(errors.New("429 too many requests"), delay)
		}
		return nil
	}}
	// Backoff alone would wait at most 1ms.
	r := newRig(t, rigOptions{workers: 1}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
		s.Retry.Initial = config.Dur(time.Millisecond)
		s.Retry.Max = config.Dur(time.Millisecond)
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 10, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 {
		t.Fatalf("%d attempts, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < delay {
		t.Fatalf("retried %v after a Throttle of %v", gap, delay)
	}
	if st := &r.runners[0].Out; st.Retries.Load() != 1 || st.Delivered.Load() != 10 {
		t.Fatalf("retries %d delivered %d", st.Retries.Load(), st.Delivered.Load())
	}
	checkCommitted(t, in)
}

func TestRetriesExhausted(t *testing.T) {
	const maxElapsed = 40 * time.Millisecond
	var mu sync.Mutex
	attempts := map[int][]time.Time{} // by batch
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		mu.Lock()
		attempts[firstSeq(b)] = append(attempts[firstSeq(b)], time.Now())
		mu.Unlock()
		return errors.New("connection refused")
	}}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
		s.Retry.Initial = config.Dur(2 * time.Millisecond)
		s.Retry.Max = config.Dur(10 * time.Millisecond)
		s.Retry.MaxElapsed = config.Dur(maxElapsed)
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 20, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	if n := out.Len(); n != 0 {
		t.Fatalf("%d lines delivered by an output that always fails", n)
	}
	st := &r.runners[0].Out
	if st.Rejected.Load() != 20 || r.stats.Dropped("retries_exhausted").Load() != 20 || st.Delivered.Load() != 0 {
		t.Fatalf("rejected %d, dropped(retries_exhausted) %d, delivered %d; want 20, 20, 0",
			st.Rejected.Load(), r.stats.Dropped("retries_exhausted").Load(), st.Delivered.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(attempts) != 2 {
		t.Fatalf("attempts for batches %v, want batches 0 and 10", attempts)
	}
	var total int64
	for seq, ts := range attempts {
		// Retries at no more than 10ms apart for 40ms: several attempts.
		if len(ts) < 3 {
			t.Errorf("batch %d: %d attempts before giving up", seq, len(ts))
		}
		total += int64(len(ts))
	}
	if st.Failures.Load() != total || st.Retries.Load() != total-2 {
		t.Errorf("failures %d retries %d; want %d, %d", st.Failures.Load(), st.Retries.Load(), total, total-2)
	}
	// Given up is counted as lost, and acknowledged.
	checkCommitted(t, in)
}

func TestDropNewestCountsDrops(t *testing.T) {
	block := make(chan struct{})
	out := &pipelinetest.Capture{Block: block}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 5
		s.Queue.MaxEvents = 10
		s.Queue.WhenFull = "drop_newest"
	})})
	f := pipelinetest.NewFeeder(r.stream, "s")
	// Chunk 0 becomes a batch of 5 that stalls in Write.
	if err := f.Emit(r.ctx, 5); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first write", func() bool { return out.Writes() == 1 })
	// Chunks 1 and 2 fill the queue (10 events); chunks 3..6 are dropped.
	for range 6 {
		if err := f.Emit(r.ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	run := r.runners[0]
	eventually(t, "20 drops", func() bool { return run.Out.Dropped.Load() == 20 })
	if e, _ := run.Queue().Depth(); e != 10 {
		t.Fatalf("queue holds %d events, want 10", e)
	}
	// Drops are acknowledged, but commits wait for the chunks before them.
	if c := f.Committed(); c != 0 {
		t.Fatalf("committed %d while chunk 0 is undelivered", c)
	}
	close(block)
	r.stop()

	if got := r.stats.Dropped("queue_full").Load(); got != 20 {
		t.Fatalf("Dropped(queue_full) = %d, want 20", got)
	}
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"s": 15}); err != nil {
		t.Fatal(err)
	}
	if c, want := f.Committed(), pipelinetest.Size("s", 35); c != want {
		t.Fatalf("committed %d, want %d (dropped chunks count as finished)", c, want)
	}
}

func TestCheckpointsHoldWhileOutputFails(t *testing.T) {
	var recovered atomic.Bool
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		if firstSeq(b) >= 20 && !recovered.Load() {
			return errors.New("sink down")
		}
		return nil
	}}
	r := newRig(t, rigOptions{workers: 3, memory: 1 << 20}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10 // one batch per chunk
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 60, ChunkLines: 10}
	r.runInput(in)
	run := r.runners[0]
	eventually(t, "failures", func() bool { return run.Out.Failures.Load() >= 5 })
	// Source a's first 20 lines may have been delivered (and committed), or
	// source b's, or a mix; nothing beyond the first failing batch.
	check := func() {
		t.Helper()
		for _, name := range in.Sources {
			c := in.Committed(name)
			if c != 0 && c != pipelinetest.Size(name, 10) && c != pipelinetest.Size(name, 20) {
				t.Fatalf("source %s committed %d while the output fails", name, c)
			}
			if c == in.Size(name) {
				t.Fatalf("source %s fully committed while the output fails", name)
			}
		}
	}
	check()
	before := run.Out.Failures.Load()
	eventually(t, "more failures", func() bool { return run.Out.Failures.Load() >= before+5 })
	check()
	if r.p.Budget().Used() == 0 {
		t.Fatal("undelivered chunks do not hold the memory budget")
	}
	recovered.Store(true)
	for _, name := range in.Sources {
		eventually(t, "commit of "+name+" after recovery", func() bool { return in.Committed(name) == in.Size(name) })
	}
	r.stop()
	checkCommitted(t, in)
	if err := pipelinetest.CheckSequences(out.Lines(), in.Want()); err != nil {
		t.Fatal(err)
	}
	if u := r.p.Budget().Used(); u != 0 {
		t.Fatalf("budget still charged %d after everything was delivered", u)
	}
}

// TestCheckpointsWaitForEveryOutput: a chunk is committed only when the
// slowest output has it.
func TestCheckpointsWaitForEveryOutput(t *testing.T) {
	fast := &pipelinetest.Capture{}
	block := make(chan struct{})
	slow := &pipelinetest.Capture{Block: block}
	set := settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 10 })
	r := newRig(t, rigOptions{workers: 2}, outSpec{"fast", fast, set}, outSpec{"slow", slow, set})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 50, ChunkLines: 10}
	r.runInput(in)
	eventually(t, "the fast output to get everything", func() bool { return fast.Len() == 50 })
	time.Sleep(settle)
	if c := in.Committed("s"); c != 0 {
		t.Fatalf("committed %d while an output has delivered nothing", c)
	}
	close(block)
	eventually(t, "commit after the slow output delivers", func() bool { return in.Committed("s") == in.Size("s") })
	r.stop()
	for _, out := range []*pipelinetest.Capture{fast, slow} {
		if err := pipelinetest.CheckSequences(out.Lines(), in.Want()); err != nil {
			t.Fatal(err)
		}
	}
	checkCommitted(t, in)
}

type dropProc struct{ drop func(seq int) bool }

func (p dropProc) Process(ev *pipeline.Event) (bool, error) {
	_, seq, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	return !p.drop(seq), nil
}

type errProc struct{}

// Process fails on multiples of 5, asking to drop them: an error keeps the
// event as it is.
func (errProc) Process(ev *pipeline.Event) (bool, error) {
	_, seq, _ := pipelinetest.ParseLine(string(ev.Raw))
	if seq%5 == 0 {
		return false, errors.New("cannot parse")
	}
	return true, nil
}

func TestProcessorsDropAndErrors(t *testing.T) {
	out := &pipelinetest.Capture{}
	drop := func(seq int) bool { return seq%3 == 0 || (seq >= 40 && seq < 60) } // chunks 4 and 5 entirely
	r := newRig(t, rigOptions{workers: 3, procs: []pipeline.Processor{errProc{}, dropProc{drop}}},
		outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 7 })})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 100, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	var want []string
	for i := range 100 {
		if !drop(i) {
			want = append(want, fmt.Sprintf("s %08d", i))
		}
	}
	if got := out.Lines(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("delivered %q,\nwant %q", got, want)
	}
	if d := r.runners[0].Out.Delivered.Load(); d != int64(len(want)) {
		t.Fatalf("Delivered %d, want %d", d, len(want))
	}
	if n := r.stats.InputLines.Load(); n != 100 {
		t.Fatalf("InputLines %d", n)
	}
	// Filtered events count as acknowledged; nothing is reported lost.
	if d := r.stats.DroppedByReason(); len(d) != 0 {
		t.Fatalf("drops %v", d)
	}
	checkCommitted(t, in)
}

// TestAllFilteredChunkAcknowledgedAtOnce: a chunk whose events were all
// dropped must not wait for a batch to close (timeout is an hour here).
func TestAllFilteredChunkAcknowledgedAtOnce(t *testing.T) {
	out := &pipelinetest.Capture{}
	r := newRig(t, rigOptions{workers: 1, procs: []pipeline.Processor{dropProc{func(int) bool { return true }}}},
		outSpec{"cap", out, settings(nil)})
	f := pipelinetest.NewFeeder(r.stream, "s")
	if err := f.Emit(r.ctx, 10); err != nil {
		t.Fatal(err)
	}
	eventually(t, "commit of a filtered chunk", func() bool { return f.Committed() == pipelinetest.Size("s", 10) })
	r.stop()
	if out.Writes() != 0 {
		t.Fatalf("%d writes of empty batches", out.Writes())
	}
}

func TestNoRoutesCommitsAtOnce(t *testing.T) {
	r := newRig(t, rigOptions{workers: 2})
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 1000, ChunkLines: 33}
	r.runInput(in)
	r.stop()
	checkCommitted(t, in)
}

func TestSplitTruncatesThroughPipeline(t *testing.T) {
	out := &pipelinetest.Capture{}
	r := newRig(t, rigOptions{workers: 2, maxLine: 6}, outSpec{"cap", out, settings(nil)})
	src := r.stream.NewSource("raw", nil)
	c, err := r.stream.NewChunk(r.ctx, src, 64)
	if err != nil {
		t.Fatal(err)
	}
	c.Buf = append(c.Buf, "short\nthis line is long\n\nlast-unterminated"...)
	c.End = int64(len(c.Buf))
	c.Truncated = 1
	if err := r.stream.Emit(r.ctx, c); err != nil {
		t.Fatal(err)
	}
	r.stop()
	if got := fmt.Sprintf("%q", out.Lines()); got != `["short" "this l" "" "last-u"]` {
		t.Fatalf("delivered %s", got)
	}
	if n := r.stats.LinesTruncated.Load(); n != 3 {
		t.Fatalf("LinesTruncated %d, want 3 (2 here + 1 by the reader)", n)
	}
	if src.Committed() != int64(len("short\nthis line is long\n\nlast-unterminated")) {
		t.Fatalf("committed %d", src.Committed())
	}
}

// TestForcedStop: with the output stalled, cancelling abort stops the
// workers and the runner without acknowledging what was not delivered, and
// leaves no goroutine behind (goleak in TestMain).
func TestForcedStop(t *testing.T) {
	out := &pipelinetest.Capture{Block: make(chan struct{})} // never closed
	r := newRig(t, rigOptions{workers: 2, memory: 64 << 10}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
		s.Queue.MaxEvents = 20
	})})
	ctx, cancelInput := context.WithCancel(context.Background())
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 100000, ChunkLines: 10}
	inputDone := make(chan error, 1)
	go func() { inputDone <- in.Run(ctx, r.stream) }()
	eventually(t, "the stalled write", func() bool { return out.Writes() == 1 })
	time.Sleep(settle) // let the queue, the pool and the budget fill up
	cancelInput()
	if err := <-inputDone; err != nil {
		t.Fatalf("input: %v", err)
	}
	r.stopped = true
	r.abort()
	r.p.Drain()
	ctx2, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.runners[0].Stop(ctx2); err != nil {
		t.Fatalf("Stop after abort: %v", err)
	}
	if c := in.Committed("s"); c != 0 {
		t.Fatalf("committed %d; nothing was delivered", c)
	}
	if n := out.Len(); n != 0 {
		t.Fatalf("%d lines delivered", n)
	}
}

func TestRunnerStopTimesOut(t *testing.T) {
	block := make(chan struct{})
	out := &pipelinetest.Capture{Block: block}
	r := newRig(t, rigOptions{workers: 1}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 5 })})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 5, ChunkLines: 5}
	r.runInput(in)
	eventually(t, "the stalled write", func() bool { return out.Writes() == 1 })
	r.p.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), settle)
	defer cancel()
	if err := r.runners[0].Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop with a stalled output = %v, want DeadlineExceeded", err)
	}
	if out.Closed() {
		t.Fatal("output closed while its runner still writes")
	}
	close(block)
	r.stopped = true
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := r.runners[0].Stop(ctx2); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	r.abort()
	checkCommitted(t, in)
}
