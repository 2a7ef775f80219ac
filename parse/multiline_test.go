package parse_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

// seqRecords makes n sequence-numbered records of 1 to maxLines lines
// each: a dated first line, then indented Java-style frames.
func seqRecords(rng *rand.Rand, n, maxLines int) [][]string {
	recs := make([][]string, n)
	for i := range recs {
		r := []string{fmt.Sprintf("2024-01-02 03:04:05 ERROR rec=%06d failed", i)}
		for k := range rng.IntN(maxLines) {
			r = append(r, fmt.Sprintf("\tat com.example.Rec%06d.frame%d(Rec.java:%d)", i, k, k+1))
		}
		recs[i] = r
	}
	return recs
}

// chunked cuts lines into chunks of 1 to maxChunk lines.
func chunked(rng *rand.Rand, lines []string, maxChunk int) [][]string {
	var chunks [][]string
	for rest := lines; len(rest) > 0; {
		n := min(1+rng.IntN(maxChunk), len(rest))
		chunks = append(chunks, rest[:n])
		rest = rest[n:]
	}
	return chunks
}

func startPattern(timeout time.Duration) func(s *pipeline.InputSettings) {
	return func(s *pipeline.InputSettings) {
		s.Multiline.StartPattern = `^\d{4}-\d{2}-\d{2} `
		s.Multiline.Timeout = config.Dur(timeout)
	}
}

// TestMultilineOrderAcrossWorkers: sequence-numbered records of 1 to 8
// lines, cut into chunks at random places and parsed on 4 workers, arrive
// every one whole, once, in order; the last one is shipped when the
// source goes quiet. Every checkpoint the source reports lies between two
// records (a restart there never begins inside one) and comes after every
// record before it was delivered.
//
// With parser = "cri", a quarter of the lines (first lines included) are
// split by the runtime into P pieces: records are joined from the
// reassembled lines, and no checkpoint falls between the pieces of a
// record's line either.
func TestMultilineOrderAcrossWorkers(t *testing.T) {
	for seed := range uint64(12) {
		parser := []string{"none", "cri"}[seed%2]
		rng := rand.New(rand.NewPCG(seed, 2))
		recs := seqRecords(rng, 1500, 8)
		var lines []string
		boundary := map[int64]int{0: 0} // offset where record i begins -> i
		var off int64
		for i, r := range recs {
			boundary[off] = i
			for k, l := range r {
				if parser == "cri" {
					full := cri("stderr", "F", l)
					r[k] = full // what the joiner rebuilds
					if rng.IntN(4) == 0 {
						cut1 := 1 + rng.IntN(len(l)/2)
						cut2 := cut1 + 1 + rng.IntN(len(l)-cut1-1)
						for _, piece := range []string{cri("stderr", "P", l[:cut1]), cri("stderr", "P", l[cut1:cut2]), cri("stderr", "F", l[cut2:])} {
							lines = append(lines, piece)
							off += int64(len(piece)) + 1
						}
						continue
					}
					l = full
				}
				lines = append(lines, l)
				off += int64(len(l)) + 1
			}
		}
		boundary[off] = len(recs)
		total := off

		pl := newPool(t, 4, parser, startPattern(150*time.Millisecond))
		var mu sync.Mutex
		var bad []string
		var commits []int64
		src := pl.st.NewSource("s", func(o int64) {
			// Runs after the output returned for every chunk up to o.
			mu.Lock()
			defer mu.Unlock()
			commits = append(commits, o)
			i, ok := boundary[o]
			if !ok {
				bad = append(bad, fmt.Sprintf("checkpoint %d is inside a record", o))
				return
			}
			if n := pl.out.Len(); n < i {
				bad = append(bad, fmt.Sprintf("checkpoint %d (before record %d) with only %d records delivered", o, i, n))
			}
		})
		var end int64
		for _, ls := range chunked(rng, lines, 20) {
			buf := []byte(strings.Join(ls, "\n") + "\n")
			c, err := pl.st.NewChunk(context.Background(), src, len(buf))
			if err != nil {
				t.Fatal(err)
			}
			c.Buf = append(c.Buf, buf...)
			end += int64(len(buf))
			c.End = end
			if err := pl.st.Emit(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "everything committed", func() bool { return src.Committed() == total })
		pl.stop()

		got := pl.out.Lines()
		for i := range min(len(got), len(recs)) {
			if want := strings.Join(recs[i], "\n"); got[i] != want {
				t.Fatalf("seed %d: record %d:\ngot  %q\nwant %q", seed, i, got[i], want)
			}
		}
		if len(got) != len(recs) {
			t.Fatalf("seed %d: %d records delivered, want %d", seed, len(got), len(recs))
		}
		mu.Lock()
		if len(bad) > 0 {
			t.Fatalf("seed %d: %s", seed, strings.Join(bad, "; "))
		}
		if !slices.IsSorted(commits) || len(commits) < 2 {
			t.Fatalf("seed %d: checkpoints %v", seed, commits)
		}
		mu.Unlock()
		if n := src.InFlight(); n != 0 {
			t.Errorf("seed %d: %d chunks in flight", seed, n)
		}
	}
}

// TestMultilineHoldsCommit: a record whose next line has not come is not
// shipped and the checkpoint stays at its first byte, so a crash re-reads
// it whole and nothing before it; when
// the source stays quiet for the timeout the record is shipped whole and
// committed. A record continued after that is a new record.
func TestMultilineHoldsCommit(t *testing.T) {
	pl := newPool(t, 2, "none", startPattern(time.Second))
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
	// The checkpoint goes to the first byte of record two, not past it.
	two := int64(len("2024-01-01 one\n"))
	emit("2024-01-01 one", "2024-01-01 two", "  two.1")
	eventually(t, "record one delivered and committed", func() bool { return pl.out.Len() == 1 && src.Committed() == two })
	time.Sleep(100 * time.Millisecond)
	if c := src.Committed(); c != two {
		t.Fatalf("committed %d while record two is open (want %d, its start)", c, two)
	}
	end2 := emit("  two.2")
	time.Sleep(100 * time.Millisecond)
	if c, n := src.Committed(), pl.out.Len(); c != two || n != 1 {
		t.Fatalf("committed %d with %d records before the timeout", c, n)
	}
	eventually(t, "record two shipped on timeout", func() bool { return src.Committed() == end2 })
	if got := pl.out.Lines(); len(got) != 2 || got[1] != "2024-01-01 two\n  two.1\n  two.2" {
		t.Fatalf("got %q", got)
	}
	end3 := emit("  late", "2024-01-01 three")
	eventually(t, "late line shipped", func() bool { return pl.out.Len() == 3 })
	eventually(t, "record three shipped on timeout", func() bool { return src.Committed() == end3 })
	if got := pl.out.Lines(); len(got) != 4 || got[2] != "  late" || got[3] != "2024-01-01 three" {
		t.Fatalf("got %q", got)
	}
}

// TestMultilineDrainKeepsPending: a stop with a record open ships what
// was complete and leaves the checkpoint at the open record's first
// byte, so the next start reads that record again, whole, and nothing
// else.
func TestMultilineDrainKeepsPending(t *testing.T) {
	pl := newPool(t, 2, "none", startPattern(time.Hour))
	src, ends := pl.emit([]string{"2024-01-01 a", "  a.1"}, []string{"2024-01-01 b", "  b.1"}, []string{"  b.2"})
	eventually(t, "record a delivered", func() bool { return pl.out.Len() == 1 })
	pl.stop()
	if got := pl.out.Lines(); len(got) != 1 || got[0] != "2024-01-01 a\n  a.1" {
		t.Fatalf("got %q", got)
	}
	if c := src.Committed(); c != ends[0] {
		t.Fatalf("committed %d, want %d (the end of record a)", c, ends[0])
	}
}

// TestMultilineLimits: a record that would pass max_lines or max_bytes is
// cut there and the line that did not fit begins the next record; nothing
// is lost and each cut is counted.
func TestMultilineLimits(t *testing.T) {
	pl := newPool(t, 1, "none", func(s *pipeline.InputSettings) {
		startPattern(50 * time.Millisecond)(s)
		s.Multiline.MaxLines = 3
		s.Multiline.MaxBytes = 64
	})
	long := "  " + strings.Repeat("y", 40)
	src, ends := pl.emit([]string{"2024-01-01 a", "  1", "  2", "  3", "  4", "2024-01-01 b", long, long, "2024-01-01 c"})
	eventually(t, "committed", func() bool { return src.Committed() == ends[0] })
	pl.stop()
	want := []string{"2024-01-01 a\n  1\n  2", "  3\n  4", "2024-01-01 b\n" + long, long, "2024-01-01 c"}
	if got := pl.out.Lines(); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if n := pl.stats.RecordsSplit.Load(); n != 2 {
		t.Errorf("RecordsSplit = %d, want 2", n)
	}
}

// Real-world traces, as the JVM, the Go runtime and CPython print them.
var (
	javaTrace = []string{
		`2024-05-01 12:00:00.123 ERROR 4242 --- [nio-8080-exec-1] o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() threw exception`,
		`java.lang.IllegalStateException: Failed to load ApplicationContext`,
		`	at org.springframework.test.context.cache.DefaultCacheAwareContextLoaderDelegate.loadContext(DefaultCacheAwareContextLoaderDelegate.java:132)`,
		`	at com.example.App.main(App.java:10) ~[classes/:na]`,
		`Caused by: org.springframework.beans.factory.BeanCreationException: Error creating bean with name 'dataSource'`,
		`	at org.springframework.beans.factory.support.AbstractAutowireCapableBeanFactory.doCreateBean(AbstractAutowireCapableBeanFactory.java:628)`,
		`	... 42 common frames omitted`,
		`Caused by: java.net.ConnectException: Connection refused`,
		`	at java.base/sun.nio.ch.Net.pollConnect(Native Method)`,
		`	Suppressed: java.io.IOException: close failed`,
		`		at com.example.Db.close(Db.java:77)`,
		`	... 7 more`,
	}
	javaUncaught = []string{
		`Exception in thread "main" java.lang.NullPointerException: Cannot invoke "String.length()" because "s" is null`,
		`	at Main.main(Main.java:5)`,
	}
	goPanic = []string{
		`panic: runtime error: index out of range [5] with length 3`,
		``,
		`goroutine 1 [running]:`,
		`main.lookup(...)`,
		`	/home/app/main.go:12`,
		`main.main()`,
		`	/home/app/main.go:8 +0x1d`,
		`created by main.start in goroutine 1`,
		`	/home/app/main.go:20 +0x25`,
		`exit status 2`,
	}
	pythonTrace = []string{
		`ERROR:root:request failed`,
		`Traceback (most recent call last):`,
		`  File "/app/server.py", line 10, in handle`,
		`    data = json.loads(body)`,
		`           ^^^^^^^^^^^^^^^^`,
		`json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)`,
		``,
		`During handling of the above exception, another exception occurred:`,
		``,
		`Traceback (most recent call last):`,
		`  File "/app/server.py", line 12, in handle`,
		`    raise ValueError("bad request")`,
		`ValueError: bad request`,
	}
)

// TestMultilinePresets: each preset keeps a real trace whole and leaves
// the ordinary lines around it alone, however the lines are cut into
// chunks.
func TestMultilinePresets(t *testing.T) {
	cases := []struct {
		preset string
		lines  []string
		want   [][]string
	}{
		{"java", slices.Concat([]string{"2024-05-01 12:00:00 INFO started", "Error: not a java exception line"}, javaTrace, javaUncaught, []string{"2024-05-01 12:00:01 INFO next"}),
			[][]string{{"2024-05-01 12:00:00 INFO started"}, {"Error: not a java exception line"}, javaTrace, javaUncaught, {"2024-05-01 12:00:01 INFO next"}}},
		{"go", slices.Concat([]string{"2024/05/01 12:00:00 serving"}, goPanic, []string{"2024/05/01 12:00:05 restarted"}),
			[][]string{{"2024/05/01 12:00:00 serving"}, goPanic, {"2024/05/01 12:00:05 restarted"}}},
		{"python", slices.Concat([]string{"INFO:root:ok"}, pythonTrace, pythonTrace[1:], []string{"INFO:root:next", "  indented but not a traceback"}),
			[][]string{{"INFO:root:ok"}, pythonTrace, pythonTrace[1:], {"INFO:root:next"}, {"  indented but not a traceback"}}},
	}
	for _, tc := range cases {
		for seed := range uint64(5) {
			rng := rand.New(rand.NewPCG(seed, 3))
			pl := newPool(t, 3, "none", func(s *pipeline.InputSettings) {
				s.Multiline.Preset = tc.preset
				s.Multiline.Timeout = config.Dur(50 * time.Millisecond)
			})
			src, ends := pl.emit(chunked(rng, tc.lines, 4)...)
			eventually(t, "committed", func() bool { return src.Committed() == ends[len(ends)-1] })
			pl.stop()
			var want []string
			for _, r := range tc.want {
				want = append(want, strings.Join(r, "\n"))
			}
			if got := pl.out.Lines(); !slices.Equal(got, want) {
				t.Fatalf("%s seed %d:\ngot  %q\nwant %q", tc.preset, seed, got, want)
			}
		}
	}
}

// TestMultilineCRI: a Java trace written by a container runtime, with a
// long frame split into P pieces and stdout lines interleaved, becomes
// one event per stream: the pieces are joined first, then the trace, on
// the parsed message; the raw event is the CRI lines as read.
func TestMultilineCRI(t *testing.T) {
	pl := newPool(t, 4, "cri", func(s *pipeline.InputSettings) {
		s.Multiline.Preset = "java"
		s.Multiline.Timeout = config.Dur(50 * time.Millisecond)
	})
	pl.out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
		return string(codec.AppendJSON(nil, src, ev))
	}
	frame := "\tat com.example.VeryLong" + strings.Repeat("Name", 30) + ".run(App.java:1)"
	src, ends := pl.emit(
		[]string{cri("stderr", "F", "2024-05-01 ERROR boom"), cri("stdout", "F", "GET /health 200")},
		[]string{cri("stderr", "F", "java.lang.IllegalStateException: bad"), cri("stderr", "P", frame[:50])},
		[]string{cri("stdout", "F", "GET /health 200 again"), cri("stderr", "P", frame[50:100])},
		[]string{cri("stderr", "F", frame[100:]), cri("stderr", "F", "\t... 3 more")},
		[]string{cri("stderr", "F", "2024-05-01 INFO recovered")},
	)
	eventually(t, "committed", func() bool { return src.Committed() == ends[len(ends)-1] })
	pl.stop()
	// Order holds per stream; the streams' records are shipped as each
	// completes.
	var got []string
	for _, stream := range []string{"stdout", "stderr"} {
		for _, l := range pl.out.Lines() {
			if strings.Contains(l, `"stream":"`+stream+`"`) {
				got = append(got, l)
			}
		}
	}
	msg, _ := codecString("2024-05-01 ERROR boom\njava.lang.IllegalStateException: bad\n" + frame + "\n\t... 3 more")
	want := []string{
		`{"time":"` + ts + `","stream":"stdout","message":"GET /health 200"}`,
		`{"time":"` + ts + `","stream":"stdout","message":"GET /health 200 again"}`,
		`{"time":"` + ts + `","stream":"stderr","message":` + msg + `}`,
		`{"time":"` + ts + `","stream":"stderr","message":"2024-05-01 INFO recovered"}`,
	}
	if !slices.Equal(got, want) || pl.out.Len() != len(want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(pl.out.Lines(), "\n"), strings.Join(want, "\n"))
	}
	if n := pl.stats.ParseErrors.Load(); n != 0 {
		t.Errorf("%d parse errors", n)
	}
}

// codecString is s as a JSON string, the way the encoder writes it.
func codecString(s string) (string, error) {
	ev := pipeline.Event{Raw: []byte(s)}
	out := string(codec.AppendJSON(nil, nil, &ev))
	return strings.TrimSuffix(strings.TrimPrefix(out, `{"message":`), "}"), nil
}

// TestMultilineConfig: each mistake names its key.
func TestMultilineConfig(t *testing.T) {
	cases := []struct {
		mod  func(m *pipeline.MultilineSettings)
		want string
	}{
		{func(m *pipeline.MultilineSettings) { m.MaxLines = 10 }, "multiline: needs start_pattern"},
		{func(m *pipeline.MultilineSettings) { m.Preset = "cobol" }, `multiline.preset: unknown preset "cobol"`},
		{func(m *pipeline.MultilineSettings) { m.Preset = "java"; m.StartPattern = "x" }, "multiline.preset: replaces"},
		{func(m *pipeline.MultilineSettings) { m.StartPattern = "x"; m.ContinuePattern = "y" }, "multiline.start_pattern: and continue_pattern"},
		{func(m *pipeline.MultilineSettings) { m.StartPattern = "(" }, "multiline.start_pattern: error parsing regexp"},
		{func(m *pipeline.MultilineSettings) { m.ContinuePattern = "[" }, "multiline.continue_pattern: error parsing regexp"},
		{func(m *pipeline.MultilineSettings) { m.Preset = "go"; m.Negate = true }, "multiline.negate"},
		{func(m *pipeline.MultilineSettings) { m.Preset = "go"; m.MaxLines = 1 }, "multiline.max_lines"},
		{func(m *pipeline.MultilineSettings) { m.Preset = "go"; m.MaxBytes = 2 }, "multiline.max_bytes"},
		{func(m *pipeline.MultilineSettings) { m.Preset = "go"; m.Timeout = config.Dur(0) }, "multiline.timeout"},
	}
	for _, parser := range []string{"none", "cri"} {
		for _, tc := range cases {
			s := pipeline.DefaultInputSettings()
			s.Parser = parser
			tc.mod(&s.Multiline)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: got %v, want %q", parser, err, tc.want)
			}
		}
	}
	s := pipeline.DefaultInputSettings()
	s.Multiline.ContinuePattern = `^\s`
	s.Multiline.Negate = true
	if err := s.Validate(); err != nil {
		t.Errorf("valid settings: %v", err)
	}
}

// TestMultilineContinueNegate: continue_pattern with negate joins every
// line that does not match to the record before it (Filebeat's
// `negate: true, match: after`).
func TestMultilineContinueNegate(t *testing.T) {
	pl := newPool(t, 2, "none", func(s *pipeline.InputSettings) {
		s.Multiline.ContinuePattern = `^\[`
		s.Multiline.Negate = true
		s.Multiline.Timeout = config.Dur(50 * time.Millisecond)
	})
	src, ends := pl.emit([]string{"[1] a", "x", "y"}, []string{"[2] b", "[3] c", "z"})
	eventually(t, "committed", func() bool { return src.Committed() == ends[1] })
	pl.stop()
	// negate on continue_pattern: lines NOT matching `^\[` continue.
	want := []string{"[1] a\nx\ny", "[2] b", "[3] c\nz"}
	if got := pl.out.Lines(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestMultilineStartNegate: start_pattern with negate turns the pattern
// around: a line that does NOT match begins a record, and matching lines
// continue it. A matching line with no record open (the file's first)
// still begins one, and records span chunks.
func TestMultilineStartNegate(t *testing.T) {
	pl := newPool(t, 2, "none", func(s *pipeline.InputSettings) {
		s.Multiline.StartPattern = `^\s`
		s.Multiline.Negate = true
		s.Multiline.Timeout = config.Dur(50 * time.Millisecond)
	})
	src, ends := pl.emit([]string{"  orphan", "a", " b"}, []string{"\tc", "d", "e"}, []string{" f", "g"})
	eventually(t, "committed", func() bool { return src.Committed() == ends[2] })
	pl.stop()
	want := []string{"  orphan", "a\n b\n\tc", "d", "e\n f", "g"}
	if got := pl.out.Lines(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestMultilineDocker: a Go panic written through Docker's json-file
// driver, one piece split without its newline, becomes one event whose
// message is the panic's lines; the stdout line around it stays alone.
func TestMultilineDocker(t *testing.T) {
	pl := newPool(t, 3, "docker", func(s *pipeline.InputSettings) {
		s.Multiline.Preset = "go"
		s.Multiline.Timeout = config.Dur(50 * time.Millisecond)
	})
	pl.out.Render = func(src *pipeline.Source, ev *pipeline.Event) string {
		return string(codec.AppendJSON(nil, src, ev))
	}
	d := func(log, stream string) string {
		return fmt.Sprintf(`{"log":%q,"stream":%q,"time":%q}`, log, stream, ts)
	}
	var lines []string
	for _, l := range goPanic {
		lines = append(lines, d(l+"\n", "stderr"))
	}
	// The runtime split the first frame line: a piece without "\n".
	lines[3] = d(goPanic[3][:5], "stderr")
	lines = slices.Insert(lines, 4, d(goPanic[3][5:]+"\n", "stderr"))
	lines = slices.Insert(lines, 2, d("GET /health 200\n", "stdout"))
	src, ends := pl.emit(chunked(rand.New(rand.NewPCG(1, 1)), append([]string{d("started\n", "stderr")}, lines...), 3)...)
	eventually(t, "committed", func() bool { return src.Committed() == ends[len(ends)-1] })
	pl.stop()
	panicMsg, _ := codecString(strings.Join(goPanic, "\n"))
	var stderr, stdout []string
	for _, l := range pl.out.Lines() {
		if strings.Contains(l, `"stream":"stdout"`) {
			stdout = append(stdout, l)
		} else {
			stderr = append(stderr, l)
		}
	}
	want := []string{
		`{"time":"` + ts + `","stream":"stderr","message":"started"}`,
		`{"time":"` + ts + `","stream":"stderr","message":` + panicMsg + `}`,
	}
	if !slices.Equal(stderr, want) || len(stdout) != 1 {
		t.Fatalf("stderr\n%s\nwant\n%s\nstdout %q", strings.Join(stderr, "\n"), strings.Join(want, "\n"), stdout)
	}
}
