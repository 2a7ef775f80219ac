package file

// Benchmarks that run github.com/nxadm/tail and this package's reader on the
// same input, so the choice of our own block reader stays reproducible (see
// README, "Dependencies"). They run only with -bench:
//
//	go test -run '^$' -bench 'ReadFile|Rotation' -benchtime 1x ./inputs/file/
//
// (-run '^$', not -run x: x matches TestMaxHoldGivesUpAndCounts.)
//
// BenchmarkReadFile reads one generated file of sequence-numbered mixed log
// lines (~160 bytes each; TAILSHIP_BENCH_FILE_MB, default 256) from its start
// to its last line, checking every line's sequence number. It reports MB/s,
// lines/s and the process CPU seconds spent per GB read. The file is written
// just before it is read, so both readers read from the page cache: this
// measures the readers, not the disk.
//
// BenchmarkRotation runs a writer appending sequence-numbered lines, one
// write(2) per line, at 100,000 lines/s (TAILSHIP_ROTATION_RATE) for a few
// seconds (TAILSHIP_ROTATION_SECONDS, default 3), rotating every 50,000
// lines (rename; rename with the old file written for 20 ms more;
// copytruncate beside the writer, as logrotate does it; copytruncate with
// the writer paused), and counts at the reader the sequence numbers lost
// (lost/op; gap/op is the part of them that no file on disk holds any more)
// and duplicated (dup/op). Each run is logged with -v.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nxadm/tail"

	"github.com/tailship/tailship/checkpoint"
	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// seqDigits is the width of the sequence number every generated line starts
// with.
const seqDigits = 10

// lineGen makes sequence-numbered log lines in a few common shapes
// (logfmt-ish, JSON, access log), ~160 bytes on average.
type lineGen struct{ rng *rand.Rand }

func newLineGen() *lineGen { return &lineGen{rng: rand.New(rand.NewPCG(1, 2))} }

var (
	genPaths  = []string{"/api/v1/items", "/api/v1/orders/checkout", "/healthz", "/static/app.js", "/login"}
	genLevels = []string{"info", "warn", "error", "debug"}
	genMsgs   = []string{"slow query", "cache miss", "request finished", "retrying upstream", "connection reset by peer"}
)

func (g *lineGen) append(buf []byte, seq int) []byte {
	r := g.rng
	buf = fmt.Appendf(buf, "%0*d host=web-%02d ", seqDigits, seq, r.IntN(100))
	ts := "2026-11-23T00:49:03.123Z"
	switch r.IntN(3) {
	case 0:
		buf = fmt.Appendf(buf, "%s INFO http: GET %s/%d status=%d bytes=%d dur=%dms ua=\"curl/8.5.0\" req_id=%016x",
			ts, genPaths[r.IntN(len(genPaths))], r.IntN(100000), 200+r.IntN(4)*100, r.IntN(1<<20), r.IntN(2000), r.Uint64())
	case 1:
		buf = fmt.Appendf(buf, `{"ts":"%s","level":"%s","msg":"%s","db":"orders","rows":%d,"ms":%d,"trace":"%016x%016x"}`,
			ts, genLevels[r.IntN(len(genLevels))], genMsgs[r.IntN(len(genMsgs))], r.IntN(10000), r.IntN(5000), r.Uint64(), r.Uint64())
	default:
		buf = fmt.Appendf(buf, `10.%d.%d.%d - - [23/Nov/2026:00:49:03 +0000] "POST %s HTTP/1.1" %d %d "-" "Mozilla/5.0 (X11; Linux x86_64)"`,
			r.IntN(256), r.IntN(256), r.IntN(256), genPaths[r.IntN(len(genPaths))], 200+r.IntN(4)*100, r.IntN(1<<16))
	}
	return append(buf, '\n')
}

// parseSeq returns the sequence number a generated line starts with, or -1.
func parseSeq[T string | []byte](line T) int {
	if len(line) < seqDigits {
		return -1
	}
	n := 0
	for i := range seqDigits {
		c := line[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// writeBenchFile writes lines until the file holds at least size bytes and
// returns the number of lines.
func writeBenchFile(b *testing.B, path string, size int64) (lines int, written int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	g := newLineGen()
	buf := make([]byte, 0, 1<<20)
	for written+int64(len(buf)) < size {
		buf = g.append(buf, lines)
		lines++
		if len(buf) >= 1<<20-512 {
			if _, err := f.Write(buf); err != nil {
				b.Fatal(err)
			}
			written += int64(len(buf))
			buf = buf[:0]
		}
	}
	if _, err := f.Write(buf); err != nil {
		b.Fatal(err)
	}
	written += int64(len(buf))
	return lines, written
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countEmitter is a pipeline.Emitter standing in for the whole pipeline, so
// that a benchmark measures the file input and nothing behind it: it walks
// each chunk line by line (as the pipeline's split does) handing every line
// to onLine, acknowledges the chunk at once (the source's commit callback
// runs, so checkpoints move as with a real output), and reuses chunk buffers
// as the pipeline's pools do. Safe for several readers at once.
type countEmitter struct {
	onLine func(line []byte)

	mu      sync.Mutex
	commits map[*pipeline.Source]func(int64)
	free    [][]byte
}

func (e *countEmitter) NewSource(name string, commit func(int64)) *pipeline.Source {
	src := &pipeline.Source{Name: name}
	e.mu.Lock()
	if e.commits == nil {
		e.commits = make(map[*pipeline.Source]func(int64))
	}
	e.commits[src] = commit
	e.mu.Unlock()
	return src
}

func (e *countEmitter) NewChunk(_ context.Context, src *pipeline.Source, size int) (*pipeline.Chunk, error) {
	class := pipeline.BufClass(size)
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.free) - 1; i >= 0; i-- {
		if cap(e.free[i]) == class {
			buf := e.free[i]
			e.free = append(e.free[:i], e.free[i+1:]...)
			return &pipeline.Chunk{Source: src, Buf: buf[:0]}, nil
		}
	}
	return &pipeline.Chunk{Source: src, Buf: make([]byte, 0, class)}, nil
}

func (e *countEmitter) Emit(_ context.Context, c *pipeline.Chunk) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	buf := c.Buf
	for len(buf) > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			e.onLine(buf)
			break
		}
		e.onLine(buf[:i])
		buf = buf[i+1:]
	}
	if commit := e.commits[c.Source]; commit != nil {
		commit(c.End)
	}
	e.putLocked(c)
	return nil
}

func (e *countEmitter) Release(c *pipeline.Chunk) {
	e.mu.Lock()
	e.putLocked(c)
	e.mu.Unlock()
}

func (e *countEmitter) putLocked(c *pipeline.Chunk) {
	if len(e.free) < 64 {
		e.free = append(e.free, c.Buf[:0])
	}
	c.Buf = nil
}

// startTailship runs this package's Input on path into em until the
// returned stop is called. cfg defaults are the shipped ones.
func startTailship(b *testing.B, path string, em pipeline.Emitter) (stop func(), stats *pipeline.Stats) {
	b.Helper()
	dir := filepath.Dir(path)
	cfg := defaults()
	cfg.Include = []string{path}
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	store, _, err := checkpoint.Open(filepath.Join(dir, "checkpoints.json"))
	if err != nil {
		b.Fatal(err)
	}
	stats = &pipeline.Stats{}
	in, err := cfg.Build(pipeline.BuildContext{Name: "bench", Checkpoints: store, Stats: stats})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := in.Run(ctx, em); err != nil {
			b.Error(err)
		}
	}()
	return func() { cancel(); <-done }, stats
}

// nxadmConfig is how nxadm/tail is configured to follow a file across
// rotations: follow, reopen by name, inotify. CompleteLines (since v1.4.7)
// holds back a partial line until its newline arrives, as our reader does;
// without it nxadm/tail emits the partial line and then seeks to the end of
// the file, which can lose lines even without rotation.
// TAILSHIP_NXADM_COMPLETE_LINES=0 measures that default instead.
func nxadmConfig() tail.Config {
	return tail.Config{Follow: true, ReOpen: true, Poll: false,
		CompleteLines: os.Getenv("TAILSHIP_NXADM_COMPLETE_LINES") != "0",
		Logger:        tail.DiscardingLogger}
}

func BenchmarkReadFile(b *testing.B) {
	mb := envInt(b, "TAILSHIP_BENCH_FILE_MB", 256)
	dir := b.TempDir()
	path := filepath.Join(dir, "app.log")
	nlines, size := writeBenchFile(b, path, int64(mb)<<20)
	b.Logf("%s: %d lines, %d bytes, %.1f bytes/line", path, nlines, size, float64(size)/float64(nlines))

	// report runs read once per iteration and reports throughput and cost.
	report := func(b *testing.B, read func(b *testing.B)) {
		b.SetBytes(size)
		b.ResetTimer()
		cpu0, t0 := cpuTime(), time.Now()
		for range b.N {
			read(b)
		}
		wall, cpu := time.Since(t0), cpuTime()-cpu0
		b.StopTimer()
		gb := float64(size) * float64(b.N) / 1e9
		b.ReportMetric(float64(nlines)*float64(b.N)/wall.Seconds(), "lines/s")
		b.ReportMetric(cpu.Seconds()/gb, "cpu-s/GB")
	}
	// check is called with every line in order.
	type counter struct {
		n, bad int
	}
	check := func(c *counter, line []byte) {
		if parseSeq(line) != c.n {
			c.bad++
		}
		c.n++
	}
	verify := func(b *testing.B, c *counter) {
		if c.n != nlines || c.bad != 0 {
			b.Fatalf("read %d lines (want %d), %d out of sequence", c.n, nlines, c.bad)
		}
	}

	b.Run("nxadm", func(b *testing.B) {
		report(b, func(b *testing.B) {
			t, err := tail.TailFile(path, nxadmConfig())
			if err != nil {
				b.Fatal(err)
			}
			var c counter
			for l := range t.Lines {
				if l.Err != nil {
					b.Fatal(l.Err)
				}
				if parseSeq(l.Text) != c.n {
					c.bad++
				}
				c.n++
				if c.n == nlines {
					break
				}
			}
			t.Stop()
			t.Cleanup()
			verify(b, &c)
		})
	})

	// tailship: the package's Input (scan, open, block reader) into
	// countEmitter, which splits, checks and acknowledges each chunk in the
	// reader's goroutine: the reader path without the pipeline's workers and
	// outputs. Checkpoints are written to a store in memory (not flushed).
	b.Run("tailship", func(b *testing.B) {
		report(b, func(b *testing.B) {
			var c counter
			done := make(chan struct{})
			em := &countEmitter{onLine: func(l []byte) {
				check(&c, l)
				if c.n == nlines {
					close(done)
				}
			}}
			stop, _ := startTailship(b, path, em)
			<-done
			stop()
			os.Remove(filepath.Join(dir, "checkpoints.json"))
			verify(b, &c)
		})
	})

	// tailship-pipeline: the same Input through the real pipeline (two
	// split workers, a runner batching into an output that only counts):
	// what the agent does short of encoding and sending.
	b.Run("tailship-pipeline", func(b *testing.B) {
		report(b, func(b *testing.B) {
			stats := &pipeline.Stats{}
			out := &pipelinetest.Discard{}
			set := pipeline.DefaultOutputSettings()
			// The last, partial batch waits for batch.timeout (1 s by
			// default): keep that wait out of the throughput.
			set.Batch.Timeout = config.Dur(10 * time.Millisecond)
			r := pipeline.NewRunner("discard", out, set, nil, stats)
			p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 64 << 20, Stats: stats})
			abort, abortCancel := context.WithCancel(context.Background())
			defer abortCancel()
			r.Start(abort)
			p.Start(abort)
			st := p.NewStream("bench", 1<<20, nil, nil, []*pipeline.Runner{r})
			stop, _ := startTailship(b, path, st)
			for {
				if n, _, _ := out.Counts(); n >= int64(nlines) {
					break
				}
				time.Sleep(time.Millisecond)
			}
			stop()
			p.Drain()
			if err := r.Stop(context.Background()); err != nil {
				b.Error(err)
			}
			os.Remove(filepath.Join(dir, "checkpoints.json"))
			if n, _, _ := out.Counts(); n != int64(nlines) {
				b.Fatalf("delivered %d lines, want %d", n, nlines)
			}
		})
	})
}

// rotation is one way of rotating the file under a running writer.
type rotation struct {
	name string
	// keepOld: the writer goes on appending to the renamed file for this
	// long before it opens the new one (lines keep their rate meanwhile).
	keepOld time.Duration
	// background: rotate runs in its own goroutine while the writer goes
	// on, as logrotate does; otherwise the writer calls it between lines.
	background bool
	// rotate rotates path to rotated; f is the writer's file (O_APPEND).
	// It returns the file to write to next, or nil for the writer to open
	// path anew (after keepOld).
	rotate func(path, rotated string, f *os.File) (next *os.File, err error)
}

func openLog(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
}

func copyTruncate(path, rotated string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(rotated)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Truncate(path, 0)
}

var rotations = []rotation{
	{
		// logrotate's default (create): rename, then the app reopens at
		// once.
		name: "rename",
		rotate: func(path, rotated string, _ *os.File) (*os.File, error) {
			return nil, os.Rename(path, rotated)
		},
	},
	{
		// Rename, and the app reopens only after 20 ms (its SIGHUP
		// handler), appending to the renamed file meanwhile.
		name:    "rename-keep20ms",
		keepOld: 20 * time.Millisecond,
		rotate: func(path, rotated string, _ *os.File) (*os.File, error) {
			return nil, os.Rename(path, rotated)
		},
	},
	{
		// logrotate's copytruncate: copy, then truncate, while the app
		// goes on writing. Lines written between the end of the copy and
		// the truncation are in neither file (counted as gap); a reader
		// that read them before the truncation still has them.
		name:       "copytruncate",
		background: true,
		rotate: func(path, rotated string, f *os.File) (*os.File, error) {
			return f, copyTruncate(path, rotated)
		},
	},
	{
		// copytruncate with the writer paused from copy to truncation,
		// so every line is on disk: any loss is the reader's.
		name: "copytruncate-paused",
		rotate: func(path, rotated string, f *os.File) (*os.File, error) {
			return f, copyTruncate(path, rotated)
		},
	},
}

// rotationResult is what one run of a writer and a reader came to.
type rotationResult struct {
	written, rotations int
	rate               float64  // lines/s the writer achieved
	lost, dup, bad     int      // bad: lines without a valid sequence number
	gap                int      // of the lost, those in no file on disk afterwards
	reopens            int      // nxadm/tail: times it reopened the file
	lostRanges         [][2]int // the first few runs of lost sequence numbers
	lostBytes          int64    // bytes of the lost lines
	countedLost        int64    // tailship: lost_bytes{truncated,deleted} it counted itself
}

// seqCounter counts how often each sequence number was read.
type seqCounter struct {
	mu     sync.Mutex
	counts []uint16
	bad    int
	total  atomic.Int64
}

func (s *seqCounter) add(seq int) {
	s.mu.Lock()
	if seq < 0 || seq >= len(s.counts) {
		s.bad++
	} else if s.counts[seq] < 1<<16-1 {
		s.counts[seq]++
	}
	s.mu.Unlock()
	s.total.Add(1)
}

// writeRotating appends lines to path at rate lines/s for d, one write(2)
// per line, rotating every rotateEvery lines. It returns the lines written
// and the rotations done.
func writeRotating(path string, rot rotation, rate int, d time.Duration, rotateEvery int, lineLens []uint16) (written, rotations int, err error) {
	f, err := openLog(path)
	if err != nil {
		return 0, 0, err
	}
	defer func() { f.Close() }()
	var bg chan error // the background rotation in progress
	defer func() {
		if bg != nil {
			if e := <-bg; err == nil {
				err = e
			}
		}
	}()
	g := newLineGen()
	var buf []byte
	start := time.Now()
	total := int(float64(rate) * d.Seconds())
	var old *os.File // the renamed file, still written until reopenAt
	var reopenAt time.Time
	for seq := range total {
		if seq%100 == 0 { // pace in steps of 100 lines: 1 ms at 100,000 lines/s
			due := start.Add(time.Duration(float64(seq) / float64(rate) * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		}
		if old != nil && !time.Now().Before(reopenAt) {
			old.Close()
			old = nil
			if f, err = openLog(path); err != nil {
				return seq, rotations, err
			}
		}
		if seq > 0 && seq%rotateEvery == 0 {
			rotations++
			rotated := fmt.Sprintf("%s.%d", path, rotations)
			switch {
			case rot.background:
				if bg != nil {
					if err := <-bg; err != nil {
						return seq, rotations, err
					}
				}
				bg = make(chan error, 1)
				go func(f *os.File, done chan<- error) {
					_, err := rot.rotate(path, rotated, f)
					done <- err
				}(f, bg)
			default:
				next, err := rot.rotate(path, rotated, f)
				if err != nil {
					return seq, rotations, err
				}
				switch {
				case next != nil:
					f = next
				case rot.keepOld > 0:
					old, reopenAt = f, time.Now().Add(rot.keepOld)
				default:
					f.Close()
					if f, err = openLog(path); err != nil {
						return seq, rotations, err
					}
				}
			}
		}
		buf = g.append(buf[:0], seq)
		lineLens[seq] = uint16(len(buf))
		if _, err := f.Write(buf); err != nil {
			return seq, rotations, err
		}
	}
	return total, rotations, nil
}

// onDisk returns which of the first n sequence numbers are in path or its
// rotated copies (complete lines only).
func onDisk(b *testing.B, path string, n int) []bool {
	files, err := filepath.Glob(path + "*")
	if err != nil {
		b.Fatal(err)
	}
	seen := make([]bool, n)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			b.Fatal(err)
		}
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			if seq := parseSeq(data[:i]); seq >= 0 && seq < n {
				seen[seq] = true
			}
			data = data[i+1:]
		}
	}
	return seen
}

// lineCounter is an io.Writer for nxadm/tail's logger that counts its
// reopens.
type lineCounter struct {
	mu      sync.Mutex
	reopens int
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("Successfully reopened")) {
		c.mu.Lock()
		c.reopens++
		c.mu.Unlock()
	}
	return len(p), nil
}

func runRotation(b *testing.B, reader string, rot rotation) rotationResult {
	b.Helper()
	rate := envInt(b, "TAILSHIP_ROTATION_RATE", 100000)
	secs := envInt(b, "TAILSHIP_ROTATION_SECONDS", 3)
	const rotateEvery = 50000
	dir, err := os.MkdirTemp(b.TempDir(), "rot")
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "app.log")
	if f, err := openLog(path); err != nil {
		b.Fatal(err)
	} else {
		f.Close()
	}
	sc := &seqCounter{counts: make([]uint16, rate*secs+1)}
	var stop func()
	var nxlog lineCounter
	var tstats *pipeline.Stats
	switch reader {
	case "nxadm":
		cfg := nxadmConfig()
		cfg.Logger = log.New(&nxlog, "", 0)
		t, err := tail.TailFile(path, cfg)
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for l := range t.Lines {
				if l.Err != nil {
					sc.add(-1)
					continue
				}
				sc.add(parseSeq(l.Text))
			}
		}()
		stop = func() { t.Stop(); t.Cleanup(); <-done }
	case "tailship":
		// The shipped defaults: poll_interval 250ms, scan_interval 10s,
		// close_removed_after 5s, with inotify hints.
		stop, tstats = startTailship(b, path, &countEmitter{onLine: func(l []byte) { sc.add(parseSeq(l)) }})
	}
	time.Sleep(200 * time.Millisecond) // both readers have opened the file and set up inotify
	t0 := time.Now()
	lineLens := make([]uint16, rate*secs+1)
	written, rotations, err := writeRotating(path, rot, rate, time.Duration(secs)*time.Second, rotateEvery, lineLens)
	elapsed := time.Since(t0)
	if err != nil {
		stop()
		b.Fatal(err)
	}
	// The reader is done when it has read nothing new for 2 s (more than
	// tailship's 250 ms poll; nxadm/tail reads only on inotify events).
	last, quietSince := sc.total.Load(), time.Now()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		if n := sc.total.Load(); n != last {
			last, quietSince = n, time.Now()
		} else if time.Since(quietSince) >= 2*time.Second {
			break
		}
	}
	stop()
	disk := onDisk(b, path, written)
	nxlog.mu.Lock()
	reopens := nxlog.reopens
	nxlog.mu.Unlock()
	res := rotationResult{written: written, rotations: rotations, rate: float64(written) / elapsed.Seconds(), bad: sc.bad, reopens: reopens}
	if tstats != nil {
		res.countedLost = tstats.LostBytes("truncated").Load() + tstats.LostBytes("deleted").Load()
	}
	for seq, n := range sc.counts[:written] {
		switch {
		case n == 0:
			res.lost++
			if !disk[seq] {
				res.gap++
			}
			res.lostBytes += int64(lineLens[seq])
			if k := len(res.lostRanges); k > 0 && res.lostRanges[k-1][1] == seq-1 {
				res.lostRanges[k-1][1] = seq
			} else if k < 8 {
				res.lostRanges = append(res.lostRanges, [2]int{seq, seq})
			}
		case n > 1:
			res.dup += int(n) - 1
		}
	}
	for _, n := range sc.counts[written:] {
		res.bad += int(n)
	}
	return res
}

func BenchmarkRotation(b *testing.B) {
	for _, reader := range []string{"nxadm", "tailship"} {
		b.Run(reader, func(b *testing.B) {
			for _, rot := range rotations {
				b.Run(rot.name, func(b *testing.B) {
					var lost, gap, dup, bad, written, rotated, reopens int
					var rate float64
					for range b.N {
						r := runRotation(b, reader, rot)
						b.Logf("%s/%s: wrote %d lines at %.0f lines/s, %d rotations: lost %d (%d bytes; %d of them in no file on disk; runs %v), duplicated %d, malformed %d, nxadm reopens %d, tailship counted lost bytes %d",
							reader, rot.name, r.written, r.rate, r.rotations, r.lost, r.lostBytes, r.gap, r.lostRanges, r.dup, r.bad, r.reopens, r.countedLost)
						lost += r.lost
						gap += r.gap
						dup += r.dup
						bad += r.bad
						written += r.written
						rotated += r.rotations
						reopens += r.reopens
						rate += r.rate
					}
					n := float64(b.N)
					b.ReportMetric(float64(lost)/n, "lost/op")
					b.ReportMetric(float64(gap)/n, "gap/op")
					b.ReportMetric(float64(dup)/n, "dup/op")
					b.ReportMetric(float64(bad)/n, "malformed/op")
					b.ReportMetric(float64(written)/n, "written/op")
					b.ReportMetric(float64(rotated)/n, "rotations/op")
					if reader == "nxadm" {
						b.ReportMetric(float64(reopens)/n, "reopens/op")
					}
					b.ReportMetric(rate/n, "writer-lines/s")
				})
			}
		})
	}
}
