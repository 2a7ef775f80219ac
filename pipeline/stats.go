package pipeline

import (
	"sync"
	"sync/atomic"
)

// Stats are the agent-wide counters the pipeline and plugins update. They are
// plain atomics so the hot path pays one add per chunk; the API layer exposes
// them.
type Stats struct {
	InputLines     atomic.Int64
	InputBytes     atomic.Int64
	LinesTruncated atomic.Int64
	// InvalidUTF8Lines counts lines with bytes that are not UTF-8, passed
	// on or replaced as the input's invalid_utf8 says.
	InvalidUTF8Lines atomic.Int64
	// UnterminatedLines counts last lines shipped without their newline,
	// from files that were rotated away or deleted before it came.
	UnterminatedLines atomic.Int64
	FilesOpen         atomic.Int64 // file descriptors the file inputs hold
	// ParseErrors counts lines a parser rejected; they are shipped raw
	// with a parse_error field.
	ParseErrors atomic.Int64
	// RecordsSplit counts multiline records cut at max_lines or
	// max_bytes; the line that did not fit begins the next record.
	RecordsSplit atomic.Int64

	mu        sync.Mutex
	dropped   map[string]*atomic.Int64
	lostBytes map[string]*atomic.Int64
	lag       map[string]*atomic.Int64
	rotations map[string]*atomic.Int64
}

// RotationsOf returns the counter of rotations one file input followed: a
// followed file whose path stopped leading to it while the file stayed
// (renamed, within the globs or out of them), or that was truncated
// (copytruncate). A file deleted is not a rotation.
func (s *Stats) RotationsOf(input string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rotations == nil {
		s.rotations = make(map[string]*atomic.Int64)
	}
	c, ok := s.rotations[input]
	if !ok {
		c = new(atomic.Int64)
		s.rotations[input] = c
	}
	return c
}

// RotationsByInput returns a snapshot of every input's rotation counter.
func (s *Stats) RotationsByInput() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.rotations))
	for k, v := range s.rotations {
		out[k] = v.Load()
	}
	return out
}

// LostBytes returns the counter of input bytes given up before they became
// lines, for reason (truncated: cut by a copytruncate before they were read;
// deleted: a removed file held open longer than max_hold).
func (s *Stats) LostBytes(reason string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lostBytes == nil {
		s.lostBytes = make(map[string]*atomic.Int64)
	}
	c, ok := s.lostBytes[reason]
	if !ok {
		c = new(atomic.Int64)
		s.lostBytes[reason] = c
	}
	return c
}

// Dropped returns the counter of events lost for reason (queue_full,
// rejected, truncated, ...), creating it on first use.
func (s *Stats) Dropped(reason string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dropped == nil {
		s.dropped = make(map[string]*atomic.Int64)
	}
	c, ok := s.dropped[reason]
	if !ok {
		c = new(atomic.Int64)
		s.dropped[reason] = c
	}
	return c
}

// LostBytesByReason returns a snapshot of every lost-bytes counter.
func (s *Stats) LostBytesByReason() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.lostBytes))
	for k, v := range s.lostBytes {
		out[k] = v.Load()
	}
	return out
}

// DroppedByReason returns a snapshot of every drop counter.
func (s *Stats) DroppedByReason() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.dropped))
	for k, v := range s.dropped {
		out[k] = v.Load()
	}
	return out
}

// OutputStats count what one output did with its events.
type OutputStats struct {
	Delivered        atomic.Int64 // events acknowledged by the receiver
	Batches          atomic.Int64 // batches delivered
	Rejected         atomic.Int64 // events rejected permanently (dead-lettered or lost)
	DeadLettered     atomic.Int64 // of those, events written to the dead-letter file
	Dropped          atomic.Int64 // events dropped by when_full = "drop_newest"
	Retries          atomic.Int64 // failed attempts that were retried
	Failures         atomic.Int64 // failed attempts, retried or not
	ConsecutiveFails atomic.Int64
}

// Lag returns the gauge of a consumer input's lag, in messages, for key
// (input/topic/partition for kafka), creating it on first use. The api
// package reads them with LagByKey.
func (s *Stats) Lag(key string) *atomic.Int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lag == nil {
		s.lag = make(map[string]*atomic.Int64)
	}
	g, ok := s.lag[key]
	if !ok {
		g = new(atomic.Int64)
		s.lag[key] = g
	}
	return g
}

// DropLag forgets a lag gauge (a partition this agent no longer owns).
func (s *Stats) DropLag(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.lag, key)
}

// LagByKey returns a snapshot of every lag gauge.
func (s *Stats) LagByKey() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.lag))
	for k, v := range s.lag {
		out[k] = v.Load()
	}
	return out
}
