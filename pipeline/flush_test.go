package pipeline_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// carryStage is an Ordered stage that keeps the last line of every chunk
// back (as a multiline stage keeps an open record) and ships it at the
// head of the next chunk, or on a chunk of its own when a Flush comes
// first. The chunk that keeps a line back lowers its End to the line's
// start and Keeps its memory until the line is delivered.
type carryStage struct {
	mu      sync.Mutex
	kept    *pipeline.Event
	keptEnd int64 // End of the chunk the kept line came from, as read
	release func()
	lastEnd int64
}

func (s *carryStage) Process(c *pipeline.Chunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kept != nil {
		c.Events = slices.Insert(c.Events, 0, *s.kept)
		c.OnDelivered(s.release)
		s.kept = nil
	}
	last := &c.Events[len(c.Events)-1]
	ev := *last
	s.kept, s.keptEnd = &ev, c.End
	last.Drop = true
	s.release = c.Keep()
	c.End -= int64(len(ev.Raw)) + 1
	s.lastEnd = c.End
}

func (s *carryStage) flush(c *pipeline.Chunk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.End = s.lastEnd
	if s.kept != nil {
		c.Events = append(c.Events, *s.kept)
		c.OnDelivered(s.release)
		s.kept = nil
		c.End = s.keptEnd
	}
	s.lastEnd = c.End
}

// TestFlushInOrder: chunks of one source run through 4 workers while
// another goroutine flushes the stage's kept line at random moments. Every
// line arrives once and in order whichever comes first, the checkpoints
// only grow and never pass a line not yet delivered, and the source ends
// committed to its end with nothing in flight.
func TestFlushInOrder(t *testing.T) {
	out := &pipelinetest.Capture{}
	r := newRig(t, rigOptions{workers: 4}, outSpec{"cap", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 7
		s.Batch.Timeout = config.Dur(5 * time.Millisecond)
	})})
	stage := &carryStage{}
	r.stream.SetParser(pipeline.ParserSpec{Name: "carry", NewOrdered: func(*pipeline.Stats) pipeline.Ordered { return stage }})
	var mu sync.Mutex
	var commits []int64
	var bad []string
	lineEnd := map[int64]int{} // offset just past line i -> i
	src := r.stream.NewSource("s", func(o int64) {
		mu.Lock()
		defer mu.Unlock()
		commits = append(commits, o)
		if n, ok := lineEnd[o]; ok && out.Len() < n+1 {
			bad = append(bad, fmt.Sprintf("checkpoint %d past line %d with %d lines delivered", o, n, out.Len()))
		}
	})
	var lines []string
	var off int64
	for i := range 3000 {
		l := fmt.Sprintf("line %06d", i)
		lines = append(lines, l)
		off += int64(len(l)) + 1
		mu.Lock()
		lineEnd[off] = i
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(100+k*37%400) * time.Microsecond):
			}
			src.Flush(stage.flush)
		}
	}()
	var end int64
	for i := 0; i < len(lines); {
		n := min(1+i%13, len(lines)-i)
		var buf []byte
		for _, l := range lines[i : i+n] {
			buf = append(append(buf, l...), '\n')
		}
		i += n
		c, err := r.stream.NewChunk(context.Background(), src, len(buf))
		if err != nil {
			t.Fatal(err)
		}
		c.Buf = append(c.Buf, buf...)
		end += int64(len(buf))
		c.End = end
		if err := r.stream.Emit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			time.Sleep(time.Millisecond) // let flushes win sometimes
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for src.Committed() != end {
		if time.Now().After(deadline) {
			t.Fatalf("committed %d, want %d: the last line was not flushed", src.Committed(), end)
		}
		time.Sleep(time.Millisecond) // the flusher ships the last line
	}
	close(stop)
	wg.Wait()
	r.stop()
	if got := out.Lines(); !slices.Equal(got, lines) {
		for i := range min(len(got), len(lines)) {
			if got[i] != lines[i] {
				t.Fatalf("line %d: got %q, want %q (%d lines)", i, got[i], lines[i], len(got))
			}
		}
		t.Fatalf("%d lines, want %d", len(got), len(lines))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatal(bad[0])
	}
	if !slices.IsSorted(commits) || src.Committed() != end {
		t.Fatalf("commits not increasing or short of %d: last %d", end, src.Committed())
	}
	if n := src.InFlight(); n != 0 {
		t.Errorf("%d chunks in flight", n)
	}
}
