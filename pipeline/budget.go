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
type Budget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	wake  chan struct{} // closed and replaced whenever memory is returned
	// starve is closed while a reader waits for memory, so that outputs
	// holding part-filled batches flush them instead of waiting for their
	// timeout while nothing new can be read.
	starve   chan struct{}
	starving bool
}

// Starved returns a channel that is closed while some reader waits.
func (b *Budget) Starved() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.starve
}

// NewBudget returns a budget of limit bytes; limit <= 0 means unlimited.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, wake: make(chan struct{}), starve: make(chan struct{})}
}

// TryAcquire takes n bytes if they fit now (as Acquire would at once) and
// reports whether it did.
func (b *Budget) TryAcquire(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.limit <= 0 || b.used == 0 || b.used+n <= b.limit {
		b.used += n
		return true
	}
	return false
}

// Acquire blocks until n bytes fit, or ctx ends. A request is always granted
// when nothing is charged, so one chunk larger than the limit cannot deadlock.
func (b *Budget) Acquire(ctx context.Context, n int64) error {
	for {
		b.mu.Lock()
		if b.limit <= 0 || b.used == 0 || b.used+n <= b.limit {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		wake := b.wake
		if !b.starving {
			b.starving = true
			close(b.starve)
		}
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
	close(b.wake)
	b.wake = make(chan struct{})
	if b.starving {
		b.starving = false
		b.starve = make(chan struct{})
	}
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
