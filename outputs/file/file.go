// Package file is the file output: it appends each batch, encoded and
// compressed by package codec, to a local file.
//
// # Paths
//
// path may contain %Y, %m, %d and %H (UTC, evaluated for every batch) and %%
// for a literal percent sign. When the expanded path changes, the old file is
// closed and the new one opened; directories are created as needed.
//
// # Crash safety
//
// Each batch is written as one complete gzip member, zstd frame or snappy
// stream, so a file reads back as one stream up to its last complete batch.
// A write that fails is cut off again (the file is truncated to its size
// before the write), so a retried batch is not left behind a torn one. Since
// a file left by a crash may end in a torn frame, a compressed file that
// already has content when it is opened is never appended to: it is moved
// aside as a rotated file (below) and a fresh file is started. An
// uncompressed file is appended to; if it does not end in a newline, one is
// written first so the next line is not glued to a torn one.
//
// # Rotation
//
// With max_file_bytes > 0, a batch that would take a non-empty file beyond
// the limit first rotates it: the file is closed and renamed to <path>.<N>,
// and a new file is opened at path. N starts at 1 and is always one more than
// the highest N already present, and an existing name is never overwritten,
// so a higher N is a newer file even after old ones have been deleted. A
// single batch larger than the limit still goes whole into one file.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

func init() {
	pipeline.RegisterOutput("file", func() pipeline.OutputConfig {
		return &Config{
			OutputSettings: pipeline.DefaultOutputSettings(),
			Settings:       codec.Settings{Format: codec.FormatRaw, Compression: codec.CompressionNone},
		}
	})
}

// Config is [outputs.NAME] with type = "file".
type Config struct {
	pipeline.OutputSettings
	codec.Settings
	Path         string      `toml:"path"`
	MaxFileBytes config.Size `toml:"max_file_bytes"` // 0: never rotate
	Fsync        bool        `toml:"fsync"`          // fsync after every batch
}

// Validate checks the keys of the file output itself; the loader validates
// the common output keys through Common. Defining it also settles which of
// the two embedded Validate methods Config has.
func (c *Config) Validate() error {
	var errs []error
	switch {
	case c.Path == "":
		errs = append(errs, config.Errorf("path", "required: the file to write"))
	case strings.HasSuffix(c.Path, "/") || strings.HasSuffix(c.Path, string(os.PathSeparator)):
		errs = append(errs, config.Errorf("path", "%q names a directory; it must name a file", c.Path))
	case strings.Contains(c.Path, "%{"):
		if _, _, err := parseFieldPath(c.Path); err != nil {
			errs = append(errs, config.Errorf("path", "%v", err))
		}
	default:
		if _, err := parsePattern(c.Path); err != nil {
			errs = append(errs, config.Errorf("path", "%v", err))
		}
	}
	errs = append(errs, c.Settings.Validate())
	if c.MaxFileBytes < 0 {
		errs = append(errs, config.Errorf("max_file_bytes", "must not be negative"))
	}
	return errors.Join(errs...)
}

// Build implements pipeline.OutputConfig. No file is opened until the first
// batch, because the path depends on the time the batch is written.
func (c *Config) Build(bc pipeline.BuildContext) (pipeline.Output, error) {
	var (
		pat  pattern
		tmpl template.Template
		base string
		err  error
	)
	if strings.Contains(c.Path, "%{") {
		tmpl, base, err = parseFieldPath(c.Path)
	} else {
		pat, err = parsePattern(c.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("path: %w", err)
	}
	enc, err := codec.NewEncoder(c.Settings)
	if err != nil {
		return nil, err
	}
	log := bc.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &output{
		pat:         pat,
		tmpl:        tmpl,
		base:        base,
		json:        c.Format == codec.FormatJSON,
		compressed:  c.Compression != codec.CompressionNone,
		max:         int64(c.MaxFileBytes),
		fsync:       c.Fsync,
		enc:         enc,
		log:         log,
		now:         time.Now,
		syncOnClose: true,
		open:        openFile,
	}, nil
}

// file is what the output needs of an open file; tests substitute one that
// fails on demand.
type file interface {
	io.Writer
	Truncate(size int64) error
	Sync() error
	Close() error
}

func openFile(path string) (file, error) {
	return os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
}

type output struct {
	pat        pattern
	tmpl       template.Template // set when path has %{field}: one file per value
	base       string            // the directory tmpl's files must stay in
	json       bool
	compressed bool
	max        int64
	fsync      bool
	enc        *codec.Encoder
	log        *zap.Logger
	now        func() time.Time
	open       func(path string) (file, error)

	// The runner calls Write and Close from one goroutine; the mutex only
	// guards against a Close from elsewhere during shutdown. It also covers
	// enc, whose buffers are reused by every Encode.
	mu       sync.Mutex
	f        file
	path     string // where f was opened
	size     int64  // bytes in f
	broken   bool   // a failed write could not be cut off; f's tail is unknown
	closed   bool
	nextN    int    // next rotation suffix for rotPath; 0 = not looked up yet
	rotPath  string // path nextN belongs to
	hour     int64  // Unix hour of the cached expansion
	expanded string
	// left is the size each compressed file had when this output closed
	// it after a good write: its tail is a whole frame of ours, so it is
	// appended to when the output comes back to it (a field path switches
	// between files), not moved aside.
	left        map[string]int64
	syncOnClose bool // false only while a field path switches files
}

// Write implements pipeline.Output.
func (o *output) Write(ctx context.Context, b *pipeline.Batch) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("file output is closed")
	}
	if o.tmpl != nil {
		return o.writeFields(b)
	}
	payload, err := o.enc.Encode(b)
	if err != nil {
		// The same batch would fail the same way again.
		return pipeline.Permanent(fmt.Errorf("encode: %w", err))
	}
	if len(payload) == 0 {
		return nil
	}
	return o.put(o.currentPath(), payload)
}

// put appends one encoded payload to the file at path.
func (o *output) put(path string, payload []byte) error {
	if o.f != nil && (path != o.path || o.broken) {
		// A field path moves between files within every batch: syncing
		// each on the way out would cost a disk flush per file per batch.
		// fsync = true has synced every write already; without it no
		// write is durable before Close anyway.
		o.syncOnClose = o.tmpl == nil
		err := o.closeFile()
		o.syncOnClose = true
		if err != nil {
			o.log.Warn("closing file", zap.String("path", o.path), zap.Error(err))
		}
	}
	if o.f == nil {
		if err := o.openPath(path); err != nil {
			return err
		}
	}
	if o.max > 0 && o.size > 0 && o.size+int64(len(payload)) > o.max {
		if err := o.rotate(); err != nil {
			return err
		}
	}
	before := o.size
	if _, err := o.f.Write(payload); err != nil {
		return o.undo(before, fmt.Errorf("write %s: %w", o.path, err))
	}
	o.size += int64(len(payload))
	if o.fsync {
		if err := o.f.Sync(); err != nil {
			// Not durable: cut it off so the retry does not write it twice.
			return o.undo(before, fmt.Errorf("fsync %s: %w", o.path, err))
		}
	}
	return nil
}

// undo truncates the file back to size after a failed write and returns
// err, which the runner retries. If even that fails, the file's tail is
// unknown, and the next write starts a new file (see the package doc).
func (o *output) undo(size int64, err error) error {
	if terr := o.f.Truncate(size); terr != nil {
		o.broken = true
		return errors.Join(err, fmt.Errorf("truncate %s after failed write: %w", o.path, terr))
	}
	o.size = size
	return err
}

// openPath opens path for appending, first moving a compressed file that
// already has content out of the way (its tail may be a torn frame).
func (o *output) openPath(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("stat %s: %w", path, err)
	case !fi.Mode().IsRegular():
		// Retried, not rejected: the batch waits until someone fixes it.
		return fmt.Errorf("open %s: not a regular file", path)
	case fi.Size() > 0 && o.compressed && o.left[path] != fi.Size():
		if err := o.moveAside(path); err != nil {
			return err
		}
		fi = nil
	}
	f, err := o.open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	o.f, o.path, o.size, o.broken = f, path, 0, false
	if fi != nil {
		o.size = fi.Size()
	}
	if o.size > 0 && !o.compressed {
		if err := o.terminateLine(); err != nil {
			_ = o.closeFile()
			return err
		}
	}
	if o.fsync {
		syncDir(filepath.Dir(path))
	}
	return nil
}

// terminateLine writes a newline if the file ends in a torn line.
func (o *output) terminateLine() error {
	r, err := os.Open(o.path)
	if err != nil {
		return fmt.Errorf("open %s: %w", o.path, err)
	}
	defer r.Close()
	var last [1]byte
	if _, err := r.ReadAt(last[:], o.size-1); err != nil {
		return fmt.Errorf("read %s: %w", o.path, err)
	}
	if last[0] == '\n' {
		return nil
	}
	if _, err := o.f.Write([]byte{'\n'}); err != nil {
		return o.undo(o.size, fmt.Errorf("write %s: %w", o.path, err))
	}
	o.size++
	o.log.Warn("file ended in an incomplete line; terminated it", zap.String("path", o.path))
	return nil
}

// rotate closes the current file, moves it aside and opens a new one.
func (o *output) rotate() error {
	path := o.path
	if err := o.closeFile(); err != nil {
		return err
	}
	if err := o.moveAside(path); err != nil {
		return err
	}
	return o.openPath(path)
}

// moveAside renames path to <path>.<N>, N above every existing suffix.
func (o *output) moveAside(path string) error {
	if o.rotPath != path || o.nextN == 0 {
		n, err := highestSuffix(path)
		if err != nil {
			return err
		}
		o.rotPath, o.nextN = path, n+1
	}
	for {
		to := path + "." + strconv.Itoa(o.nextN)
		_, err := os.Lstat(to)
		if err == nil {
			o.nextN++ // appeared since we looked
			continue
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", path, err)
		}
		if err := os.Rename(path, to); err != nil {
			return fmt.Errorf("rotate %s: %w", path, err)
		}
		o.nextN++
		o.log.Info("rotated file", zap.String("path", path), zap.String("to", to))
		if o.fsync {
			syncDir(filepath.Dir(path))
		}
		return nil
	}
}

// highestSuffix returns the largest N of the existing files <path>.<N>, or 0.
func highestSuffix(path string) (int, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("rotate %s: %w", path, err)
	}
	high := 0
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), base+".")
		if !ok || rest == "" || rest[0] == '0' {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n > high {
			high = n
		}
	}
	return high, nil
}

// closeFile syncs and closes the current file, even if fsync is off: it is
// once per file, and a closed file should be on disk.
func (o *output) closeFile() error {
	if o.f == nil {
		return nil
	}
	var serr error
	if o.syncOnClose {
		serr = o.f.Sync()
	}
	cerr := o.f.Close()
	o.f = nil
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("close %s: %w", o.path, err)
	}
	if o.compressed && !o.broken {
		if o.left == nil || len(o.left) >= 4096 {
			o.left = map[string]int64{} // forgetting only costs a rotation
		}
		o.left[o.path] = o.size
	}
	return nil
}

// Close implements pipeline.Output.
func (o *output) Close(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return o.closeFile()
}

// syncDir makes a new or renamed directory entry durable. It is best effort:
// some file systems cannot sync a directory, and the data itself is synced.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// currentPath expands the path for now. Tokens go down to the hour, so the
// expansion is cached per hour.
func (o *output) currentPath() string {
	if o.pat.static() {
		return o.pat[0].lit
	}
	t := o.now().UTC()
	if h := t.Unix() / 3600; h != o.hour || o.expanded == "" {
		o.hour, o.expanded = h, o.pat.expand(t)
	}
	return o.expanded
}

// pattern is a path split into literals and strftime tokens.
type pattern []segment

type segment struct {
	lit  string
	verb byte // 'Y', 'm', 'd', 'H', or 0 for a literal
}

func parsePattern(s string) (pattern, error) {
	var p pattern
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return nil, errors.New("ends in a lone '%' (write %% for a percent sign)")
		}
		i++
		switch c := s[i]; c {
		case '%':
			lit.WriteByte('%')
		case 'Y', 'm', 'd', 'H':
			if lit.Len() > 0 {
				p = append(p, segment{lit: lit.String()})
				lit.Reset()
			}
			p = append(p, segment{verb: c})
		default:
			return nil, fmt.Errorf("unknown time token %%%c (known: %%Y %%m %%d %%H, and %%%% for a percent sign)", c)
		}
	}
	if lit.Len() > 0 || len(p) == 0 {
		p = append(p, segment{lit: lit.String()})
	}
	return p, nil
}

func (p pattern) static() bool { return len(p) == 1 && p[0].verb == 0 }

func (p pattern) expand(t time.Time) string {
	var b []byte
	for _, s := range p {
		switch s.verb {
		case 0:
			b = append(b, s.lit...)
		case 'Y':
			b = appendPad(b, t.Year(), 4)
		case 'm':
			b = appendPad(b, int(t.Month()), 2)
		case 'd':
			b = appendPad(b, t.Day(), 2)
		case 'H':
			b = appendPad(b, t.Hour(), 2)
		}
	}
	return string(b)
}

func appendPad(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}
