// Package msgchunk packs broker messages into pipeline chunks for the
// consumer inputs (amqp, redis): many messages per chunk, each one event
// whatever newlines it holds (pipeline.Chunk.Ends), with its broker
// metadata (pipeline.Chunk.Meta), and turns the pipeline's committed
// offsets back into the broker positions (delivery tags, stream ids) of
// the messages every output has delivered.
//
// A chunk's End is the number of messages packed so far, so commit(offset)
// names a message count; the Packer keeps, per emitted chunk, the
// positions of its messages until the chunk is committed.
package msgchunk

import (
	"context"
	"sort"
	"sync"
	"unsafe"

	"github.com/tailship/tailship/pipeline"
)

// Packer is used from one goroutine (the consumer loop), except for the
// commit callback, which the pipeline calls from its own.
type Packer[P any] struct {
	em       pipeline.Emitter
	src      *pipeline.Source
	maxMsgs  int
	maxBytes int
	maxLine  int

	c     *pipeline.Chunk
	pos   []P
	count int64 // messages packed: the End of the next chunk

	mu      sync.Mutex
	pending []pending[P]
	ack     func(pos []P)
	done    int64 // messages committed
	changed chan struct{}
}

type pending[P any] struct {
	end int64
	pos []P
	// The chunk's buffer and event ends, so Lookup can tell which message
	// an event of the chunk is while the chunk is in flight.
	base uintptr
	size int
	ends []int
}

// New opens source name on em. ack receives, in order, the positions of
// the messages of each chunk once it is committed; it runs in the
// pipeline's commit callback, so it must not block (hand slow work, like a
// network round trip, to a goroutine of the input).
func New[P any](em pipeline.Emitter, name string, maxMsgs, maxBytes, maxLine int, ack func(pos []P)) *Packer[P] {
	p := &Packer[P]{em: em, maxMsgs: max(maxMsgs, 1), maxBytes: max(maxBytes, 64), maxLine: maxLine, ack: ack,
		changed: make(chan struct{}, 1)}
	p.src = em.NewSource(name, p.commit)
	return p
}

// Source returns the pipeline source.
func (p *Packer[P]) Source() *pipeline.Source { return p.src }

func (p *Packer[P]) commit(off int64) {
	p.mu.Lock()
	var acked []P
	n := 0
	for n < len(p.pending) && p.pending[n].end <= off {
		acked = append(acked, p.pending[n].pos...)
		n++
	}
	p.pending = p.pending[n:]
	p.done = off
	p.mu.Unlock()
	if len(acked) > 0 && p.ack != nil {
		p.ack(acked)
	}
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Add packs one message; it emits the chunk first when the message does
// not fit. body is copied.
func (p *Packer[P]) Add(ctx context.Context, body []byte, meta []pipeline.Field, pos P) error {
	truncated := false
	if p.maxLine > 0 && len(body) > p.maxLine {
		body, truncated = body[:p.maxLine], true
	}
	if p.c != nil && (len(p.c.Buf)+len(body)+1 > cap(p.c.Buf) || len(p.pos) >= p.maxMsgs) {
		if err := p.Flush(ctx); err != nil {
			return err
		}
	}
	if p.c == nil {
		c, err := p.em.NewChunk(ctx, p.src, max(p.maxBytes, len(body)+1))
		if err != nil {
			return err
		}
		p.c = c
	}
	// Event k is Buf[Ends[k-1]:Ends[k]]: the message as it is, no separator.
	p.c.Buf = append(p.c.Buf, body...)
	p.c.Ends = append(p.c.Ends, len(p.c.Buf))
	var fields []pipeline.Field
	if meta != nil {
		fields = []pipeline.Field{{Key: "metadata", Value: meta}}
	}
	p.c.Meta = append(p.c.Meta, fields)
	if truncated {
		p.c.Truncated++
	}
	p.pos = append(p.pos, pos)
	p.count++
	return nil
}

// Lookup returns the position of the message an event of an emitted,
// not yet committed chunk was made from, found by where its bytes lie in
// the chunk's buffer. It fails for an event whose Raw a processor replaced.
func (p *Packer[P]) Lookup(raw []byte) (P, bool) {
	var zero P
	addr := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.pending {
		if addr < pc.base || addr >= pc.base+uintptr(pc.size) {
			continue
		}
		off := int(addr - pc.base)
		// Event k spans [ends[k-1], ends[k]): its own end is the first
		// one past its start.
		i := sort.SearchInts(pc.ends, off+1)
		if i < len(pc.pos) {
			return pc.pos[i], true
		}
	}
	return zero, false
}

// Buffered returns the number of messages packed but not emitted.
func (p *Packer[P]) Buffered() int { return len(p.pos) }

// Flush emits the chunk being packed, if any.
func (p *Packer[P]) Flush(ctx context.Context) error {
	if p.c == nil {
		return nil
	}
	c := p.c
	c.End = p.count
	p.mu.Lock()
	p.pending = append(p.pending, pending[P]{end: c.End, pos: p.pos,
		base: uintptr(unsafe.Pointer(unsafe.SliceData(c.Buf))), size: len(c.Buf), ends: c.Ends})
	p.mu.Unlock()
	p.c, p.pos = nil, nil
	return p.em.Emit(ctx, c)
}

// Discard releases the chunk being packed without emitting it (its
// messages stay unacknowledged in the broker).
func (p *Packer[P]) Discard() {
	if p.c != nil {
		p.em.Release(p.c)
		p.c, p.pos = nil, nil
	}
}

// Packed returns the messages packed so far and how many of them are
// committed.
func (p *Packer[P]) Packed() (packed, committed int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count, p.done
}

// Changed is signalled after each commit.
func (p *Packer[P]) Changed() <-chan struct{} { return p.changed }

// WaitCommitted blocks until every emitted message is committed, or ctx
// ends.
func (p *Packer[P]) WaitCommitted(ctx context.Context) error {
	for {
		p.mu.Lock()
		all := p.done >= p.count-int64(len(p.pos))
		p.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-p.changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
