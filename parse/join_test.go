package parse_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// pool is a running pipeline with one stream, parsed by the named parser,
// routed to a capturing output.
type pool struct {
	t     *testing.T
	p     *pipeline.Pipeline
	run   *pipeline.Runner
	st    *pipeline.Stream
	stats *pipeline.Stats
	out   *pipelinetest.Capture
	abort context.CancelFunc
}

func newPool(t *testing.T, workers int, parser string, mod func(s *pipeline.InputSettings)) *pool {
	t.Helper()
	set := pipeline.DefaultInputSettings()
	set.Parser = parser
	if mod != nil {
		mod(&set)
	}
	ps := spec(t, parser, mod)
	stats := &pipeline.Stats{}
	p := pipeline.New(pipeline.Options{Workers: workers, Stats: stats})
	os := pipeline.DefaultOutputSettings()
	os.Inputs = []string{"in"}
	os.Batch.Timeout = config.Dur(2 * time.Millisecond)
	out := &pipelinetest.Capture{}
	run := pipeline.NewRunner("out", out, os, nil, stats)
	ctx, abort := context.WithCancel(context.Background())
	run.Start(ctx)
	p.Start(ctx)
	st := p.NewStream("in", int(set.MaxLineBytes), nil, nil, []*pipeline.Runner{run})
	st.SetParser(ps)
	pl := &pool{t: t, p: p, run: run, st: st, stats: stats, out: out, abort: abort}
	t.Cleanup(pl.stop)
	return pl
}

func (pl *pool) stop() {
	if pl.abort == nil {
		return
	}
	pl.p.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pl.run.Stop(ctx); err != nil {
		pl.t.Errorf("runner stop: %v", err)
	}
	pl.abort()
	pl.abort = nil
}

// emit sends chunks (each a list of lines) as one source and returns the
// source and the end offset of every chunk.
func (pl *pool) emit(chunks ...[]string) (*pipeline.Source, []int64) {
	pl.t.Helper()
	src := pl.st.NewSource("s", nil)
	var ends []int64
	var off int64
	for _, lines := range chunks {
		buf := []byte(strings.Join(lines, "\n") + "\n")
		c, err := pl.st.NewChunk(context.Background(), src, len(buf))
		if err != nil {
			pl.t.Fatal(err)
		}
		c.Buf = append(c.Buf, buf...)
		off += int64(len(buf))
		c.End = off
		ends = append(ends, off)
		if err := pl.st.Emit(context.Background(), c); err != nil {
			pl.t.Fatal(err)
		}
	}
	return src, ends
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

const ts = "2024-01-02T03:04:05.000000001Z"

func cri(stream, tag, msg string) string { return ts + " " + stream + " " + tag + " " + msg }

// TestCRIJoinAcrossChunks: partial lines of stdout and stderr interleave
// and span chunk boundaries, on 4 workers. Each stream's pieces become one
// full CRI line, in order, and every chunk is committed in the end.
func TestCRIJoinAcrossChunks(t *testing.T) {
	pl := newPool(t, 4, "cri", nil)
	var chunks [][]string
	var want []string
	for i := range 200 {
		// A 5-piece stdout line across 3 chunks with a 2-piece stderr
		// line inside it, then a plain line.
		out := fmt.Sprintf("out-%d:", i)
		chunks = append(chunks,
			[]string{cri("stdout", "F", fmt.Sprintf("plain-%d", i)), cri("stdout", "P", out+"a"), cri("stderr", "P", "err-a")},
			[]string{cri("stdout", "P", "b"), cri("stdout", "P", "c"), cri("stderr", "F", fmt.Sprintf("err-b-%d", i))},
			[]string{cri("stdout", "P", "d"), cri("stdout", "F", "e")},
		)
		want = append(want,
			cri("stdout", "F", fmt.Sprintf("plain-%d", i)),
			cri("stderr", "F", fmt.Sprintf("err-aerr-b-%d", i)),
			cri("stdout", "F", out+"abcde"))
	}
	src, ends := pl.emit(chunks...)
	pl.stop()
	got := pl.out.Lines()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("line %d: got %q, want %q (%d lines, want %d)", i, got[i], want[i], len(got), len(want))
			}
		}
		t.Fatalf("got %d lines, want %d", len(got), len(want))
	}
	if c := src.Committed(); c != ends[len(ends)-1] {
		t.Errorf("committed %d, want %d", c, ends[len(ends)-1])
	}
	if n := src.InFlight(); n != 0 {
		t.Errorf("%d chunks in flight", n)
	}
	if n := pl.stats.ParseErrors.Load(); n != 0 {
		t.Errorf("%d parse errors", n)
	}
}

// TestDockerJoin: docker pieces (log without a trailing newline) merge into
// one valid json-file line; a malformed line in between is shipped raw and
// does not break the group.
func TestDockerJoin(t *testing.T) {
	pl := newPool(t, 2, "docker", nil)
	d := func(log, stream string) string {
		return fmt.Sprintf(`{"log":%q,"stream":%q,"time":%q}`, log, stream, ts)
	}
	src, ends := pl.emit(
		[]string{d("first \"quoted\" ", "stdout"), "not json"},
		[]string{d("second\t", "stdout")},
		[]string{d("end\n", "stdout"), d("alone\n", "stderr")},
	)
	pl.stop()
	want := []string{"not json", d("first \"quoted\" second\tend\n", "stdout"), d("alone\n", "stderr")}
	if got := pl.out.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if c := src.Committed(); c != ends[2] {
		t.Errorf("committed %d, want %d", c, ends[2])
	}
	if n := pl.stats.ParseErrors.Load(); n != 1 {
		t.Errorf("ParseErrors = %d, want 1", n)
	}
}

// TestJoinCap: a reassembled line is cut to max_line_bytes and counted once.
func TestJoinCap(t *testing.T) {
	pl := newPool(t, 1, "cri", func(s *pipeline.InputSettings) { s.MaxLineBytes = 100 })
	piece := strings.Repeat("x", 40)
	pl.emit([]string{cri("stdout", "P", piece), cri("stdout", "P", piece), cri("stdout", "P", piece), cri("stdout", "F", "tail")})
	pl.stop()
	got := pl.out.Lines()
	if len(got) != 1 || got[0] != cri("stdout", "F", strings.Repeat("x", 100)) {
		t.Fatalf("got %q", got)
	}
	if n := pl.stats.LinesTruncated.Load(); n != 1 {
		t.Errorf("LinesTruncated = %d, want 1", n)
	}
}

// TestDockerJoinCap: docker pieces are cut to max_line_bytes too, counted
// once, and the rebuilt line is valid json-file with the cut message and
// its newline, the final piece's stream and time.
func TestDockerJoinCap(t *testing.T) {
	pl := newPool(t, 1, "docker", func(s *pipeline.InputSettings) { s.MaxLineBytes = 100 })
	d := func(log, stream string) string {
		return fmt.Sprintf(`{"log":%q,"stream":%q,"time":%q}`, log, stream, ts)
	}
	// Each line stays under the cap (json-file adds ~70 bytes); together
	// the pieces pass it.
	piece := strings.Repeat("x", 25)
	pl.emit([]string{d(piece, "stdout"), d(piece, "stdout"), d(piece, "stdout"), d(piece, "stdout"), d(piece, "stdout"), d("tail\n", "stdout"), d("short\n", "stdout")})
	pl.stop()
	want := []string{d(strings.Repeat("x", 100)+"\n", "stdout"), d("short\n", "stdout")}
	if got := pl.out.Lines(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if n := pl.stats.LinesTruncated.Load(); n != 1 {
		t.Errorf("LinesTruncated = %d, want 1", n)
	}
}

// TestJoinHoldsCommit: a chunk whose partial line is not finished is not
// committed (a crash must re-read the pieces); when the rest arrives, the
// merged line is delivered and both chunks commit. A source that ends
// mid-line gives the pieces up after partial_timeout and commits, counted.
func TestJoinHoldsCommit(t *testing.T) {
	pl := newPool(t, 2, "cri", func(s *pipeline.InputSettings) { s.Parse.PartialTimeout = config.Dur(300 * time.Millisecond) })
	src := pl.st.NewSource("s", nil)
	var off int64
	emit := func(lines ...string) int64 {
		buf := []byte(strings.Join(lines, "\n") + "\n")
		c, err := pl.st.NewChunk(context.Background(), src, len(buf))
		if err != nil {
			t.Fatal(err)
		}
		c.Buf = append(c.Buf, buf...)
		off += int64(len(buf))
		c.End = off
		if err := pl.st.Emit(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		return off
	}
	end1 := emit(cri("stdout", "F", "one"))
	eventually(t, "first chunk committed", func() bool { return src.Committed() == end1 })
	emit(cri("stdout", "F", "two"), cri("stdout", "P", "three-"))
	eventually(t, "line two delivered", func() bool { return pl.out.Len() == 2 })
	time.Sleep(50 * time.Millisecond)
	if c := src.Committed(); c != end1 {
		t.Fatalf("committed %d past a chunk with an unfinished line (want %d)", c, end1)
	}
	end3 := emit(cri("stdout", "F", "end"))
	eventually(t, "all committed", func() bool { return src.Committed() == end3 })
	if got := pl.out.Lines(); got[2] != cri("stdout", "F", "three-end") {
		t.Fatalf("merged line = %q", got[2])
	}

	// The file ends mid-line: held until partial_timeout, then given up.
	end4 := emit(cri("stderr", "P", "never finished"))
	time.Sleep(100 * time.Millisecond)
	if c := src.Committed(); c != end3 {
		t.Fatalf("committed %d before partial_timeout (want %d)", c, end3)
	}
	eventually(t, "given up after partial_timeout", func() bool { return src.Committed() == end4 })
	if n := pl.stats.DroppedByReason()["partial_timeout"]; n != 1 {
		t.Errorf("partial_timeout drops = %d, want 1", n)
	}
	if n := pl.out.Len(); n != 3 {
		t.Errorf("%d lines delivered, want 3", n)
	}
}

// TestCRIJoinMatchesModel: random interleavings of stdout and stderr
// pieces, cut into chunks of random sizes and parsed on 3 workers, give
// exactly what joining the lines one by one in file order gives.
func TestCRIJoinMatchesModel(t *testing.T) {
	for seed := range int64(20) {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		var lines, want []string
		pending := map[string]string{}
		open := map[string]bool{}
		emitLine := func(stream string, final bool) {
			msg := fmt.Sprintf("%s%d", stream[3:], len(lines))
			tag := "P"
			if final {
				tag = "F"
				want = append(want, cri(stream, "F", pending[stream]+msg))
				pending[stream], open[stream] = "", false
			} else {
				pending[stream] += msg
				open[stream] = true
			}
			lines = append(lines, cri(stream, tag, msg))
		}
		for range 300 {
			stream := []string{"stdout", "stderr"}[rng.IntN(2)]
			emitLine(stream, rng.IntN(3) == 0)
		}
		for _, stream := range []string{"stdout", "stderr"} {
			if open[stream] {
				emitLine(stream, true)
			}
		}
		var chunks [][]string
		for rest := lines; len(rest) > 0; {
			n := min(1+rng.IntN(10), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		pl := newPool(t, 3, "cri", nil)
		src, ends := pl.emit(chunks...)
		pl.stop()
		if got := pl.out.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("seed %d: got\n%s\nwant\n%s", seed, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if c := src.Committed(); c != ends[len(ends)-1] {
			t.Fatalf("seed %d: committed %d, want %d", seed, c, ends[len(ends)-1])
		}
	}
}
