package pipeline

import (
	"context"
	"errors"
	"fmt"
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

	// What this output takes of the events routed to it (Route): only
	// those matching when, after its own processors, applied to a view so
	// other outputs see the events unchanged.
	when  *Condition
	procs chain
	win   []Windowed

	dl        *deadLetter            // nil without dead_letter_path
	budget    atomic.Pointer[Budget] // the memory budget of the streams that feed it
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error // set before done is closed

	// Health, for the API: when the current run of failed attempts began
	// (0 while healthy), the last error, and an observer of write latency.
	failingSince atomic.Int64 // unix nanoseconds
	lastErr      atomic.Pointer[lastError]
	observe      atomic.Pointer[func(time.Duration)]

	// Discard: the output was removed from the config while it could not
	// deliver; what it still holds is dropped and counted, not retried.
	discardOnce sync.Once
	discardCh   chan struct{}
}

// Discard makes the runner drop, instead of write, every batch it has not
// delivered yet, counted as dropped with reason output_removed, so the
// sources behind it can commit. A retry wait ends at once; a Write in
// progress ends on its own (its timeout). For an output removed by a live
// reload whose queue cannot drain: the lines are still shipped to every
// other output, and no longer owed to this one.
func (r *Runner) Discard() {
	r.discardOnce.Do(func() { close(r.discardCh) })
}

func (r *Runner) discarding() bool {
	select {
	case <-r.discardCh:
		return true
	default:
		return false
	}
}

type lastError struct {
	msg string
	at  time.Time
}

// ObserveLatency makes the runner report the duration of every Write call
// to f (from the goroutines that write). Set it before Start.
func (r *Runner) ObserveLatency(f func(time.Duration)) { r.observe.Store(&f) }

// FailingSince returns when the current run of failed attempts began, or
// the zero time while the last attempt succeeded.
func (r *Runner) FailingSince() time.Time {
	if ns := r.failingSince.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// LastError returns the text and time of the last failed attempt; the text
// is the output's error, which outputs keep free of secrets.
func (r *Runner) LastError() (msg string, at time.Time) {
	if e := r.lastErr.Load(); e != nil {
		return e.msg, e.at
	}
	return "", time.Time{}
}

// Output returns the output the runner drives, for closing one that was
// built but never started.
func (r *Runner) Output() Output { return r.out }

// Settings returns the output's common settings (queue bounds, for fill).
func (r *Runner) Settings() OutputSettings { return r.set }

func (r *Runner) noteAttempt(start time.Time, err error) {
	if f := r.observe.Load(); f != nil {
		(*f)(time.Since(start))
	}
	if err == nil {
		r.failingSince.Store(0)
		return
	}
	now := time.Now()
	r.failingSince.CompareAndSwap(0, now.UnixNano())
	r.lastErr.Store(&lastError{msg: err.Error(), at: now})
}

// NewRunner wraps an output with its queue and batching.
// log should already name the output (the agent passes the logger it gave
// the output's Build); the runner adds no field of its own for it.
func NewRunner(name string, out Output, set OutputSettings, log *zap.Logger, stats *Stats) *Runner {
	if log == nil {
		log = zap.NewNop()
	}
	if stats == nil {
		stats = &Stats{}
	}
	r := &Runner{
		Name: name, out: out, set: set, log: log, stats: stats,
		q:    NewQueue(set.Queue.MaxEvents, int(set.Queue.MaxBytes), set.Queue.WhenFull == "drop_newest"),
		done: make(chan struct{}), discardCh: make(chan struct{}),
	}
	if set.DeadLetterPath != "" {
		r.dl = &deadLetter{path: set.DeadLetterPath, output: name}
	}
	return r
}

// Route sets what the output takes of the events its inputs send it: only
// those matching when (nil takes all), after procs, which run on a copy of
// each event so that what other outputs see does not change. Events not
// taken count as settled for this output at once. Call it before the
// streams that feed the runner are created.
func (r *Runner) Route(when *Condition, procs []Processor) error {
	if when != nil && !when.compiled {
		if err := when.Compile(); err != nil {
			return fmt.Errorf("output %s: when: %w", r.Name, err)
		}
	}
	r.when = when
	r.procs = newChain(procs, r.stats)
	r.win = windowed(procs)
	return nil
}

// filtered reports whether the runner needs its own view of a chunk.
func (r *Runner) filtered() bool { return r.when != nil || len(r.procs) > 0 }

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
			r.log.Error("closing output failed", zap.Error(err))
			r.closeErr = err
		}
		if r.dl != nil {
			if err := r.dl.close(); err != nil {
				r.log.Error("closing dead-letter file failed", zap.Error(err))
			}
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
	b := new(Batch)
	// With max_in_flight > 1, a full batch is handed to a goroutine of its
	// own and the loop goes on filling the next one. free holds the batches
	// not in flight; taking one is what bounds the batches in flight. The
	// loop owns those goroutines and waits for them before it returns.
	var inflight sync.WaitGroup
	defer inflight.Wait()
	var free chan *Batch
	if n := r.set.MaxInFlight; n > 1 {
		free = make(chan *Batch, n)
		for range n {
			free <- new(Batch)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var deadline <-chan time.Time
	flush := func() {
		if deadline != nil {
			timer.Stop()
			deadline = nil
		}
		if free == nil {
			r.deliver(ctx, b)
			b.reset()
			return
		}
		var next *Batch
		select {
		case next = <-free:
		case <-ctx.Done():
			return // a forced stop: b stays unacknowledged
		}
		inflight.Add(1)
		go func(b *Batch) {
			defer inflight.Done()
			r.deliver(ctx, b)
			b.reset()
			free <- b
		}(b)
		b = next
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
				if n := len(b.parts); n > 0 && b.parts[n-1].c == c {
					// The batch holds part of c; c must not be
					// acknowledged before this batch is settled, even
					// if a later batch holding the rest is settled
					// first. The runner's own reference keeps c alive
					// meanwhile, so the count cannot reach zero here.
					c.ref(1)
					b.acks = append(b.acks, c)
				}
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

// deliver writes b until it is settled (delivered, rejected permanently, or
// retries exhausted) or ctx ends; only a settled batch acknowledges its
// chunks.
func (r *Runner) deliver(ctx context.Context, b *Batch) {
	if b.events > 0 && !r.write(ctx, b) {
		return
	}
	for _, c := range b.acks {
		c.done()
	}
}

// write is deliver's retry loop; it returns false if ctx ended first.
func (r *Runner) write(ctx context.Context, b *Batch) bool {
	start := time.Now()
	backoff := r.set.Retry.Initial.D()
	for attempt := 1; ; attempt++ {
		if r.discarding() {
			n := int64(b.events)
			r.Out.Dropped.Add(n)
			r.stats.Dropped("output_removed").Add(n)
			return true
		}
		t0 := time.Now()
		err := r.out.Write(ctx, b)
		if ctx.Err() == nil {
			r.noteAttempt(t0, err)
		}
		if err == nil {
			r.Out.Delivered.Add(int64(b.events))
			r.Out.Batches.Add(1)
			r.Out.ConsecutiveFails.Store(0)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var pe *PartialError
		if errors.As(err, &pe) {
			if !r.settlePart(b, pe) {
				r.Out.Batches.Add(1)
				r.Out.ConsecutiveFails.Store(0)
				return true
			}
			// Only the events to retry are left in b.
		} else if IsPermanent(err) {
			r.Out.Failures.Add(1)
			r.Out.ConsecutiveFails.Add(1)
			r.reject(b, "rejected", err)
			return true
		}
		r.Out.Failures.Add(1)
		r.Out.ConsecutiveFails.Add(1)
		if me := r.set.Retry.MaxElapsed.D(); me > 0 && time.Since(start) >= me {
			r.reject(b, "retries_exhausted", err)
			return true
		}
		wait := time.Duration(rand.Int64N(int64(backoff) + 1)) // full jitter
		if d, ok := RetryAfter(err); ok {
			wait = d
		}
		backoff = min(2*backoff, r.set.Retry.Max.D())
		r.Out.Retries.Add(1)
		r.log.Warn("output write failed; retrying",
			zap.Int("attempt", attempt), zap.Int("events", b.events), zap.Duration("wait", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.discardCh:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return false
		}
	}
}

// settlePart applies a PartialError to b: the rejected events are
// dead-lettered or counted, the others not to retry are counted delivered,
// and b is narrowed to the events to retry. It reports whether any are left.
// Indices out of range are ignored, and an event both to retry and rejected
// is rejected, so a confused output cannot make the runner loop forever.
func (r *Runner) settlePart(b *Batch, pe *PartialError) bool {
	const (
		delivered = iota
		retry
		reject
	)
	marks := make([]int8, b.events)
	reasons := make(map[int]string, len(pe.Rejected))
	for _, i := range pe.Retry {
		if i >= 0 && i < len(marks) {
			marks[i] = retry
		}
	}
	for _, rj := range pe.Rejected {
		if rj.Index >= 0 && rj.Index < len(marks) {
			marks[rj.Index] = reject
			reasons[rj.Index] = rj.Reason
		}
	}
	var recs []rejected
	want := make([]bool, len(marks))
	left, ok := 0, 0
	i := 0
	for src, ev := range b.All() {
		switch marks[i] {
		case retry:
			want[i] = true
			left++
		case reject:
			recs = append(recs, rejected{src: src, ev: ev, reason: "rejected", err: reasons[i]})
		default:
			ok++
		}
		i++
	}
	r.Out.Delivered.Add(int64(ok))
	if len(recs) > 0 {
		r.lose(recs, "rejected", pe.Err)
	}
	if left == 0 {
		return false
	}
	b.keep(want)
	return true
}

// reject gives up on every event of b.
func (r *Runner) reject(b *Batch, reason string, err error) {
	recs := make([]rejected, 0, b.events)
	for src, ev := range b.All() {
		recs = append(recs, rejected{src: src, ev: ev, reason: reason, err: err.Error()})
	}
	r.lose(recs, reason, err)
}

// lose writes rejected events to the dead-letter file, or, without one or
// when it cannot be written, counts them as lost under reason.
func (r *Runner) lose(recs []rejected, reason string, err error) {
	recs = returnToSource(recs)
	if len(recs) == 0 {
		return
	}
	n := int64(len(recs))
	r.Out.Rejected.Add(n)
	if r.dl != nil {
		dlErr := r.dl.write(recs)
		if dlErr == nil {
			r.Out.DeadLettered.Add(n)
			r.log.Warn("output rejected events; written to the dead-letter file",
				zap.String("reason", reason), zap.Int64("events", n), zap.String("path", r.dl.path), zap.Error(err))
			return
		}
		r.log.Error("dead-letter write failed", zap.Error(dlErr))
	}
	r.stats.Dropped(reason).Add(n)
	r.log.Error("output rejected events; they are counted as lost",
		zap.String("reason", reason), zap.Int64("events", n), zap.Error(err))
}

// returnToSource offers each rejected event to its source's Reject hook
// (a broker input that hands the message back to the broker) and keeps
// the ones it did not take.
func returnToSource(recs []rejected) []rejected {
	kept := recs[:0:0]
	taken := false
	for _, rec := range recs {
		if rec.src != nil && rec.src.Reject != nil && rec.src.Reject(rec.ev) {
			taken = true
			continue
		}
		kept = append(kept, rec)
	}
	if !taken {
		return recs
	}
	return kept
}
