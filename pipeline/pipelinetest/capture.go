// Package pipelinetest provides fakes for tests of the pipeline and of
// plugins: a capturing output (optionally flaky, slow or blocked), a discarding
// output for benchmarks, and static inputs that emit sequence-numbered lines
// through a pipeline.Emitter and record the offsets the pipeline commits.
package pipelinetest

import (
	"context"
	"sync"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// Capture is a pipeline.Output that records, in order, the Raw bytes (or the
// Render) of every event of every batch it accepted. The zero value is ready to use; set the
// optional fields before the output is first written to.
type Capture struct {
	// Fail, when set, is called on every attempt after Block and Delay. A
	// non-nil result is returned from Write and the batch is not recorded.
	// attempt counts the attempts at the current batch from 1; it starts
	// over after a successful write or a Permanent error (a batch the runner
	// gives up on after retry.max_elapsed is invisible to an output, so the
	// count goes on into the next batch in that case).
	Fail func(attempt int, b *pipeline.Batch) error
	// Block, when set, stalls every Write until it is closed or ctx ends
	// (then Write returns ctx.Err()).
	Block chan struct{}
	// Delay, when set, is slept (ctx-aware) by every Write: a slow sink.
	Delay time.Duration
	// Render, when set, makes the recorded string of an event (for
	// example its JSON encoding, to see parsed fields) instead of Raw.
	Render func(src *pipeline.Source, ev *pipeline.Event) string

	mu      sync.Mutex
	attempt int
	writes  int
	lines   []string
	sizes   []int
	closed  bool
}

var _ pipeline.Output = (*Capture)(nil)

// Write implements pipeline.Output.
func (c *Capture) Write(ctx context.Context, b *pipeline.Batch) error {
	c.mu.Lock()
	c.writes++
	c.attempt++
	attempt := c.attempt
	c.mu.Unlock()

	if c.Block != nil {
		select {
		case <-c.Block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.Delay > 0 {
		t := time.NewTimer(c.Delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if c.Fail != nil {
		if err := c.Fail(attempt, b); err != nil {
			if pipeline.IsPermanent(err) {
				c.mu.Lock()
				c.attempt = 0
				c.mu.Unlock()
			}
			return err
		}
	}
	// Copy before returning: the event bytes belong to the pipeline's
	// buffers, which are reused once the batch is acknowledged.
	got := make([]string, 0, b.Len())
	for src, ev := range b.All() {
		if c.Render != nil {
			got = append(got, c.Render(src, ev))
		} else {
			got = append(got, string(ev.Raw))
		}
	}
	c.mu.Lock()
	c.attempt = 0
	c.lines = append(c.lines, got...)
	c.sizes = append(c.sizes, len(got))
	c.mu.Unlock()
	return nil
}

// Close implements pipeline.Output.
func (c *Capture) Close(context.Context) error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

// Lines returns a copy of the recorded lines, in delivery order.
func (c *Capture) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Len returns the number of recorded lines.
func (c *Capture) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lines)
}

// Batches returns the number of batches accepted.
func (c *Capture) Batches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sizes)
}

// BatchSizes returns the number of events of every accepted batch, in order.
func (c *Capture) BatchSizes() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.sizes...)
}

// Writes returns the number of Write calls so far, failed, blocked and
// in progress ones included.
func (c *Capture) Writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// Closed reports whether Close was called.
func (c *Capture) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Discard is a pipeline.Output that accepts every batch and keeps only
// counts; for benchmarks. It walks the batch as an encoder would.
type Discard struct {
	mu      sync.Mutex
	events  int64
	bytes   int64
	batches int64
}

var _ pipeline.Output = (*Discard)(nil)

// Write implements pipeline.Output.
func (d *Discard) Write(_ context.Context, b *pipeline.Batch) error {
	var n, sz int64
	for _, ev := range b.All() {
		n++
		sz += int64(len(ev.Raw)) + 1
	}
	d.mu.Lock()
	d.events += n
	d.bytes += sz
	d.batches++
	d.mu.Unlock()
	return nil
}

// Close implements pipeline.Output.
func (d *Discard) Close(context.Context) error { return nil }

// Counts returns the events, bytes (newlines included) and batches accepted.
func (d *Discard) Counts() (events, bytes, batches int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.events, d.bytes, d.batches
}
