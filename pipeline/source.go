package pipeline

import (
	"sync"
	"sync/atomic"
)

// Source is one ordered stream of chunks, usually one file. It numbers the
// chunks an input emits, restores that order after the worker pool, and turns
// acknowledgements, which may arrive out of order, into a committed offset:
// the end of the longest prefix of chunks that every output has finished.
type Source struct {
	Name   string  // path or other label, for logs and metrics
	Fields []Field // static fields added to every event of this source
	// Reject, when set, is offered every event an output rejects
	// permanently, before the dead-letter file: returning true means the
	// source took it back (a broker input that requeues the message), so
	// it is neither dead-lettered nor counted as lost. It runs on the
	// output's goroutine and must not block. Set it before the first Emit.
	Reject func(ev *Event) bool

	stream *Stream
	commit func(offset int64)
	serial atomic.Uint64 // 0 until Serial is first called

	// reorder state
	rmu        sync.Mutex
	next       uint64 // next sequence number: Emit and Flush number chunks
	rnext      uint64
	rwait      map[uint64]*Chunk
	delivering bool
	ordered    Ordered // the parser's ordered stage, created on first delivery

	// ack state
	amu       sync.Mutex
	anext     uint64
	acked     map[uint64]int64
	committed int64
	inflight  atomic.Int64
}

// Committed returns the highest committed offset.
func (s *Source) Committed() int64 {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.committed
}

// InFlight returns the number of emitted chunks not yet acknowledged.
func (s *Source) InFlight() int64 { return s.inflight.Load() }

// ack records that chunk seq, ending at offset end, is finished everywhere,
// and commits every contiguous acknowledged chunk. commit is called under the
// lock so the callback sees offsets in increasing order.
func (s *Source) ack(seq uint64, end int64) {
	// Deferred first, so it runs after the unlock and after commit: whoever
	// waits for InFlight to reach zero sees the final checkpoint recorded.
	defer s.inflight.Add(-1)
	if s.stream != nil {
		defer s.stream.inflight.Add(-1)
	}
	s.amu.Lock()
	defer s.amu.Unlock()
	if seq != s.anext {
		if s.acked == nil {
			s.acked = make(map[uint64]int64)
		}
		s.acked[seq] = end
		return
	}
	s.anext++
	s.committed = end
	for len(s.acked) > 0 {
		e, ok := s.acked[s.anext]
		if !ok {
			break
		}
		delete(s.acked, s.anext)
		s.anext++
		s.committed = e
	}
	if s.commit != nil {
		s.commit(s.committed)
	}
}

// reorder takes a processed chunk from any worker and hands chunks to fan-out
// in sequence order. The worker that finds its chunk next in line delivers it
// and every waiting successor; others park their chunk and return, so no
// worker is tied to a source.
func (s *Source) reorder(c *Chunk, deliver func(*Chunk)) {
	s.rmu.Lock()
	if c.Seq != s.rnext || s.delivering {
		if s.rwait == nil {
			s.rwait = make(map[uint64]*Chunk)
		}
		s.rwait[c.Seq] = c
		s.rmu.Unlock()
		return
	}
	s.delivering = true
	s.rmu.Unlock()
	for {
		deliver(c)
		s.rmu.Lock()
		s.rnext++
		next, ok := s.rwait[s.rnext]
		if !ok {
			s.delivering = false
			s.rmu.Unlock()
			return
		}
		delete(s.rwait, s.rnext)
		s.rmu.Unlock()
		c = next
	}
}

// sourceSerials numbers sources in the order they are first asked for one.
var sourceSerials atomic.Uint64

// Serial returns a number no other source of this process has.
func (s *Source) Serial() uint64 {
	if n := s.serial.Load(); n != 0 {
		return n
	}
	s.serial.CompareAndSwap(0, sourceSerials.Add(1))
	return s.serial.Load()
}
