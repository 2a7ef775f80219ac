package pipeline

import (
	"context"
	"sync"
	"time"
)

// Queue is an output's bounded FIFO of chunks, bounded both in events and in
// bytes. Many workers push; one runner pops. A chunk is always admitted into
// an empty queue so that a chunk larger than the bounds cannot wedge it.
type Queue struct {
	maxEvents, maxBytes int
	dropWhenFull        bool

	mu       sync.Mutex
	items    []*Chunk
	head     int
	events   int
	bytes    int
	closed   bool
	notEmpty chan struct{} // closed and replaced on push/close
	notFull  chan struct{} // closed and replaced on pop
}

// NewQueue returns a queue; dropWhenFull selects when_full = "drop_newest".
func NewQueue(maxEvents, maxBytes int, dropWhenFull bool) *Queue {
	return &Queue{
		maxEvents: maxEvents, maxBytes: maxBytes, dropWhenFull: dropWhenFull,
		notEmpty: make(chan struct{}), notFull: make(chan struct{}),
	}
}

func (q *Queue) fits(c *Chunk) bool {
	if q.len() == 0 {
		return true
	}
	return q.events+len(c.Events) <= q.maxEvents && q.bytes+c.bytes() <= q.maxBytes
}

func (q *Queue) len() int { return len(q.items) - q.head }

// Push adds c, blocking while the queue is full (or returning dropped=true
// at once under the drop policy). It fails only when ctx ends.
func (q *Queue) Push(ctx context.Context, c *Chunk) (dropped bool, err error) {
	q.mu.Lock()
	for !q.fits(c) {
		if q.dropWhenFull {
			q.mu.Unlock()
			return true, nil
		}
		wait := q.notFull
		q.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		q.mu.Lock()
	}
	if q.head > 0 && q.head*2 >= len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, c)
	q.events += len(c.Events)
	q.bytes += c.bytes()
	close(q.notEmpty)
	q.notEmpty = make(chan struct{})
	q.mu.Unlock()
	return false, nil
}

// Pop returns the oldest chunk. It waits until one arrives, the deadline
// channel fires or the starved channel is closed (nil, false), or the queue
// is closed and empty (nil, true).
func (q *Queue) Pop(ctx context.Context, deadline <-chan time.Time, starved <-chan struct{}) (c *Chunk, closed bool) {
	q.mu.Lock()
	for q.len() == 0 {
		if q.closed {
			q.mu.Unlock()
			return nil, true
		}
		wait := q.notEmpty
		q.mu.Unlock()
		select {
		case <-wait:
		case <-deadline:
			return nil, false
		case <-starved:
			return nil, false
		case <-ctx.Done():
			return nil, true
		}
		q.mu.Lock()
	}
	c = q.items[q.head]
	q.items[q.head] = nil
	q.head++
	q.events -= len(c.Events)
	q.bytes -= c.bytes()
	close(q.notFull)
	q.notFull = make(chan struct{})
	q.mu.Unlock()
	return c, false
}

// Close lets Pop report closed once the queue is empty. Push must not be
// called after Close.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	close(q.notEmpty)
	q.notEmpty = make(chan struct{})
	q.mu.Unlock()
}

// Depth returns the events and bytes queued now.
func (q *Queue) Depth() (events, bytes int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.events, q.bytes
}
