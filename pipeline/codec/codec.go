// Package codec owns turning a batch into bytes: the encoders (raw, json) and
// the compressors (none, gzip, zstd, snappy) that outputs share. An Encoder
// is built once per output and reused across batches, because creating a
// compressor per batch costs more than compressing it (DESIGN.md §9).
//
// Every compressed batch is one complete, independent unit: a gzip member, a
// zstd frame, or a snappy framed stream. Concatenating them stays a valid
// stream for every standard decoder, so a file that receives batch after
// batch is readable up to the last complete batch even after a crash, and a
// receiver can decode each request body on its own.
package codec

import (
	"errors"
	"fmt"
	"slices"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// Formats and compressions that Settings accept.
const (
	FormatRaw  = "raw"  // the line as read, newline-terminated
	FormatJSON = "json" // one JSON object per event, newline-terminated

	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionZstd   = "zstd"
	CompressionSnappy = "snappy" // the snappy framing format, not bare blocks
)

// Settings are the codec keys of an output. Output configs embed the struct
// anonymously so "format" and "compression" sit flat in [outputs.NAME].
type Settings struct {
	Format      string `toml:"format"`
	Compression string `toml:"compression"`
}

// Validate checks that the format and compression are known.
func (s *Settings) Validate() error {
	var errs []error
	switch s.Format {
	case FormatRaw, FormatJSON:
	default:
		errs = append(errs, config.Errorf("format", "must be %q or %q, got %q", FormatRaw, FormatJSON, s.Format))
	}
	switch s.Compression {
	case CompressionNone, CompressionGzip, CompressionZstd, CompressionSnappy:
	default:
		errs = append(errs, config.Errorf("compression", "must be one of %q, %q, %q, %q, got %q",
			CompressionNone, CompressionGzip, CompressionZstd, CompressionSnappy, s.Compression))
	}
	return errors.Join(errs...)
}

// Encoder turns batches into bytes. It keeps its buffers and compressor
// between calls, so it must not be used by two goroutines at once; each
// output owns one.
type Encoder struct {
	json        bool
	compression string

	plain []byte // the encoded, uncompressed batch
	out   sliceWriter

	gz *gzip.Writer
	zs *zstd.Encoder
	sn *s2.Writer
}

// NewEncoder returns an encoder for s.
func NewEncoder(s Settings) (*Encoder, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	e := &Encoder{json: s.Format == FormatJSON, compression: s.Compression}
	var err error
	switch s.Compression {
	case CompressionGzip:
		// Level 1: about twice the speed of the default level and a ratio
		// close to it on log lines; an agent should not compete with the
		// application it watches for CPU.
		e.gz, err = gzip.NewWriterLevel(&e.out, gzip.BestSpeed)
	case CompressionZstd:
		// Concurrency 1: only EncodeAll is used and one goroutine encodes
		// at a time, so more encoders would only hold memory.
		e.zs, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	case CompressionSnappy:
		// Concurrency 1 keeps the writer synchronous: no goroutine lives
		// between batches, and Close leaves nothing to wait for.
		e.sn = s2.NewWriter(&e.out, s2.WriterSnappyCompat(), s2.WriterConcurrency(1))
	}
	if err != nil {
		return nil, fmt.Errorf("codec %s: %w", s.Compression, err)
	}
	return e, nil
}

// Encode returns the batch encoded and compressed as one self-contained unit
// (see the package doc). A batch without events encodes to no bytes. The
// returned slice is valid until the next call to Encode.
func (e *Encoder) Encode(b *pipeline.Batch) ([]byte, error) {
	// The raw size is exact for the raw format and a floor for json, so
	// the buffer grows at most a few times over the life of the output.
	buf := slices.Grow(e.plain[:0], b.Bytes())
	if e.json {
		for src, ev := range b.All() {
			buf = AppendJSON(buf, src, ev)
			buf = append(buf, '\n')
		}
	} else {
		for _, ev := range b.All() {
			buf = append(buf, ev.Raw...)
			buf = append(buf, '\n')
		}
	}
	e.plain = buf
	if len(buf) == 0 {
		return buf, nil
	}
	return e.compress(buf)
}

// Compress compresses a body an output built itself (an Elasticsearch bulk
// or Loki push request) as one self-contained unit, with the encoder's
// compression; "none" returns plain. The result is valid until the next
// call to Encode or Compress.
func (e *Encoder) Compress(plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return plain, nil
	}
	return e.compress(plain)
}

func (e *Encoder) compress(plain []byte) ([]byte, error) {
	e.out.b = e.out.b[:0]
	switch e.compression {
	case CompressionGzip:
		e.gz.Reset(&e.out)
		if _, err := e.gz.Write(plain); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if err := e.gz.Close(); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	case CompressionZstd:
		e.out.b = e.zs.EncodeAll(plain, e.out.b)
	case CompressionSnappy:
		e.sn.Reset(&e.out)
		// EncodeBuffer writes plain as blocks directly, without copying it
		// into the writer's own input buffer first.
		if err := e.sn.EncodeBuffer(plain); err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		if err := e.sn.Close(); err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
	default:
		return plain, nil
	}
	return e.out.b, nil
}

// sliceWriter collects compressor output in a buffer that outlives batches.
type sliceWriter struct{ b []byte }

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
