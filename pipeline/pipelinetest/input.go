package pipelinetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/tailship/tailship/pipeline"
)

// Line returns line seq of source, newline included: "<source> <seq>\n"
// with seq zero-padded to 8 digits, so every line of a source has the same
// length (for seq below 10^8).
func Line(source string, seq int) string {
	return fmt.Sprintf("%s %08d\n", source, seq)
}

// Size returns the byte length of the first n lines of source, i.e. the
// offset a source must commit once n lines are acknowledged.
func Size(source string, n int) int64 {
	var total int64
	for i := range n {
		total += int64(len(Line(source, i)))
	}
	return total
}

// ParseLine splits a line made by Line (with or without its newline) into
// source and sequence number.
func ParseLine(line string) (source string, seq int, err error) {
	line = strings.TrimSuffix(line, "\n")
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", 0, fmt.Errorf("line %q: not <source> <seq>", line)
	}
	seq, err = strconv.Atoi(line[i+1:])
	if err != nil {
		return "", 0, fmt.Errorf("line %q: %v", line, err)
	}
	return line[:i], seq, nil
}

// CheckSequences verifies that lines hold, for every source in want,
// exactly the lines 0..want[source]-1, each once and in order (lines of
// different sources may interleave), and nothing else. It reports the first
// problems it finds.
func CheckSequences(lines []string, want map[string]int) error {
	next := make(map[string]int, len(want))
	var errs []error
	for i, l := range lines {
		if len(errs) >= 10 {
			errs = append(errs, errors.New("..."))
			break
		}
		src, seq, err := ParseLine(l)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %v", i, err))
			continue
		}
		n, ok := want[src]
		if !ok {
			errs = append(errs, fmt.Errorf("line %d: unexpected source %q", i, src))
			continue
		}
		if seq != next[src] {
			errs = append(errs, fmt.Errorf("line %d: source %q: got seq %d, want %d", i, src, seq, next[src]))
		}
		if seq >= n {
			errs = append(errs, fmt.Errorf("line %d: source %q: seq %d beyond the %d lines emitted", i, src, seq, n))
		}
		next[src] = seq + 1
	}
	if len(errs) == 0 {
		for src, n := range want {
			if next[src] != n {
				errs = append(errs, fmt.Errorf("source %q: last seq seen %d, want %d", src, next[src]-1, n-1))
			}
		}
	}
	return errors.Join(errs...)
}

// Feeder emits the sequence-numbered lines of one source through an Emitter,
// exactly as an input does: NewChunk (which waits for the memory budget),
// lines appended to chunk.Buf, chunk.End set to the cumulative byte offset,
// Emit. It records the offsets the pipeline commits. A Feeder must be used
// from one goroutine at a time.
type Feeder struct {
	// OnCommit, when set before the first Emit, is called with every
	// committed offset, in order, as the pipeline commits it: a test can
	// check there what the output had received at that moment.
	OnCommit func(offset int64)

	e    pipeline.Emitter
	name string
	src  *pipeline.Source
	next int   // next line number
	off  int64 // bytes emitted
	buf  []byte

	mu          sync.Mutex
	committed   int64
	commits     int
	regressions int
}

// NewFeeder opens source name on e.
func NewFeeder(e pipeline.Emitter, name string) *Feeder {
	f := &Feeder{e: e, name: name}
	f.src = e.NewSource(name, f.commit)
	return f
}

func (f *Feeder) commit(off int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < f.committed {
		f.regressions++
	}
	f.committed = off
	f.commits++
	if f.OnCommit != nil {
		f.OnCommit(off)
	}
}

// Emit sends one chunk holding the next n lines.
func (f *Feeder) Emit(ctx context.Context, n int) error {
	f.buf = f.buf[:0]
	for i := range n {
		f.buf = append(f.buf, Line(f.name, f.next+i)...)
	}
	c, err := f.e.NewChunk(ctx, f.src, len(f.buf))
	if err != nil {
		return err
	}
	c.Buf = append(c.Buf, f.buf...)
	c.End = f.off + int64(len(f.buf))
	if err := f.e.Emit(ctx, c); err != nil {
		return err
	}
	f.next += n
	f.off = c.End
	return nil
}

// Source returns the pipeline source.
func (f *Feeder) Source() *pipeline.Source { return f.src }

// Emitted returns the lines and bytes emitted so far.
func (f *Feeder) Emitted() (lines int, bytes int64) { return f.next, f.off }

// Committed returns the last offset the pipeline committed.
func (f *Feeder) Committed() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.committed
}

// Commits returns how many times the commit callback ran, and how many of
// those calls went backwards (which must never happen).
func (f *Feeder) Commits() (calls, regressions int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commits, f.regressions
}

// StaticInput is a pipeline.Input that emits Lines sequence-numbered lines
// for each of Sources in chunks of ChunkLines lines (the last chunk may be
// shorter), one goroutine per source, and records committed offsets.
type StaticInput struct {
	Sources    []string
	Lines      int
	ChunkLines int
	// OnCommit, when set before Run, is each feeder's OnCommit with the
	// source's name: a test can check there what its receiver holds at
	// the moment the pipeline commits an offset.
	OnCommit func(source string, offset int64)

	mu      sync.Mutex
	feeders map[string]*Feeder
}

var _ pipeline.Input = (*StaticInput)(nil)

// Run implements pipeline.Input: it emits every line and returns once all
// are emitted (not delivered), or nil early when ctx ends.
func (in *StaticInput) Run(ctx context.Context, e pipeline.Emitter) error {
	k := in.ChunkLines
	if k <= 0 {
		k = 100
	}
	in.mu.Lock()
	if in.feeders == nil {
		in.feeders = make(map[string]*Feeder)
	}
	fs := make([]*Feeder, 0, len(in.Sources))
	for _, name := range in.Sources {
		if _, dup := in.feeders[name]; dup {
			in.mu.Unlock()
			return fmt.Errorf("pipelinetest: source %q run twice", name)
		}
		f := NewFeeder(e, name)
		if in.OnCommit != nil {
			f.OnCommit = func(off int64) { in.OnCommit(name, off) }
		}
		in.feeders[name] = f
		fs = append(fs, f)
	}
	in.mu.Unlock()

	var wg sync.WaitGroup
	errc := make(chan error, len(fs))
	for _, f := range fs {
		wg.Go(func() {
			for left := in.Lines; left > 0; left -= k {
				if err := f.Emit(ctx, min(k, left)); err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// Feeder returns the feeder of source name, or nil before Run opened it.
func (in *StaticInput) Feeder(name string) *Feeder {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.feeders[name]
}

// Committed returns the last offset committed for source name (0 when
// nothing was committed or the source is unknown).
func (in *StaticInput) Committed(name string) int64 {
	if f := in.Feeder(name); f != nil {
		return f.Committed()
	}
	return 0
}

// Want returns the map CheckSequences expects for this input.
func (in *StaticInput) Want() map[string]int {
	m := make(map[string]int, len(in.Sources))
	for _, s := range in.Sources {
		m[s] = in.Lines
	}
	return m
}

// Size returns the byte length of all lines of source name.
func (in *StaticInput) Size(name string) int64 { return Size(name, in.Lines) }
