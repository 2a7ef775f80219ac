package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	_ "github.com/tailship/tailship/parse" // registers the parsers
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// renderJSON records an event as the JSON encoder writes it, plus its time.
func renderJSON(src *pipeline.Source, ev *pipeline.Event) string {
	b := codec.AppendJSON(nil, src, ev)
	if !ev.Time.IsZero() {
		b = append(b, " @"+ev.Time.UTC().Format(time.RFC3339Nano)...)
	}
	return string(b)
}

// emitLines emits lines as one source in chunks of k lines, the way an
// input does, and returns the source and its total size.
func emitLines(t *testing.T, st *pipeline.Stream, name string, lines []string, k int) (*pipeline.Source, int64) {
	src := st.NewSource(name, nil)
	var off int64
	for i := 0; i < len(lines); i += k {
		var buf []byte
		for _, l := range lines[i:min(i+k, len(lines))] {
			buf = append(buf, l...)
			buf = append(buf, '\n')
		}
		c, err := st.NewChunk(context.Background(), src, len(buf))
		if err != nil {
			t.Error(err)
			return src, off
		}
		c.Buf = append(c.Buf, buf...)
		off += int64(len(buf))
		c.End = off
		if err := st.Emit(context.Background(), c); err != nil {
			t.Error(err)
			return src, off
		}
	}
	return src, off
}

// TestJSONParserThroughPool: three sources of JSON lines, with malformed
// lines mixed in, run through 4 workers with parser = "json" and a
// timestamp. Every line arrives once, in order per source, with every
// field typed as written (strings, numbers, booleans, nested objects), the
// event time set, and the malformed lines shipped raw with parse_error and
// counted.
func TestJSONParserThroughPool(t *testing.T) {
	const n = 20_000
	out := &pipelinetest.Capture{Render: renderJSON}
	r := newRig(t, rigOptions{workers: 4, memory: 1 << 20}, outSpec{"out", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.Timeout.UnmarshalText([]byte("5ms"))
	})})
	set := pipeline.DefaultInputSettings()
	set.Parser = "json"
	set.Parse.Timestamp = pipeline.TimestampSettings{Field: "ts", Layout: time.RFC3339Nano}
	ps, err := pipeline.BuildParser(&set)
	if err != nil {
		t.Fatal(err)
	}
	r.stream.SetParser(ps)

	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	malformed := func(seq int) bool { return seq%97 == 13 }
	sources := []string{"alpha", "beta", "gamma"}
	type emitted struct {
		src  *pipeline.Source
		size int64
	}
	done := make(chan emitted)
	for _, name := range sources {
		lines := make([]string, n)
		for seq := range lines {
			if malformed(seq) {
				lines[seq] = fmt.Sprintf(`{"src":%q,"seq":%d,`, name, seq)
				continue
			}
			lines[seq] = fmt.Sprintf(`{"ts":%q,"src":%q,"seq":%d,"msg":"line \"%d\"\tok","ok":%t,"ratio":%d.5,"ctx":{"a":[%d]}}`,
				base.Add(time.Duration(seq)*time.Millisecond).Format(time.RFC3339Nano), name, seq, seq, seq%2 == 0, seq, seq)
		}
		go func() {
			src, size := emitLines(t, r.stream, name, lines, 173)
			done <- emitted{src, size}
		}()
	}
	var srcs []emitted
	for range sources {
		srcs = append(srcs, <-done)
	}
	r.stop()
	for _, e := range srcs {
		if got := e.src.Committed(); got != e.size {
			t.Errorf("source %s committed %d, want %d", e.src.Name, got, e.size)
		}
	}

	next := map[string]int{}
	for _, line := range out.Lines() {
		js, at, _ := strings.Cut(line, " @")
		var m map[string]any
		if err := json.Unmarshal([]byte(js), &m); err != nil {
			t.Fatalf("output is not JSON: %v: %s", err, js)
		}
		if pe, ok := m["parse_error"]; ok {
			msg := m["message"].(string)
			var src string
			var seq int
			if _, err := fmt.Sscanf(msg, `{"src":%q,"seq":%d,`, &src, &seq); err != nil {
				t.Fatalf("malformed line shipped changed: %q", msg)
			}
			if !malformed(seq) || next[src] != seq || !strings.HasPrefix(pe.(string), "json:") || at != "" {
				t.Fatalf("unexpected parse_error event %s (next %s seq %d)", line, src, next[src])
			}
			next[src]++
			continue
		}
		src := m["src"].(string)
		seq := int(m["seq"].(float64))
		if seq != next[src] {
			t.Fatalf("source %s: got seq %d, want %d", src, seq, next[src])
		}
		next[src]++
		want := map[string]any{
			"msg": fmt.Sprintf("line \"%d\"\tok", seq), "ok": seq%2 == 0, "ratio": float64(seq) + 0.5,
			"ctx": map[string]any{"a": []any{float64(seq)}},
		}
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Fatalf("source %s seq %d: %s = %#v, want %#v", src, seq, k, m[k], v)
			}
		}
		if wantAt := base.Add(time.Duration(seq) * time.Millisecond).Format(time.RFC3339Nano); at != wantAt {
			t.Fatalf("source %s seq %d: event time %q, want %q", src, seq, at, wantAt)
		}
		// The fields stand for the line: it is not repeated as "message"
		// (parse.keep_raw would keep it).
		if msg, ok := m["message"]; ok {
			t.Fatalf("parsed event repeats the line as message %q", msg)
		}
	}
	wantErrs := 0
	for seq := range n {
		if malformed(seq) {
			wantErrs++
		}
	}
	for _, name := range sources {
		if next[name] != n {
			t.Errorf("source %s: %d lines arrived, want %d", name, next[name], n)
		}
	}
	if got := r.stats.ParseErrors.Load(); got != int64(3*wantErrs) {
		t.Errorf("ParseErrors = %d, want %d", got, 3*wantErrs)
	}
}

// BenchmarkPoolParse drives JSON lines through the whole pool (split,
// parse, reorder, ordered stage, fan-out, batch, discard output) with
// parser none and json; b.N counts lines, so allocs/op is allocations per
// event including the per-chunk ones.
func BenchmarkPoolParse(b *testing.B) {
	line := `{"ts":"2026-11-22T10:00:00.123Z","level":"info","msg":"order processed","order_id":1000,"amount":12.5,"ok":true,"user":{"id":7,"tier":"gold"},"path":"/api/orders"}` + "\n"
	const perChunk = 1000
	chunk := []byte(strings.Repeat(line, perChunk))
	for _, parser := range []string{"none", "json", "cri"} {
		b.Run(parser, func(b *testing.B) {
			buf := chunk
			if parser == "cri" {
				buf = []byte(strings.Repeat("2026-11-22T10:00:00.123456789Z stdout F "+line, perChunk))
			}
			stats := &pipeline.Stats{}
			p := pipeline.New(pipeline.Options{Workers: 2, Stats: stats})
			set := pipeline.DefaultOutputSettings()
			set.Inputs = []string{"in"}
			out := &pipelinetest.Discard{}
			run := pipeline.NewRunner("out", out, set, nil, stats)
			ctx := context.Background()
			run.Start(ctx)
			p.Start(ctx)
			st := p.NewStream("in", 1<<20, nil, nil, []*pipeline.Runner{run})
			is := pipeline.DefaultInputSettings()
			is.Parser = parser
			ps, err := pipeline.BuildParser(&is)
			if err != nil {
				b.Fatal(err)
			}
			st.SetParser(ps)
			src := st.NewSource("bench", nil)
			b.SetBytes(int64(len(buf) / perChunk))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			var off int64
			for left := b.N; left > 0; left -= perChunk {
				n := min(left, perChunk)
				part := buf[:n*(len(buf)/perChunk)]
				c, err := st.NewChunk(ctx, src, len(part))
				if err != nil {
					b.Fatal(err)
				}
				c.Buf = append(c.Buf, part...)
				off += int64(len(part))
				c.End = off
				if err := st.Emit(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			p.Drain()
			if err := run.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			// allocs/op rounds to an integer; per-chunk allocations
			// amortise below one per line, so report them exactly.
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/line")
			if events, _, _ := out.Counts(); events != int64(b.N) {
				b.Fatalf("%d events delivered, want %d", events, b.N)
			}
			if n := stats.ParseErrors.Load(); n != 0 {
				b.Fatalf("%d parse errors", n)
			}
		})
	}
}

// TestParsedValuesChargeBudget: a parsed chunk's arena counts against
// memory_limit while the chunk is held, and is returned with it.
func TestParsedValuesChargeBudget(t *testing.T) {
	block := make(chan struct{})
	out := &pipelinetest.Capture{Block: block}
	r := newRig(t, rigOptions{workers: 1, memory: 64 << 20}, outSpec{"out", out, settings(func(s *pipeline.OutputSettings) {
		s.Batch.MaxEvents = 100
	})})
	set := pipeline.DefaultInputSettings()
	set.Parser = "json"
	ps, err := pipeline.BuildParser(&set)
	if err != nil {
		t.Fatal(err)
	}
	r.stream.SetParser(ps)
	lines := make([]string, 100)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"a":%d,"b":"x","c":true,"d":[1,2],"e":null,"f":"y","g":1.5,"h":"z"}`, i)
	}
	emitLines(t, r.stream, "s", lines, len(lines))
	eventually(t, "the output to hold the batch", func() bool { return out.Writes() > 0 })
	buf := int64(pipeline.BufClass(len(strings.Join(lines, "\n")) + 1))
	// 100 events of 8 fields: at least 800 Fields of 40 bytes besides the
	// buffer.
	if used := r.p.Budget().Used(); used < buf+800*40 {
		t.Errorf("budget used %d while the chunk is held; want at least %d (buffer %d + fields)", used, buf+800*40, buf)
	}
	close(block)
	r.stop()
	if used := r.p.Budget().Used(); used != 0 {
		t.Errorf("budget used %d after everything was delivered", used)
	}
}

// TestParsedBudgetHoldsFromTheStart: with a stalled output, the budget
// bounds parsed chunks too, from the first chunk on. NewChunk charges an
// estimate of the parsed values up front; charging them only after parsing
// let the readers fill the whole budget with line buffers whose fields then
// came on top (here about ten times the buffers).
func TestParsedBudgetHoldsFromTheStart(t *testing.T) {
	const limit = 256 << 10
	block := make(chan struct{})
	out := &pipelinetest.Capture{Block: block}
	r := newRig(t, rigOptions{workers: 2, memory: limit}, outSpec{"cap", out, settings(nil)})
	set := pipeline.DefaultInputSettings()
	set.Parser = "json"
	ps, err := pipeline.BuildParser(&set)
	if err != nil {
		t.Fatal(err)
	}
	r.stream.SetParser(ps)
	var lines []string
	for i := range 20000 {
		lines = append(lines, fmt.Sprintf(`{"a":%d,"b":"x","c":1,"d":2,"e":3,"f":"y","g":4,"h":"z","i":5,"j":6}`, i))
	}
	done := make(chan struct{})
	go func() { defer close(done); emitLines(t, r.stream, "s", lines, 200) }()
	eventually(t, "the budget to fill", func() bool { return r.p.Budget().Used() > limit/2 })
	peak := int64(0)
	for range 50 {
		peak = max(peak, r.p.Budget().Used())
		time.Sleep(2 * time.Millisecond)
	}
	if peak > 2*limit {
		t.Errorf("budget charged up to %d with a limit of %d: parsed values were not bounded", peak, limit)
	}
	close(block)
	<-done
	r.stop()
	if n := len(out.Lines()); n != len(lines) {
		t.Errorf("%d lines delivered, want %d", n, len(lines))
	}
	if used := r.p.Budget().Used(); used != 0 {
		t.Errorf("budget used %d after everything was delivered", used)
	}
}

// panicky is a parser with a bug: it panics on lines containing "boom".
type panicky struct{}

func (panicky) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	if strings.Contains(string(ev.Raw), "boom") {
		var m map[string]int
		m["x"] = 1 // nil map write: a real runtime panic
	}
	a.Add("ok", true)
	return nil
}

func init() {
	pipeline.RegisterParser("panicky-test", func(*pipeline.InputSettings) (pipeline.ParserSpec, error) {
		return pipeline.ParserSpec{Name: "panicky-test", New: func() pipeline.Parser { return panicky{} }}, nil
	})
}

// TestParserPanicFailsOnlyItsLine: a parser that panics on some lines
// fails those lines (shipped raw with parse_error, counted), and every
// other line of the chunk, before and after, is parsed and delivered.
func TestParserPanicFailsOnlyItsLine(t *testing.T) {
	out := &pipelinetest.Capture{Render: renderJSON}
	r := newRig(t, rigOptions{workers: 2}, outSpec{"out", out, settings(nil)})
	set := pipeline.DefaultInputSettings()
	set.Parser = "panicky-test"
	ps, err := pipeline.BuildParser(&set)
	if err != nil {
		t.Fatal(err)
	}
	r.stream.SetParser(ps)
	lines := []string{"a", "boom 1", "b", "boom 2", "boom 3", "c"}
	src, size := emitLines(t, r.stream, "s", lines, len(lines))
	r.stop()
	want := []string{
		`{"ok":true}`,
		`{"message":"boom 1","parse_error":"parser panicked: assignment to entry in nil map"}`,
		`{"ok":true}`,
		`{"message":"boom 2","parse_error":"parser panicked: assignment to entry in nil map"}`,
		`{"message":"boom 3","parse_error":"parser panicked: assignment to entry in nil map"}`,
		`{"ok":true}`,
	}
	if got := out.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := r.stats.ParseErrors.Load(); n != 3 {
		t.Errorf("ParseErrors = %d, want 3", n)
	}
	if c := src.Committed(); c != size {
		t.Errorf("committed %d, want %d", c, size)
	}
}

// BenchmarkPoolMultiline runs a Java service's log through the whole pool
// with the java multiline preset (2 workers): per 8 lines, three one-line
// records and a 5-line trace. parser = "none" matches the raw line;
// parser = "cri" parses, joins partial lines, then joins records on the
// message. b.N counts lines.
func BenchmarkPoolMultiline(b *testing.B) {
	block := []string{
		"2026-11-22 10:00:00.001 INFO  [http-nio-8080-exec-1] c.e.OrderController : order 1000 processed in 12ms",
		"2026-11-22 10:00:00.002 INFO  [http-nio-8080-exec-2] c.e.OrderController : order 1001 processed in 9ms",
		"2026-11-22 10:00:00.003 WARN  [http-nio-8080-exec-3] c.e.PaymentClient   : retrying payment for order 1002",
		"2026-11-22 10:00:00.004 ERROR [http-nio-8080-exec-4] c.e.OrderController : order 1003 failed",
		"java.lang.IllegalStateException: payment declined for order 1003",
		"\tat com.example.shop.PaymentService.charge(PaymentService.java:88)",
		"\tat com.example.shop.OrderController.create(OrderController.java:41)",
		"\t... 42 more",
	}
	const perChunk = 1000 // a multiple of the block
	for _, parser := range []string{"none", "cri"} {
		b.Run("java/"+parser, func(b *testing.B) {
			var sb strings.Builder
			for i := range perChunk {
				if parser == "cri" {
					sb.WriteString("2026-11-22T10:00:00.123456789Z stderr F ")
				}
				sb.WriteString(block[i%len(block)] + "\n")
			}
			buf := []byte(sb.String())
			var lineEnds []int // the lines of a block differ in length
			for i, c := range buf {
				if c == '\n' {
					lineEnds = append(lineEnds, i+1)
				}
			}
			stats := &pipeline.Stats{}
			p := pipeline.New(pipeline.Options{Workers: 2, Stats: stats})
			set := pipeline.DefaultOutputSettings()
			set.Inputs = []string{"in"}
			out := &pipelinetest.Discard{}
			run := pipeline.NewRunner("out", out, set, nil, stats)
			ctx := context.Background()
			run.Start(ctx)
			p.Start(ctx)
			st := p.NewStream("in", 1<<20, nil, nil, []*pipeline.Runner{run})
			is := pipeline.DefaultInputSettings()
			is.Parser = parser
			is.Multiline.Preset = "java"
			ps, err := pipeline.BuildParser(&is)
			if err != nil {
				b.Fatal(err)
			}
			st.SetParser(ps)
			src := st.NewSource("bench", nil)
			b.SetBytes(int64(len(buf) / perChunk))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			var off int64
			records := 0
			for left := b.N; left > 0; left -= perChunk {
				n := min(left, perChunk)
				part := buf[:lineEnds[n-1]]
				records += n/8*4 + min(n%8, 4)
				c, err := st.NewChunk(ctx, src, len(part))
				if err != nil {
					b.Fatal(err)
				}
				c.Buf = append(c.Buf, part...)
				off += int64(len(part))
				c.End = off
				if err := st.Emit(ctx, c); err != nil {
					b.Fatal(err)
				}
			}
			p.Drain()
			if err := run.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/line")
			// The last record is still open at the stop.
			if events, _, _ := out.Counts(); events != int64(records-1) {
				b.Fatalf("%d events delivered, want %d", events, records-1)
			}
		})
	}
}
