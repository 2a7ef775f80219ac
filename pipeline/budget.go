package pipeline

import (
	"context"
	"sync"
)

// Budget caps the bytes of chunk buffers alive at once across the agent
// (agent.memory_limit). Readers charge it before they read; a chunk returns
// its charge when every output has finished with it. When the budget is spent
// readers wait, which is the backpressure that keeps memory flat: the file on
// disk is the buffer.
//
// Waiters are served first come, first served. A reader asks for one chunk
// at a time, so under a full budget the readers take turns: each file gets
// its share, where waking every waiter to race for the freed bytes let the
// quickest goroutines win again and again.
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	queue []*budgetWaiter // FIFO
	// starve is closed while a reader waits for memory, so that outputs
	// holding part-filled batches flush them instead of waiting for their
	// timeout while nothing new can be read.
	starve   chan struct{}
	starving bool
}

type budgetWaiter struct {
	n       int64
	ready   chan struct{} // closed when granted
	granted bool
}

// Starved returns a channel that is closed while some reader waits.
func (b *Budget) Starved() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starve
}

// NewBudget returns a budget of limit bytes; limit <= 0 means unlimited.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, starve: make(chan struct{})}
}

// fits reports whether n bytes may be taken now. A request is always
// granted when nothing is charged, so one chunk larger than the limit
// cannot deadlock.
func (b *Budget) fits(n int64) bool {
	return b.limit <= 0 || b.used == 0 || b.used+n <= b.limit
}

// TryAcquire takes n bytes if they fit now and nobody waits before it, and
// reports whether it did.
func (b *Budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 && b.fits(n) {
		b.used += n
		return true
	}
	return false
}

// Acquire blocks until n bytes fit and every earlier waiter is served, or
// ctx ends.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	b.mu.Lock()
	if len(b.queue) == 0 && b.fits(n) {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.queue = append(b.queue, w)
	if !b.starving {
		b.starving = true
		close(b.starve)
	}
	b.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted { // granted as ctx ended: give it back
		b.used -= n
	} else {
		for i, q := range b.queue {
			if q == w {
				b.queue = append(b.queue[:i], b.queue[i+1:]...)
				break
			}
		}
	}
	b.grant() // the head may have been w, or the bytes w gave back may fit
	return ctx.Err()
}

// grant serves waiters in order while the head fits. Called with mu held.
func (b *Budget) grant() {
	for len(b.queue) > 0 && b.fits(b.queue[0].n) {
		w := b.queue[0]
		b.queue[0] = nil
		b.queue = b.queue[1:]
		b.used += w.n
		w.granted = true
		close(w.ready)
	}
	if len(b.queue) == 0 {
		b.queue = nil
		if b.starving {
			b.starving = false
			b.starve = make(chan struct{})
		}
	}
}

// waiting returns how many acquisitions wait now (for tests).
func (b *Budget) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.queue)
}

// Charge adds n bytes without waiting. It is for memory that already
// exists, such as a chunk's parsed values: counting it makes readers wait
// for it, but it cannot be refused, and a worker that waited here could
// hold the very chunks whose release it waits for.
func (b *Budget) Charge(n int64) {
	b.mu.Lock()
	b.used += n
	b.mu.Unlock()
}

// Release returns n bytes.
func (b *Budget) Release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.grant()
	b.mu.Unlock()
}

// Used returns the bytes charged now.
func (b *Budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Limit returns the configured limit.
func (b *Budget) Limit() int64 { return b.limit }
