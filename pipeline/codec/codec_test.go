package codec

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

var (
	formats      = []string{FormatRaw, FormatJSON}
	compressions = []string{CompressionNone, CompressionGzip, CompressionZstd, CompressionSnappy}
)

func testSource() *pipeline.Source {
	return &pipeline.Source{Name: "x", Fields: []pipeline.Field{{Key: "service", Value: "app"}}}
}

// Decompress undoes any compression of this package, reading every
// concatenated unit; the file output's tests use the same decoders.
func Decompress(t testing.TB, compression string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	switch compression {
	case CompressionNone:
		return b
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("gzip: %v", err)
		}
		r = zr
	case CompressionZstd:
		d, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		out, err := d.DecodeAll(b, nil)
		if err != nil {
			t.Fatalf("zstd: %v", err)
		}
		return out
	case CompressionSnappy:
		strict, err := decodeSnappyStrict(b)
		if err != nil {
			t.Fatalf("strict snappy: %v", err)
		}
		r = snappy.NewReader(bytes.NewReader(b))
		out, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("snappy: %v", err)
		}
		if !bytes.Equal(out, strict) {
			t.Fatalf("strict snappy decoder and snappy.Reader disagree")
		}
		return out
	default:
		t.Fatalf("unknown compression %q", compression)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", compression, err)
	}
	return out
}

// decodeSnappyStrict reads the snappy framing format with a decoder that
// knows no S2 extension, so output an S2-only reader would accept fails.
func decodeSnappyStrict(b []byte) ([]byte, error) {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	masked := func(p []byte) uint32 {
		c := crc32.Checksum(p, castagnoli)
		return (c>>15 | c<<17) + 0xa282ead8
	}
	var out []byte
	sawID := false
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("short chunk header")
		}
		typ, n := b[0], int(b[1])|int(b[2])<<8|int(b[3])<<16
		b = b[4:]
		if len(b) < n {
			return nil, errors.New("short chunk")
		}
		body := b[:n]
		b = b[n:]
		switch {
		case typ == 0xff:
			if string(body) != "sNaPpY" {
				return nil, fmt.Errorf("bad stream identifier %q", body)
			}
			sawID = true
			continue
		case !sawID:
			return nil, errors.New("data before stream identifier")
		case typ == 0x00 || typ == 0x01:
			if n < 4 {
				return nil, errors.New("short data chunk")
			}
			data := body[4:]
			if typ == 0x00 {
				var err error
				if data, err = snappy.DecodeStrict(nil, data); err != nil {
					return nil, err
				}
			}
			if len(data) > 65536 {
				return nil, errors.New("block above 64 KiB")
			}
			if binary.LittleEndian.Uint32(body) != masked(data) {
				return nil, errors.New("checksum mismatch")
			}
			out = append(out, data...)
		case typ >= 0x80 && typ <= 0xfe:
		default:
			return nil, fmt.Errorf("reserved unskippable chunk type %#x", typ)
		}
	}
	return out, nil
}

func splitLines(t testing.TB, b []byte) []string {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("output does not end in a newline: %q", b)
	}
	return strings.Split(string(b[:len(b)-1]), "\n")
}

// wantLines is what the format makes of lines in testSource.
func wantLines(t testing.TB, format string, lines []string) []string {
	t.Helper()
	if format == FormatRaw {
		return lines
	}
	var out []string
	for _, l := range lines {
		m, err := json.Marshal(map[string]string{"message": l, "service": "app"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m))
	}
	return out
}

func testLines(prefix string, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s line %d level=info msg=\"hello \\\"world\\\"\" tab\there", prefix, i)
	}
	return lines
}

func TestRoundTrip(t *testing.T) {
	for _, f := range formats {
		for _, c := range compressions {
			t.Run(f+"-"+c, func(t *testing.T) {
				enc, err := NewEncoder(Settings{Format: f, Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				// Several batches through one encoder: reuse must not leak
				// state from one batch into the next.
				for i, n := range []int{3, 1, 20000, 2} {
					lines := testLines(fmt.Sprint("b", i), n)
					out, err := enc.Encode(pipeline.NewTestBatch(testSource(), lines...))
					if err != nil {
						t.Fatal(err)
					}
					got := splitLines(t, Decompress(t, c, out))
					want := wantLines(t, f, lines)
					if strings.Join(got, "\n") != strings.Join(want, "\n") {
						t.Fatalf("batch %d: got %d lines, want %d; first got %q want %q", i, len(got), len(want), got[0], want[0])
					}
				}
			})
		}
	}
}

// A file of concatenated batches must read back as one stream: that is what
// the file output writes and what a reader of the file sees.
func TestConcatenatedBatches(t *testing.T) {
	for _, c := range compressions {
		t.Run(c, func(t *testing.T) {
			enc, err := NewEncoder(Settings{Format: FormatRaw, Compression: c})
			if err != nil {
				t.Fatal(err)
			}
			a, b := testLines("a", 100), testLines("b", 70000)
			var file []byte
			for _, lines := range [][]string{a, b} {
				out, err := enc.Encode(pipeline.NewTestBatch(nil, lines...))
				if err != nil {
					t.Fatal(err)
				}
				// Each unit decodes on its own, too.
				if got := splitLines(t, Decompress(t, c, out)); len(got) != len(lines) {
					t.Fatalf("batch alone: %d lines, want %d", len(got), len(lines))
				}
				file = append(file, out...)
			}
			got := splitLines(t, Decompress(t, c, file))
			want := append(append([]string{}, a...), b...)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("concatenation: got %d lines, want %d", len(got), len(want))
			}
		})
	}
}

func TestEncodeEmptyBatch(t *testing.T) {
	for _, c := range compressions {
		enc, err := NewEncoder(Settings{Format: FormatJSON, Compression: c})
		if err != nil {
			t.Fatal(err)
		}
		out, err := enc.Encode(pipeline.NewTestBatch(nil))
		if err != nil || len(out) != 0 {
			t.Fatalf("%s: empty batch encoded to %d bytes, %v", c, len(out), err)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, f := range formats {
		for _, c := range compressions {
			s := Settings{Format: f, Compression: c}
			if err := s.Validate(); err != nil {
				t.Errorf("%+v: %v", s, err)
			}
		}
	}
	tests := []struct {
		s    Settings
		keys []string
	}{
		{Settings{Format: "xml", Compression: "none"}, []string{"format"}},
		{Settings{Format: "raw", Compression: "lz4"}, []string{"compression"}},
		{Settings{}, []string{"format", "compression"}},
	}
	for _, tt := range tests {
		err := tt.s.Validate()
		var keys []string
		for _, e := range config.Flatten(err) {
			var ce *config.Error
			if !errors.As(e, &ce) {
				t.Fatalf("%+v: %v is not a *config.Error", tt.s, e)
			}
			keys = append(keys, ce.Key)
		}
		if fmt.Sprint(keys) != fmt.Sprint(tt.keys) {
			t.Errorf("%+v: error keys %v, want %v (%v)", tt.s, keys, tt.keys, err)
		}
		if _, err := NewEncoder(tt.s); err == nil {
			t.Errorf("NewEncoder(%+v) accepted it", tt.s)
		}
	}
}

// The raw path must not allocate per line, nor per batch once its buffers
// have grown; compressors may allocate a little per batch, never per line.
// Their bounds leave room for a collection between runs, which empties the
// pools they draw block buffers from (seen under load: snappy at 10).
func TestEncodeAllocs(t *testing.T) {
	lines := testLines("alloc", 5000)
	for _, tt := range []struct {
		format, compression string
		max                 float64
	}{
		{FormatRaw, CompressionNone, 0},
		{FormatJSON, CompressionNone, 0},
		{FormatRaw, CompressionZstd, 0},
		{FormatRaw, CompressionGzip, 4},
		{FormatRaw, CompressionSnappy, 2 * (2 + 5000*100/65536)},
	} {
		enc, err := NewEncoder(Settings{Format: tt.format, Compression: tt.compression})
		if err != nil {
			t.Fatal(err)
		}
		b := pipeline.NewTestBatch(testSource(), lines...)
		if _, err := enc.Encode(b); err != nil {
			t.Fatal(err)
		}
		n := testing.AllocsPerRun(20, func() {
			if _, err := enc.Encode(b); err != nil {
				t.Fatal(err)
			}
		})
		if n > tt.max {
			t.Errorf("%s-%s: %v allocations per batch of %d lines, want <= %v", tt.format, tt.compression, n, len(lines), tt.max)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	// ~160-byte lines, varied enough that compressors do real work.
	lines := make([]string, 5000)
	for i := range lines {
		l := fmt.Sprintf(`2024-05-01T12:%02d:%02d.%06dZ INFO  [worker-%02d] request_id=%016x method=GET path=/api/v1/items/%d status=200 bytes=%d dur=%dms`,
			i/60%60, i%60, i*7919%1000000, i%16, uint64(i)*0x9e3779b97f4a7c15, i*31%10000, i*97%65536, i%250)
		lines[i] = (l + strings.Repeat(" ua=curl/8.5", 4))[:160]
	}
	for _, f := range formats {
		for _, c := range compressions {
			b.Run(f+"-"+c, func(b *testing.B) {
				enc, err := NewEncoder(Settings{Format: f, Compression: c})
				if err != nil {
					b.Fatal(err)
				}
				batch := pipeline.NewTestBatch(testSource(), lines...)
				b.SetBytes(int64(batch.Bytes()))
				b.ReportAllocs()
				var out []byte
				for b.Loop() {
					if out, err = enc.Encode(batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(batch.Bytes())/float64(len(out)), "ratio")
			})
		}
	}
}
