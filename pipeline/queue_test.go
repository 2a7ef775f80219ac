package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"
)

// chunkOf builds a chunk that weighs events events and bytes bytes.
func chunkOf(events, bytes int) *Chunk {
	return &Chunk{Events: make([]Event, events), Buf: make([]byte, bytes)}
}

type pushResult struct {
	dropped bool
	err     error
}

func pushAsync(ctx context.Context, q *Queue, c *Chunk) <-chan pushResult {
	ch := make(chan pushResult, 1)
	go func() {
		d, err := q.Push(ctx, c)
		ch <- pushResult{d, err}
	}()
	return ch
}

func mustPush(t *testing.T, q *Queue, c *Chunk) {
	t.Helper()
	dropped, err := q.Push(context.Background(), c)
	if dropped || err != nil {
		t.Fatalf("Push = %v, %v; want admitted", dropped, err)
	}
}

func mustPop(t *testing.T, q *Queue) *Chunk {
	t.Helper()
	c, closed := q.Pop(context.Background(), nil, nil)
	if c == nil || closed {
		t.Fatalf("Pop = %v, %v; want a chunk", c, closed)
	}
	return c
}

func wantDepth(t *testing.T, q *Queue, events, bytes int) {
	t.Helper()
	if e, b := q.Depth(); e != events || b != bytes {
		t.Fatalf("Depth = %d events, %d bytes; want %d, %d", e, b, events, bytes)
	}
}

func TestQueueBlocksWhenFull(t *testing.T) {
	for _, tc := range []struct {
		name                string
		maxEvents, maxBytes int
		fill                []*Chunk // fills the queue exactly to one bound
		next                *Chunk   // fits the other bound, not this one
	}{
		{"events", 10, 1 << 20, []*Chunk{chunkOf(6, 10), chunkOf(4, 10)}, chunkOf(1, 1)},
		{"bytes", 1000, 100, []*Chunk{chunkOf(1, 60), chunkOf(1, 40)}, chunkOf(1, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := NewQueue(tc.maxEvents, tc.maxBytes, false)
			var events, bytes int
			for _, c := range tc.fill {
				mustPush(t, q, c)
				events, bytes = events+len(c.Events), bytes+len(c.Buf)
			}
			wantDepth(t, q, events, bytes)

			res := pushAsync(context.Background(), q, tc.next)
			stays(t, res, "Push into a full queue")
			wantDepth(t, q, events, bytes)

			first := mustPop(t, q)
			if first != tc.fill[0] {
				t.Fatalf("Pop returned %p, want the oldest chunk %p", first, tc.fill[0])
			}
			r := within(t, res, "Push after Pop made room")
			if r.dropped || r.err != nil {
				t.Fatalf("Push = %v, %v; want admitted", r.dropped, r.err)
			}
			wantDepth(t, q, events-len(first.Events)+len(tc.next.Events), bytes-len(first.Buf)+len(tc.next.Buf))
			if mustPop(t, q) != tc.fill[1] || mustPop(t, q) != tc.next {
				t.Fatal("queue is not FIFO")
			}
		})
	}
}

func TestQueueDropNewest(t *testing.T) {
	q := NewQueue(10, 100, true)
	mustPush(t, q, chunkOf(10, 50))
	res := pushAsync(context.Background(), q, chunkOf(1, 1))
	r := within(t, res, "drop_newest Push into a full queue")
	if !r.dropped || r.err != nil {
		t.Fatalf("Push = %v, %v; want dropped=true, nil", r.dropped, r.err)
	}
	wantDepth(t, q, 10, 50)

	// Byte bound too.
	q = NewQueue(100, 100, true)
	mustPush(t, q, chunkOf(1, 90))
	if dropped, err := q.Push(context.Background(), chunkOf(1, 11)); !dropped || err != nil {
		t.Fatalf("Push over the byte bound = %v, %v; want dropped", dropped, err)
	}
	// Exactly at the bound is admitted.
	if dropped, err := q.Push(context.Background(), chunkOf(1, 10)); dropped || err != nil {
		t.Fatalf("Push up to the byte bound = %v, %v; want admitted", dropped, err)
	}
	wantDepth(t, q, 2, 100)
}

func TestQueueOversizeChunkIntoEmptyQueue(t *testing.T) {
	for _, drop := range []bool{false, true} {
		q := NewQueue(10, 100, drop)
		big := chunkOf(50, 1000)
		res := pushAsync(context.Background(), q, big)
		r := within(t, res, "Push of an oversize chunk into an empty queue")
		if r.dropped || r.err != nil {
			t.Fatalf("drop=%v: Push = %v, %v; want admitted", drop, r.dropped, r.err)
		}
		wantDepth(t, q, 50, 1000)
		// Nothing else fits behind it.
		ctx, cancel := context.WithTimeout(context.Background(), settle)
		dropped, err := q.Push(ctx, chunkOf(1, 1))
		cancel()
		if drop && !dropped {
			t.Fatalf("drop_newest Push behind an oversize chunk was not dropped")
		}
		if !drop && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("block Push behind an oversize chunk = %v, %v; want it to block", dropped, err)
		}
		if mustPop(t, q) != big {
			t.Fatal("Pop did not return the oversize chunk")
		}
		wantDepth(t, q, 0, 0)
	}
}

func TestQueuePopDeadline(t *testing.T) {
	q := NewQueue(10, 100, false)
	start := time.Now()
	c, closed := q.Pop(context.Background(), time.After(20*time.Millisecond), nil)
	if c != nil || closed {
		t.Fatalf("Pop = %v, %v; want nil, false on deadline", c, closed)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Pop returned after %v, before its deadline", d)
	}
	// A chunk that is there is returned even if the deadline already fired.
	fired := make(chan time.Time, 1)
	fired <- time.Now()
	want := chunkOf(1, 1)
	mustPush(t, q, want)
	if c, closed := q.Pop(context.Background(), fired, nil); c != want || closed {
		t.Fatalf("Pop = %v, %v; want the queued chunk", c, closed)
	}
}

func TestQueueCloseDrains(t *testing.T) {
	q := NewQueue(10, 100, false)
	in := []*Chunk{chunkOf(1, 1), chunkOf(2, 2), chunkOf(3, 3)}
	for _, c := range in {
		mustPush(t, q, c)
	}
	q.Close()
	for i, want := range in {
		c, closed := q.Pop(context.Background(), nil, nil)
		if c != want || closed {
			t.Fatalf("Pop %d after Close = %v, %v; want chunk %d", i, c, closed, i)
		}
	}
	c, closed := q.Pop(context.Background(), nil, nil)
	if c != nil || !closed {
		t.Fatalf("Pop of a closed, empty queue = %v, %v; want nil, true", c, closed)
	}
	wantDepth(t, q, 0, 0)
}

func TestQueueCloseWakesPop(t *testing.T) {
	q := NewQueue(10, 100, false)
	type popResult struct {
		c      *Chunk
		closed bool
	}
	res := make(chan popResult, 1)
	go func() {
		c, closed := q.Pop(context.Background(), nil, nil)
		res <- popResult{c, closed}
	}()
	stays(t, res, "Pop of an empty queue")
	q.Close()
	r := within(t, res, "Pop after Close")
	if r.c != nil || !r.closed {
		t.Fatalf("Pop = %v, %v; want nil, true", r.c, r.closed)
	}
}

func TestQueueContextCancel(t *testing.T) {
	q := NewQueue(1, 100, false)
	mustPush(t, q, chunkOf(1, 1))
	ctx, cancel := context.WithCancel(context.Background())
	res := pushAsync(ctx, q, chunkOf(1, 1))
	stays(t, res, "Push into a full queue")
	cancel()
	r := within(t, res, "Push after ctx cancel")
	if r.dropped || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Push = %v, %v; want false, context.Canceled", r.dropped, r.err)
	}
	wantDepth(t, q, 1, 1)

	// Pop on an empty queue ends with ctx as well.
	mustPop(t, q)
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan bool, 1)
	go func() {
		c, closed := q.Pop(ctx, nil, nil)
		done <- c == nil && closed
	}()
	stays(t, done, "Pop of an empty queue")
	cancel()
	if !within(t, done, "Pop after ctx cancel") {
		t.Fatal("Pop after ctx cancel did not return nil, true")
	}
}

// TestQueueFIFOAcrossCompaction interleaves pushes and pops so that the
// head index and the compaction of the backing slice are exercised.
func TestQueueFIFOAcrossCompaction(t *testing.T) {
	q := NewQueue(1000, 1<<20, false)
	var want []*Chunk
	pushed := 0
	for round := range 200 {
		for range round%7 + 1 {
			c := chunkOf(1, pushed%5)
			pushed++
			mustPush(t, q, c)
			want = append(want, c)
		}
		for range round%5 + 1 {
			if len(want) == 0 {
				break
			}
			if c := mustPop(t, q); c != want[0] {
				t.Fatalf("round %d: out of order", round)
			}
			want = want[1:]
		}
	}
	q.Close()
	for len(want) > 0 {
		if c := mustPop(t, q); c != want[0] {
			t.Fatal("out of order while draining")
		}
		want = want[1:]
	}
	wantDepth(t, q, 0, 0)
}

// TestQueueConcurrent has several producers push through a small queue to
// one consumer; every chunk arrives once and the bounds hold throughout.
func TestQueueConcurrent(t *testing.T) {
	const producers, per = 8, 500
	q := NewQueue(16, 64, false)
	done := make(chan struct{})
	for p := range producers {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range per {
				c := chunkOf(1+i%4, 1+(p+i)%8)
				c.Seq = uint64(p*per + i)
				if _, err := q.Push(context.Background(), c); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	go func() {
		for range producers {
			<-done
		}
		q.Close()
	}()
	seen := make([]bool, producers*per)
	lastOf := make([]int, producers)
	for i := range lastOf {
		lastOf[i] = -1
	}
	for {
		if e, b := q.Depth(); e > 16 || b > 64 {
			t.Fatalf("depth %d events, %d bytes beyond the bounds", e, b)
		}
		c, closed := q.Pop(context.Background(), nil, nil)
		if closed {
			break
		}
		n := int(c.Seq)
		if seen[n] {
			t.Fatalf("chunk %d popped twice", n)
		}
		seen[n] = true
		p, i := n/per, n%per
		if i <= lastOf[p] {
			t.Fatalf("producer %d: chunk %d after %d", p, i, lastOf[p])
		}
		lastOf[p] = i
	}
	for n, ok := range seen {
		if !ok {
			t.Fatalf("chunk %d never popped", n)
		}
	}
}
