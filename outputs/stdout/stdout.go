// Package stdout is the stdout output: it writes each batch, encoded and
// compressed by package codec, to the agent's standard output, for
// debugging and for running the agent as a filter in a shell pipeline.
package stdout

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

func init() {
	pipeline.RegisterOutput("stdout", func() pipeline.OutputConfig {
		return &Config{
			OutputSettings: pipeline.DefaultOutputSettings(),
			Settings:       codec.Settings{Format: codec.FormatRaw, Compression: codec.CompressionNone},
		}
	})
}

// Config is [outputs.NAME] with type = "stdout".
type Config struct {
	pipeline.OutputSettings
	codec.Settings

	w io.Writer // nil: os.Stdout; tests capture the output here
}

// Validate checks the keys of the stdout output itself; the loader validates
// the common output keys through Common. Defining it also settles which of
// the two embedded Validate methods Config has.
func (c *Config) Validate() error { return c.Settings.Validate() }

// Build implements pipeline.OutputConfig.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	enc, err := codec.NewEncoder(c.Settings)
	if err != nil {
		return nil, err
	}
	w := c.w
	if w == nil {
		w = os.Stdout
	}
	return &output{w: w, enc: enc}, nil
}

type output struct {
	mu  sync.Mutex // enc reuses its buffers; one batch at a time
	w   io.Writer
	enc *codec.Encoder
}

// Write implements pipeline.Output. A failed write is retried whole, so a
// reader may see part of a batch twice; stdout offers no way to take back
// what was written.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	payload, err := o.enc.Encode(b)
	if err != nil {
		return pipeline.Permanent(fmt.Errorf("encode: %w", err))
	}
	if len(payload) == 0 {
		return nil
	}
	// One Write per batch, so lines of one batch are not interleaved with
	// the agent's own logs when those go to the same descriptor.
	if _, err := o.w.Write(payload); err != nil {
		return fmt.Errorf("write stdout: %w", err)
	}
	return nil
}

// Close implements pipeline.Output. Standard output stays open: it is not
// the output's to close, and the agent may still log to it.
func (o *output) Close(ctx context.Context) error { return nil }
