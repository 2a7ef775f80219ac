package processors

import (
	"context"
	"strings"
	"testing"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestProcessorsSeeJoinedLines: with a parser that joins split lines (cri),
// input processors run after the join, so a secret split across pieces is
// still masked whole and a filter sees the whole line.
func TestProcessorsSeeJoinedLines(t *testing.T) {
	stats := &pipeline.Stats{}
	p := pipeline.New(pipeline.Options{Workers: 2, Stats: stats})
	set := pipeline.DefaultOutputSettings()
	set.Inputs = []string{"in"}
	out := &pipelinetest.Capture{Render: func(_ *pipeline.Source, ev *pipeline.Event) string {
		v, _ := pipeline.Lookup(nil, ev, "message")
		b, _ := pipeline.AppendText(nil, v)
		return string(b)
	}}
	ctx := context.Background()
	run := pipeline.NewRunner("out", out, set, nil, stats)
	run.Start(ctx)
	p.Start(ctx)
	redact := build(t, &RedactConfig{Fields: []string{"message"}, Pattern: `password=\S+`, Replacement: "password=***"})
	filter := build(t, &FilterConfig{Condition: pipeline.Condition{Field: "message", Match: "keep me$"}, Action: "keep"})
	st := p.NewStream("in", 1<<20, nil, []pipeline.Processor{redact, filter}, []*pipeline.Runner{run})
	is := pipeline.DefaultInputSettings()
	is.Parser = "cri"
	ps, err := pipeline.BuildParser(&is)
	if err != nil {
		t.Fatal(err)
	}
	st.SetParser(ps)
	const ts = "2026-11-22T10:00:00.000000001Z stdout "
	lines := []string{
		ts + "P login password=hun",
		ts + "F ter2 ok keep me",
		ts + "F dropped by the filter",
		ts + "P a long line that keep",
		ts + "F s going, keep me",
	}
	var committed int64
	src := st.NewSource("pod", func(off int64) { committed = off })
	var off int64
	for _, l := range lines { // one chunk per piece: the join spans chunks
		c, err := st.NewChunk(ctx, src, len(l)+1)
		if err != nil {
			t.Fatal(err)
		}
		c.Buf = append(c.Buf, l+"\n"...)
		off += int64(len(l) + 1)
		c.End = off
		if err := st.Emit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	p.Drain()
	if err := run.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := "login password=*** ok keep me|a long line that keeps going, keep me"
	if got := strings.Join(out.Lines(), "|"); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if committed != off {
		t.Fatalf("committed %d, want %d", committed, off)
	}
	if d := stats.DroppedByReason()["filter"]; d != 1 {
		t.Fatalf("filter drops %d, want 1", d)
	}
}
