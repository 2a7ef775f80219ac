package pipeline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// seqs returns the sequence numbers of a batch's events, in order.
func seqs(b *pipeline.Batch) []int {
	var out []int
	for _, ev := range b.All() {
		_, seq, err := pipelinetest.ParseLine(string(ev.Raw))
		if err != nil {
			panic(err)
		}
		out = append(out, seq)
	}
	return out
}

// partialOutput answers the way an Elasticsearch _bulk endpoint does: on the
// first attempt at an event it may ask for a retry (seq%7 == 3) or reject it
// (seq%10 == 9); everything else, and every retried event, is accepted.
type partialOutput struct {
	mu       sync.Mutex
	sent     map[int]int // seq -> times sent
	accepted []int
	writes   [][]int
}

func (o *partialOutput) Write(_ context.Context, b *pipeline.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := seqs(b)
	o.writes = append(o.writes, s)
	pe := &pipeline.PartialError{Err: errors.New("bulk: some items failed")}
	for i, seq := range s {
		o.sent[seq]++
		switch {
		case seq%10 == 9:
			pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i, Reason: fmt.Sprintf("mapper_parsing_exception seq %d", seq)})
		case seq%7 == 3 && o.sent[seq] == 1:
			pe.Retry = append(pe.Retry, i)
		default:
			o.accepted = append(o.accepted, seq)
		}
	}
	if len(pe.Retry) == 0 && len(pe.Rejected) == 0 {
		return nil
	}
	return pe
}

func (o *partialOutput) Close(context.Context) error { return nil }

// TestPartialErrorRetriesOnlyFailedEvents: a PartialError makes the runner
// re-send only the events to retry, dead-letter the rejected ones with their
// reason, count everything, and still commit the whole input.
func TestPartialErrorRetriesOnlyFailedEvents(t *testing.T) {
	dl := filepath.Join(t.TempDir(), "dlq", "rejected.jsonl")
	out := &partialOutput{sent: map[int]int{}}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"es", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 25
		s.DeadLetterPath = dl
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 200, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	var wantAccepted, wantRejected []int
	for seq := range 200 {
		if seq%10 == 9 {
			wantRejected = append(wantRejected, seq)
		} else {
			wantAccepted = append(wantAccepted, seq)
		}
	}
	out.mu.Lock()
	accepted := append([]int(nil), out.accepted...)
	sort.Ints(accepted)
	if fmt.Sprint(accepted) != fmt.Sprint(wantAccepted) {
		t.Errorf("accepted %v,\nwant %v", accepted, wantAccepted)
	}
	for seq, n := range out.sent {
		want := 1
		if seq%7 == 3 && seq%10 != 9 {
			want = 2
		}
		if n != want {
			t.Errorf("seq %d sent %d times, want %d", seq, n, want)
		}
	}
	// A retry carries nothing but the events to retry.
	for _, w := range out.writes {
		if len(w) > 0 && w[0]%7 == 3 && len(w) < 25 {
			for _, seq := range w {
				if seq%7 != 3 {
					t.Errorf("retry write %v holds seq %d, which was not to retry", w, seq)
				}
			}
		}
	}
	out.mu.Unlock()

	st := &r.runners[0].Out
	if st.Delivered.Load() != int64(len(wantAccepted)) || st.Rejected.Load() != int64(len(wantRejected)) ||
		st.DeadLettered.Load() != int64(len(wantRejected)) {
		t.Errorf("delivered %d rejected %d dead-lettered %d; want %d, %d, %d", st.Delivered.Load(),
			st.Rejected.Load(), st.DeadLettered.Load(), len(wantAccepted), len(wantRejected), len(wantRejected))
	}
	if d := r.stats.DroppedByReason(); len(d) != 0 {
		t.Errorf("dead-lettered events counted as lost: %v", d)
	}
	recs := readDeadLetter(t, dl)
	var got []int
	for _, rec := range recs {
		_, seq, err := pipelinetest.ParseLine(rec["line"])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, seq)
		if rec["output"] != "es" || rec["reason"] != "rejected" || rec["source"] != "s" ||
			rec["error"] != fmt.Sprintf("mapper_parsing_exception seq %d", seq) {
			t.Errorf("dead-letter record %v", rec)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(wantRejected) {
		t.Errorf("dead-lettered %v, want %v", got, wantRejected)
	}
	checkCommitted(t, in)
}

func readDeadLetter(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec map[string]string
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("dead-letter line %q: %v", sc.Text(), err)
		}
		out = append(out, rec)
	}
	return out
}

// TestDeadLetterWholeBatches: a batch rejected permanently and a batch whose
// retries ran out both go to the dead-letter file with their reason, and are
// not counted as lost.
func TestDeadLetterWholeBatches(t *testing.T) {
	dl := filepath.Join(t.TempDir(), "rejected.jsonl")
	out := &pipelinetest.Capture{Fail: func(attempt int, b *pipeline.Batch) error {
		switch firstSeq(b) {
		case 10:
			return pipeline.Permanent(errors.New("400 bad request"))
		case 20:
			return errors.New("503 unavailable")
		}
		return nil
	}}
	r := newRig(t, rigOptions{workers: 1}, outSpec{"web", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
		s.Retry.MaxElapsed.UnmarshalText([]byte("30ms"))
		s.DeadLetterPath = dl
	})})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 40, ChunkLines: 10}
	r.runInput(in)
	r.stop()

	recs := readDeadLetter(t, dl)
	if len(recs) != 20 {
		t.Fatalf("%d dead-letter records, want 20", len(recs))
	}
	for i, rec := range recs {
		_, seq, _ := pipelinetest.ParseLine(rec["line"])
		want, wantErr := "rejected", "400 bad request"
		if i >= 10 {
			want, wantErr = "retries_exhausted", "503 unavailable"
		}
		if seq != 10+i || rec["reason"] != want || rec["error"] != wantErr || rec["time"] == "" {
			t.Errorf("record %d: %v", i, rec)
		}
	}
	st := &r.runners[0].Out
	if st.Rejected.Load() != 20 || st.DeadLettered.Load() != 20 || st.Delivered.Load() != 20 {
		t.Errorf("rejected %d dead-lettered %d delivered %d", st.Rejected.Load(), st.DeadLettered.Load(), st.Delivered.Load())
	}
	if d := r.stats.DroppedByReason(); len(d) != 0 {
		t.Errorf("drops %v", d)
	}
	checkCommitted(t, in)
}

// TestDeadLetterUnwritableCountsLoss: when the dead-letter file cannot be
// written, the events are counted as lost rather than blocking the output.
func TestDeadLetterUnwritableCountsLoss(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := &pipelinetest.Capture{Fail: func(int, *pipeline.Batch) error { return pipeline.Permanent(errors.New("400")) }}
	set := settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 10 })
	set.DeadLetterPath = filepath.Join(blocker, "sub", "dlq.jsonl") // a directory under a file
	r := newRig(t, rigOptions{workers: 1}, outSpec{"web", out, set})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 10, ChunkLines: 10}
	r.runInput(in)
	r.stop()
	if got := r.stats.Dropped("rejected").Load(); got != 10 {
		t.Errorf("Dropped(rejected) = %d, want 10", got)
	}
	if st := &r.runners[0].Out; st.DeadLettered.Load() != 0 || st.Rejected.Load() != 10 {
		t.Errorf("dead-lettered %d rejected %d", st.DeadLettered.Load(), st.Rejected.Load())
	}
	checkCommitted(t, in)
}

// slowFirstOutput delays every third batch so later batches finish first,
// and records what it has accepted before it returns.
type slowFirstOutput struct {
	mu       sync.Mutex
	got      map[int]bool
	inflight atomic.Int32
	peak     atomic.Int32
}

func (o *slowFirstOutput) Write(ctx context.Context, b *pipeline.Batch) error {
	n := o.inflight.Add(1)
	defer o.inflight.Add(-1)
	for {
		p := o.peak.Load()
		if n <= p || o.peak.CompareAndSwap(p, n) {
			break
		}
	}
	s := seqs(b)
	if (s[0]/10)%3 == 0 {
		time.Sleep(15 * time.Millisecond)
	}
	o.mu.Lock()
	for _, seq := range s {
		o.got[seq] = true
	}
	o.mu.Unlock()
	return nil
}

func (o *slowFirstOutput) Close(context.Context) error { return nil }

// TestMaxInFlightCommitsOnlyDeliveredPrefix: with batches written
// concurrently and finishing out of order, and chunks (7 lines) split across
// batches (10 events), a committed offset never covers a line the output
// has not accepted, every line arrives once, and everything is committed.
func TestMaxInFlightCommitsOnlyDeliveredPrefix(t *testing.T) {
	out := &slowFirstOutput{got: map[int]bool{}}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"par", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 10
		s.MaxInFlight = 4
	})})
	f := pipelinetest.NewFeeder(r.stream, "s")
	lineLen := pipelinetest.Size("s", 1)
	var bad atomic.Int64
	bad.Store(-1)
	f.OnCommit = func(off int64) {
		n := int(off / lineLen)
		out.mu.Lock()
		defer out.mu.Unlock()
		for seq := range n {
			if !out.got[seq] {
				bad.CompareAndSwap(-1, int64(seq))
			}
		}
	}
	const total = 700
	for range total / 7 {
		if err := f.Emit(r.ctx, 7); err != nil {
			t.Fatal(err)
		}
	}
	r.stop()
	if seq := bad.Load(); seq >= 0 {
		t.Fatalf("committed past seq %d before the output had it", seq)
	}
	if len(out.got) != total {
		t.Fatalf("output got %d distinct lines, want %d", len(out.got), total)
	}
	if c := f.Committed(); c != pipelinetest.Size("s", total) {
		t.Fatalf("committed %d, want %d", c, pipelinetest.Size("s", total))
	}
	if _, back := f.Commits(); back != 0 {
		t.Fatalf("%d commits went backwards", back)
	}
	if p := out.peak.Load(); p < 2 || p > 4 {
		t.Fatalf("peak batches in flight %d, want 2..4", p)
	}
	if d := r.runners[0].Out.Delivered.Load(); d != total {
		t.Fatalf("Delivered %d", d)
	}
}

// TestMaxInFlightForcedStop: an abort while several batches are stalled in
// flight returns without acknowledging them and leaves no goroutine (goleak).
func TestMaxInFlightForcedStop(t *testing.T) {
	out := &pipelinetest.Capture{Block: make(chan struct{})}
	r := newRig(t, rigOptions{workers: 1}, outSpec{"par", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 5
		s.MaxInFlight = 3
	})})
	f := pipelinetest.NewFeeder(r.stream, "s")
	for range 6 {
		if err := f.Emit(r.ctx, 5); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "three stalled writes", func() bool { return out.Writes() == 3 })
	time.Sleep(settle)
	if w := out.Writes(); w != 3 {
		t.Fatalf("%d writes in flight, want max_in_flight = 3", w)
	}
	r.stopped = true
	r.abort()
	r.p.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.runners[0].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if c := f.Committed(); c != 0 {
		t.Fatalf("committed %d; nothing was delivered", c)
	}
}

// confusedOutput returns a PartialError with indices out of range, repeated,
// and both to retry and rejected, then accepts whatever is retried.
type confusedOutput struct {
	mu     sync.Mutex
	writes [][]int
}

func (o *confusedOutput) Write(_ context.Context, b *pipeline.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writes = append(o.writes, seqs(b))
	if len(o.writes) > 1 {
		return nil
	}
	return &pipeline.PartialError{
		Retry:    []int{-1, 2, 2, 5, 99},
		Rejected: []pipeline.Rejection{{Index: 5, Reason: "both"}, {Index: 7, Reason: "bad"}, {Index: 1000, Reason: "out of range"}},
	}
}

func (o *confusedOutput) Close(context.Context) error { return nil }

// TestPartialErrorToleratesBadIndices: indices out of range are ignored, a
// repeated index counts once, and an event both to retry and rejected is
// rejected, so a buggy output cannot make the runner loop or miscount.
func TestPartialErrorToleratesBadIndices(t *testing.T) {
	out := &confusedOutput{}
	r := newRig(t, rigOptions{workers: 1}, outSpec{"odd", out, settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 10 })})
	in := &pipelinetest.StaticInput{Sources: []string{"s"}, Lines: 10, ChunkLines: 10}
	r.runInput(in)
	r.stop()
	if fmt.Sprint(out.writes) != "[[0 1 2 3 4 5 6 7 8 9] [2]]" {
		t.Fatalf("writes %v; want the batch, then seq 2 alone", out.writes)
	}
	st := &r.runners[0].Out
	if st.Delivered.Load() != 8 || st.Rejected.Load() != 2 || r.stats.Dropped("rejected").Load() != 2 {
		t.Fatalf("delivered %d rejected %d dropped %d", st.Delivered.Load(), st.Rejected.Load(), r.stats.Dropped("rejected").Load())
	}
	checkCommitted(t, in)
}
