package file

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pelletier/go-toml/v2"
	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var compressions = []string{"none", "gzip", "zstd", "snappy"}

func newConfig(path, compression string) *Config {
	c, ok := pipeline.NewOutputConfig("file")
	if !ok {
		panic("file output not registered")
	}
	cfg := c.(*Config)
	cfg.Inputs = []string{"app"}
	cfg.Path = path
	cfg.Compression = compression
	return cfg
}

func build(t testing.TB, cfg *Config) *output {
	t.Helper()
	if err := errors.Join(cfg.Common().Validate(), cfg.Validate()); err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Build(pipeline.BuildContext{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return out.(*output)
}

func write(t *testing.T, o *output, lines ...string) {
	t.Helper()
	if err := o.Write(context.Background(), pipeline.NewTestBatch(nil, lines...)); err != nil {
		t.Fatal(err)
	}
}

func closeOut(t *testing.T, o *output) {
	t.Helper()
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// decodeFile reads a whole file back as lines; it fails the test if any
// part of the file does not decode.
func decodeFile(t *testing.T, compression, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var plain []byte
	switch compression {
	case "none":
		plain = raw
	case "gzip":
		r, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			plain, err = io.ReadAll(r)
		}
		if err != nil {
			t.Fatalf("gzip %s: %v", path, err)
		}
	case "zstd":
		d, err := zstd.NewReader(nil)
		if err != nil {
			t.Fatal(err)
		}
		plain, err = d.DecodeAll(raw, nil)
		d.Close()
		if err != nil {
			t.Fatalf("zstd %s: %v", path, err)
		}
	case "snappy":
		plain, err = io.ReadAll(snappy.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Fatalf("snappy %s: %v", path, err)
		}
	}
	if len(plain) == 0 {
		return nil
	}
	if plain[len(plain)-1] != '\n' {
		t.Fatalf("%s does not end in a newline", path)
	}
	return strings.Split(string(plain[:len(plain)-1]), "\n")
}

func lines(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d some log text that compresses a little %d", prefix, i, i*i)
	}
	return out
}

func equal(t *testing.T, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("got %d lines, want %d\ngot:  %.300q\nwant: %.300q", len(got), len(want), got, want)
	}
}

func TestWriteAndDecode(t *testing.T) {
	for _, c := range compressions {
		t.Run(c, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "dir", "out.log")
			o := build(t, newConfig(path, c))
			var want []string
			for i := range 3 {
				l := lines(fmt.Sprint("b", i), 100+i)
				write(t, o, l...)
				want = append(want, l...)
			}
			closeOut(t, o)
			equal(t, decodeFile(t, c, path), want)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("mode %v, want 0644", fi.Mode().Perm())
			}
		})
	}
}

func TestJSONFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.json")
	cfg := newConfig(path, "none")
	cfg.Format = "json"
	o := build(t, cfg)
	src := &pipeline.Source{Name: "x", Fields: []pipeline.Field{{Key: "service", Value: "app"}}}
	if err := o.Write(context.Background(), pipeline.NewTestBatch(src, "a \"quoted\" line")); err != nil {
		t.Fatal(err)
	}
	closeOut(t, o)
	equal(t, decodeFile(t, "none", path), []string{`{"message":"a \"quoted\" line","service":"app"}`})
}

// rotatedFiles returns path.1, path.2, ... in order, then path.
func rotatedFiles(t *testing.T, path string) []string {
	t.Helper()
	var files []string
	for n := 1; ; n++ {
		p := fmt.Sprintf("%s.%d", path, n)
		if _, err := os.Stat(p); err != nil {
			break
		}
		files = append(files, p)
	}
	return append(files, path)
}

func TestRotationBySize(t *testing.T) {
	const max = 4000
	for _, c := range compressions {
		t.Run(c, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			cfg := newConfig(path, c)
			cfg.MaxFileBytes = max
			o := build(t, cfg)
			var want []string
			for i := range 60 {
				l := lines(fmt.Sprint("b", i), 1+i%20)
				write(t, o, l...)
				want = append(want, l...)
			}
			// One batch larger than the limit goes whole into one file.
			big := lines("big", 400)
			write(t, o, big...)
			want = append(want, big...)
			write(t, o, "last")
			want = append(want, "last")
			closeOut(t, o)

			files := rotatedFiles(t, path)
			if len(files) < 3 {
				t.Fatalf("only %d files; rotation did not happen", len(files))
			}
			var got []string
			for i, f := range files {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				part := decodeFile(t, c, f)
				if fi.Size() > max && !slices.Contains(part, big[0]) {
					t.Errorf("%s has %d bytes, above max_file_bytes %d", f, fi.Size(), max)
				}
				if len(part) == 0 {
					t.Errorf("%s is empty", f)
				}
				if i < len(files)-1 && fi.Size() == 0 {
					t.Errorf("rotated an empty file %s", f)
				}
				got = append(got, part...)
			}
			equal(t, got, want)
		})
	}
}

func TestRotationNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.log")
	for name, content := range map[string]string{"out.log.1": "one\n", "out.log.3": "three\n", "out.log.07": "x\n", "out.log.x": "x\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := newConfig(path, "none")
	cfg.MaxFileBytes = 10
	o := build(t, cfg)
	write(t, o, "first batch")
	write(t, o, "second batch")
	write(t, o, "third batch")
	closeOut(t, o)
	for name, want := range map[string]string{
		"out.log.1": "one\n", "out.log.3": "three\n",
		"out.log.4": "first batch\n", "out.log.5": "second batch\n", "out.log": "third batch\n",
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
}

func TestStrftimePath(t *testing.T) {
	dir := t.TempDir()
	cfg := newConfig(filepath.Join(dir, "%Y", "%m", "app-%d-%H.log%%"), "zstd")
	o := build(t, cfg)
	now := time.Date(2024, 3, 9, 23, 59, 59, 0, time.FixedZone("X", 5*3600)) // 18:59 UTC
	o.now = func() time.Time { return now }
	write(t, o, "a1", "a2")
	write(t, o, "a3")
	now = now.Add(time.Second) // 19:00 UTC: a new file
	write(t, o, "b1")
	now = time.Date(2025, 12, 31, 5, 0, 0, 0, time.UTC)
	write(t, o, "c1")
	closeOut(t, o)
	for path, want := range map[string][]string{
		"2024/03/app-09-18.log%": {"a1", "a2", "a3"},
		"2024/03/app-09-19.log%": {"b1"},
		"2025/12/app-31-05.log%": {"c1"},
	} {
		equal(t, decodeFile(t, "zstd", filepath.Join(dir, path)), want)
	}
}

func TestParsePattern(t *testing.T) {
	at := time.Date(987, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]string{
		"plain.log":       "plain.log",
		"%Y%m%d%H":        "0987010203",
		"a%%b%Y":          "a%b0987",
		"%%":              "%",
		"/x/%H/%d/y.%m.z": "/x/03/02/y.01.z",
	} {
		p, err := parsePattern(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := p.expand(at); got != want {
			t.Errorf("%q expands to %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"a%", "%M", "x-%s.log"} {
		if _, err := parsePattern(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// tornFile fails its next write after writing half of it, as a full disk
// does, and can fail to truncate.
type tornFile struct {
	*os.File
	failWrite    bool
	failTruncate bool
	failSync     bool
}

func (f *tornFile) Write(p []byte) (int, error) {
	if f.failWrite {
		f.failWrite = false
		n, _ := f.File.Write(p[:len(p)/2])
		return n, errors.New("no space left on device")
	}
	return f.File.Write(p)
}

func (f *tornFile) Truncate(size int64) error {
	if f.failTruncate {
		f.failTruncate = false
		return errors.New("truncate failed")
	}
	return f.File.Truncate(size)
}

func (f *tornFile) Sync() error {
	if f.failSync {
		f.failSync = false
		return errors.New("sync failed")
	}
	return f.File.Sync()
}

func withTornFiles(o *output) *[]*tornFile {
	var opened []*tornFile
	o.open = func(path string) (file, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		tf := &tornFile{File: f.(*os.File)}
		opened = append(opened, tf)
		return tf, nil
	}
	return &opened
}

func TestFailedWriteIsCutOff(t *testing.T) {
	for _, c := range compressions {
		t.Run(c, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			o := build(t, newConfig(path, c))
			files := withTornFiles(o)
			a, b := lines("a", 50), lines("b", 50)
			write(t, o, a...)
			(*files)[0].failWrite = true
			err := o.Write(context.Background(), pipeline.NewTestBatch(nil, b...))
			if err == nil || !strings.Contains(err.Error(), path) || pipeline.IsPermanent(err) {
				t.Fatalf("failed write returned %v; want a retryable error naming the file", err)
			}
			// The torn half is gone: the file decodes as if never written.
			equal(t, decodeFile(t, c, path), a)
			write(t, o, b...) // the runner's retry
			closeOut(t, o)
			equal(t, decodeFile(t, c, path), append(a, b...))
		})
	}
}

func TestFailedFsyncIsCutOff(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	cfg := newConfig(path, "gzip")
	cfg.Fsync = true
	o := build(t, cfg)
	files := withTornFiles(o)
	write(t, o, "a")
	(*files)[0].failSync = true
	if err := o.Write(context.Background(), pipeline.NewTestBatch(nil, "b")); err == nil {
		t.Fatal("fsync failure not reported")
	}
	write(t, o, "b")
	closeOut(t, o)
	equal(t, decodeFile(t, "gzip", path), []string{"a", "b"})
}

// When the torn write cannot be cut off either, the next batch starts a new
// file and the torn one is kept aside, decodable up to the tear.
func TestFailedTruncateStartsNewFile(t *testing.T) {
	for _, c := range compressions {
		t.Run(c, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			o := build(t, newConfig(path, c))
			files := withTornFiles(o)
			write(t, o, "a1", "a2")
			(*files)[0].failWrite, (*files)[0].failTruncate = true, true
			err := o.Write(context.Background(), pipeline.NewTestBatch(nil, "b1", "b2"))
			if err == nil || !strings.Contains(err.Error(), "truncate") {
				t.Fatalf("got %v, want the write and truncate errors", err)
			}
			write(t, o, "b1", "b2")
			write(t, o, "c1")
			closeOut(t, o)
			if c == "none" {
				// Appended to, after a newline ends the torn line.
				got := decodeFile(t, c, path)
				equal(t, got[:2], []string{"a1", "a2"})
				equal(t, got[len(got)-3:], []string{"b1", "b2", "c1"})
				if len(got) != 6 {
					t.Fatalf("got %q", got)
				}
				return
			}
			equal(t, decodeFile(t, c, path), []string{"b1", "b2", "c1"})
			torn, err := os.ReadFile(path + ".1")
			if err != nil {
				t.Fatal(err)
			}
			whole := decodeTorn(t, c, torn)
			if !strings.HasPrefix(whole, "a1\na2\n") {
				t.Errorf("torn file decodes to %q", whole)
			}
		})
	}
}

// decodeTorn decodes what it can of a stream with a torn end.
func decodeTorn(t *testing.T, c string, b []byte) string {
	var r io.Reader
	switch c {
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		d, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		r = d
	case "snappy":
		r = snappy.NewReader(bytes.NewReader(b))
	}
	var out bytes.Buffer
	_, err := io.Copy(&out, r)
	if err == nil {
		t.Errorf("torn %s stream decoded without error", c)
	}
	return out.String()
}

func TestReopenCompressedStartsNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log.zst")
	o := build(t, newConfig(path, "zstd"))
	write(t, o, "run1")
	closeOut(t, o)
	o = build(t, newConfig(path, "zstd"))
	write(t, o, "run2")
	closeOut(t, o)
	equal(t, decodeFile(t, "zstd", path+".1"), []string{"run1"})
	equal(t, decodeFile(t, "zstd", path), []string{"run2"})
}

func TestReopenUncompressedAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	if err := os.WriteFile(path, []byte("old\ntorn li"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := build(t, newConfig(path, "none"))
	write(t, o, "new")
	closeOut(t, o)
	o = build(t, newConfig(path, "none"))
	write(t, o, "newer")
	closeOut(t, o)
	got, _ := os.ReadFile(path)
	if string(got) != "old\ntorn li\nnew\nnewer\n" {
		t.Errorf("got %q", got)
	}
}

func TestFsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	cfg := newConfig(path, "snappy")
	cfg.Fsync = true
	cfg.MaxFileBytes = 100
	o := build(t, cfg)
	write(t, o, lines("a", 10)...)
	write(t, o, lines("b", 10)...)
	closeOut(t, o)
	equal(t, decodeFile(t, "snappy", path+".1"), lines("a", 10))
	equal(t, decodeFile(t, "snappy", path), lines("b", 10))
}

func TestWriteAfterClose(t *testing.T) {
	o := build(t, newConfig(filepath.Join(t.TempDir(), "out.log"), "none"))
	write(t, o, "x")
	closeOut(t, o)
	if err := o.Write(context.Background(), pipeline.NewTestBatch(nil, "y")); err == nil {
		t.Error("write after close succeeded")
	}
	closeOut(t, o) // a second Close is harmless
}

func TestPathIsDirectory(t *testing.T) {
	dir := t.TempDir()
	o := build(t, newConfig(dir+"/sub", "none"))
	if err := os.Mkdir(dir+"/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	err := o.Write(context.Background(), pipeline.NewTestBatch(nil, "y"))
	if err == nil || pipeline.IsPermanent(err) {
		t.Errorf("got %v, want a retryable error", err)
	}
	closeOut(t, o)
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		keys []string
	}{
		{"ok", func(c *Config) {}, nil},
		{"no path", func(c *Config) { c.Path = "" }, []string{"path"}},
		{"directory", func(c *Config) { c.Path = "/var/log/" }, []string{"path"}},
		{"bad token", func(c *Config) { c.Path = "/x/%M.log" }, []string{"path"}},
		{"format", func(c *Config) { c.Format = "xml" }, []string{"format"}},
		{"compression", func(c *Config) { c.Compression = "lz4" }, []string{"compression"}},
		{"max", func(c *Config) { c.MaxFileBytes = -1 }, []string{"max_file_bytes"}},
		{"all", func(c *Config) { c.Path, c.Format, c.Compression, c.MaxFileBytes = "", "", "", -1 },
			[]string{"path", "format", "compression", "max_file_bytes"}},
		// Common keys are the loader's job, through Common().Validate().
		{"common keys ignored", func(c *Config) { c.Inputs = nil }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newConfig("/tmp/x.log", "none")
			tt.edit(c)
			var keys []string
			for _, e := range config.Flatten(c.Validate()) {
				var ce *config.Error
				if !errors.As(e, &ce) {
					t.Fatalf("%v is not a *config.Error", e)
				}
				keys = append(keys, ce.Key)
			}
			if !slices.Equal(keys, tt.keys) {
				t.Errorf("keys %q, want %q", keys, tt.keys)
			}
		})
	}
}

// The keys of both embedded structs sit flat in the table, as the loader
// decodes it (strictly).
func TestTOMLKeysAreFlat(t *testing.T) {
	doc := `
type = "file"
inputs = ["app"]
path = "./out/app-%Y%m%d.log.zst"
format = "json"
compression = "zstd"
max_file_bytes = "100MiB"
fsync = true
batch = { max_events = 10, max_bytes = "1MiB", timeout = "2s" }
`
	c, _ := pipeline.NewOutputConfig("file")
	if err := toml.NewDecoder(strings.NewReader(doc)).DisallowUnknownFields().Decode(c); err != nil {
		t.Fatal(err)
	}
	cfg := c.(*Config)
	want := codec.Settings{Format: "json", Compression: "zstd"}
	if cfg.Settings != want || cfg.Path != "./out/app-%Y%m%d.log.zst" || cfg.MaxFileBytes != 100<<20 || !cfg.Fsync ||
		cfg.Batch.MaxEvents != 10 || cfg.Batch.Timeout.D() != 2*time.Second || cfg.Queue.WhenFull != "block" {
		t.Errorf("decoded %+v", cfg)
	}
	if err := errors.Join(cfg.Common().Validate(), cfg.Validate()); err != nil {
		t.Error(err)
	}
	if err := toml.NewDecoder(strings.NewReader("pth = 'x'")).DisallowUnknownFields().Decode(c); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestDefaults(t *testing.T) {
	c, ok := pipeline.NewOutputConfig("file")
	if !ok {
		t.Fatal("not registered")
	}
	cfg := c.(*Config)
	if cfg.Format != "raw" || cfg.Compression != "none" || cfg.MaxFileBytes != 0 || cfg.Fsync {
		t.Errorf("defaults %+v", cfg)
	}
	if cfg.Common().Batch.MaxEvents == 0 {
		t.Error("output settings have no defaults")
	}
}
