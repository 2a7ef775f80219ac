// Package stdin is the stdin input: it ships the lines piped into tailship
// (`producer | tailship run`) and ends when stdin closes, once everything it
// read has been delivered. It is a finite input (pipeline.Finite): an agent
// whose inputs are all finite exits 0 when they have ended.
//
// Nothing is checkpointed: stdin cannot be read again, so a kill before
// delivery loses what was read but not delivered, and the producer must
// send it again.
package stdin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/tailship/tailship/pipeline"
)

func init() {
	pipeline.RegisterInput("stdin", func() pipeline.InputConfig { return DefaultConfig() })
}

// DefaultConfig returns the stdin input's defaults.
func DefaultConfig() *Config {
	return &Config{InputSettings: pipeline.DefaultInputSettings()}
}

// Config is [inputs.NAME] with type = "stdin". It has only the common
// input keys (parser, fields, processors, multiline, max_line_bytes).
type Config struct {
	pipeline.InputSettings
}

// Validate checks the stdin input's keys; the common ones are checked
// through Common.
func (c *Config) Validate() error { return nil }

// Build implements pipeline.InputConfig.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Input, error) {
	return &Input{name: bc.Name, maxLine: int(c.MaxLineBytes)}, nil
}

// Input reads os.Stdin, or f when set (tests).
type Input struct {
	name    string
	maxLine int
	f       *os.File
}

var (
	_ pipeline.Input  = (*Input)(nil)
	_ pipeline.Finite = (*Input)(nil)
)

// Finite implements pipeline.Finite: stdin ends.
func (in *Input) Finite() bool { return true }

// chunkSize is the read buffer: a pipe hands over at most 64 KiB a read,
// so a chunk gathers a few reads when the producer is fast.
const chunkSize = 256 << 10

// Run implements pipeline.Input. It returns nil at EOF once every line is
// committed, or when ctx ends.
func (in *Input) Run(ctx context.Context, em pipeline.Emitter) error {
	f, restore := in.file()
	defer restore()
	// A read blocked on a pipe is ended by a deadline; that needs the
	// descriptor in non-blocking mode, which file() arranged.
	stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
	defer stop()

	offs := make(chan int64, 1)
	src := em.NewSource(sourceName, func(off int64) {
		// Keep only the newest offset: commits come in order, and this
		// callback must not block the pipeline.
		select {
		case <-offs:
		default:
		}
		offs <- off
	})

	var off int64 // bytes emitted
	var carry []byte
	for {
		c, err := em.NewChunk(ctx, src, max(chunkSize, 2*len(carry)))
		if err != nil {
			return nil // ctx ended
		}
		c.Buf = append(c.Buf[:0], carry...)
		n, rerr := f.Read(c.Buf[len(c.Buf):cap(c.Buf)])
		c.Buf = c.Buf[:len(c.Buf)+n]
		eof := errors.Is(rerr, io.EOF)
		if rerr != nil && !eof {
			em.Release(c)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read stdin: %w", rerr)
		}
		cut := len(c.Buf)
		if !eof {
			if i := bytes.LastIndexByte(c.Buf, '\n'); i >= 0 {
				cut = i + 1
			} else if in.maxLine > 0 && len(c.Buf) < 4*in.maxLine+chunkSize {
				cut = 0 // a line still coming
			}
		}
		carry = append(carry[:0], c.Buf[cut:]...)
		c.Buf = c.Buf[:cut]
		if len(c.Buf) == 0 {
			em.Release(c)
		} else {
			off += int64(len(c.Buf))
			c.End = off
			if err := em.Emit(ctx, c); err != nil {
				return nil // ctx ended
			}
		}
		if eof {
			break
		}
	}
	// Everything is emitted: stdin ends when it is delivered.
	for committed := int64(0); committed < off; {
		select {
		case committed = <-offs:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// sourceName names the source in logs, metrics and the dead-letter file.
const sourceName = "stdin"

// file returns the file to read: a duplicate of the descriptor, made
// non-blocking so that a deadline can end a read when the input stops.
// restore puts the mode back (the pipe or terminal is shared with the
// shell) and closes the duplicate.
func (in *Input) file() (*os.File, func()) {
	f := in.f
	if f == nil {
		f = os.Stdin
	}
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return f, func() {}
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return f, func() {}
	}
	nb := os.NewFile(uintptr(fd), f.Name())
	return nb, func() {
		_ = syscall.SetNonblock(fd, false)
		_ = nb.Close()
	}
}
