package pipeline

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Runner drives one output: it owns the output's bounded queue, closes
// batches on count, bytes or time, writes them with retries, and
// acknowledges the chunks a delivered batch completes.
type Runner struct {
	Name  string
	out   Output
	set   OutputSettings
	q     *Queue
	log   *zap.Logger
	stats *Stats
	Out   OutputStats

	budget    atomic.Pointer[Budget] // the memory budget of the streams that feed it
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error // set before done is closed
}

// NewRunner wraps an output with its queue and batching.
func NewRunner(name string, out Output, set OutputSettings, log *zap.Logger, stats *Stats) *Runner {
	if log == nil {
		log = zap.NewNop()
	}
	if stats == nil {
		stats = &Stats{}
	}
	return &Runner{
		Name: name, out: out, set: set, log: log, stats: stats,
		q:    NewQueue(set.Queue.MaxEvents, int(set.Queue.MaxBytes), set.Queue.WhenFull == "drop_newest"),
		done: make(chan struct{}),
	}
}

// Queue returns the runner's queue, for depth metrics.
func (r *Runner) Queue() *Queue { return r.q }

func (r *Runner) push(ctx context.Context, c *Chunk) {
	if len(c.Events) == 0 {
		c.done()
		return
	}
	dropped, err := r.q.Push(ctx, c)
	if dropped {
		n := int64(countLive(c))
		r.Out.Dropped.Add(n)
		r.stats.Dropped("queue_full").Add(n)
		c.done()
	}
	_ = err // only on a forced stop: the chunk stays unacknowledged
}

func countLive(c *Chunk) int {
	n := 0
	for i := range c.Events {
		if !c.Events[i].Drop {
			n++
		}
	}
	return n
}

// Start runs the batch loop until the queue is closed and drained (Stop), or
// abort ends (a forced stop: undelivered chunks stay unacknowledged). When
// the loop ends, the runner closes the output: only then is no Write running.
func (r *Runner) Start(abort context.Context) {
	go func() {
		defer close(r.done)
		r.loop(abort)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.out.Close(ctx); err != nil {
			r.log.Error("closing output failed", zap.String("output", r.Name), zap.Error(err))
			r.closeErr = err
		}
	}()
}

// Stop closes the queue and waits until every queued event has been
// delivered and the output closed, or ctx ends. After ctx ends, the caller
// can cancel the abort context given to Start and call Stop again.
func (r *Runner) Stop(ctx context.Context) error {
	r.closeOnce.Do(r.q.Close)
	select {
	case <-r.done:
		return r.closeErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Runner) loop(ctx context.Context) {
	var b Batch
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var deadline <-chan time.Time
	flush := func() {
		if deadline != nil {
			timer.Stop()
			deadline = nil
		}
		r.deliver(ctx, &b)
		b.reset()
	}
	maxEvents, maxBytes := r.set.Batch.MaxEvents, int(r.set.Batch.MaxBytes)
	for {
		var starved <-chan struct{}
		if deadline != nil {
			if bud := r.budget.Load(); bud != nil {
				starved = bud.Starved()
			}
		}
		c, closed := r.q.Pop(ctx, deadline, starved)
		if c == nil {
			if ctx.Err() != nil {
				return
			}
			if b.events > 0 || len(b.acks) > 0 {
				flush()
			}
			if closed {
				return
			}
			continue
		}
		for i := range c.Events {
			ev := &c.Events[i]
			if ev.Drop {
				continue
			}
			if b.events > 0 && (b.events >= maxEvents || b.bytes+len(ev.Raw)+1 > maxBytes) {
				flush()
				if ctx.Err() != nil {
					return
				}
			}
			if b.events == 0 {
				timer.Reset(r.set.Batch.Timeout.D())
				deadline = timer.C
			}
			b.add(c, i)
		}
		b.acks = append(b.acks, c)
		// A chunk whose events were all filtered out is acknowledged at
		// once rather than waiting for a batch that may never come.
		if b.events == 0 || b.events >= maxEvents || b.bytes >= maxBytes {
			flush()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// deliver writes b until it is delivered, rejected permanently, retries are
// exhausted, or ctx ends. Only the first three acknowledge its chunks.
func (r *Runner) deliver(ctx context.Context, b *Batch) {
	if b.events > 0 {
		start := time.Now()
		backoff := r.set.Retry.Initial.D()
		for attempt := 1; ; attempt++ {
			err := r.out.Write(ctx, b)
			if err == nil {
				r.Out.Delivered.Add(int64(b.events))
				r.Out.Batches.Add(1)
				r.Out.ConsecutiveFails.Store(0)
				break
			}
			if ctx.Err() != nil {
				return
			}
			r.Out.Failures.Add(1)
			r.Out.ConsecutiveFails.Add(1)
			if IsPermanent(err) {
				r.reject(b, "rejected", err)
				break
			}
			if me := r.set.Retry.MaxElapsed.D(); me > 0 && time.Since(start) >= me {
				r.reject(b, "retries_exhausted", err)
				break
			}
			wait := time.Duration(rand.Int64N(int64(backoff) + 1)) // full jitter
			if d, ok := RetryAfter(err); ok {
				wait = d
			}
			backoff = min(2*backoff, r.set.Retry.Max.D())
			r.Out.Retries.Add(1)
			r.log.Warn("output write failed; retrying", zap.String("output", r.Name),
				zap.Int("attempt", attempt), zap.Duration("wait", wait), zap.Error(err))
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
	for _, c := range b.acks {
		c.done()
	}
}

func (r *Runner) reject(b *Batch, reason string, err error) {
	n := int64(b.events)
	r.Out.Rejected.Add(n)
	r.stats.Dropped(reason).Add(n)
	r.log.Error("output rejected a batch; its events are counted as lost", zap.String("output", r.Name),
		zap.String("reason", reason), zap.Int64("events", n), zap.Error(err))
}
