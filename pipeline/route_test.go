package pipeline_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
	"github.com/tailship/tailship/processors"
)

var levels = []string{"debug", "info", "warn", "error", "fatal"}

// levelProc gives each test line a level field from its sequence number,
// as a parser would.
type levelProc struct{}

func (levelProc) Process(ev *pipeline.Event) (bool, error) {
	_, seq, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	ev.Fields = []pipeline.Field{{Key: "level", Value: levels[seq%len(levels)]}}
	return true, nil
}

func buildProc(t *testing.T, c pipeline.ProcessorConfig) pipeline.Processor {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := c.Build(pipeline.ProcessorContext{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func cond(t *testing.T, field, match string) *pipeline.Condition {
	t.Helper()
	c := &pipeline.Condition{Field: field, Match: match}
	if err := c.Compile(); err != nil {
		t.Fatal(err)
	}
	return c
}

// render records an event as its line plus its fields.
func render(_ *pipeline.Source, ev *pipeline.Event) string {
	var fs []string
	for _, f := range ev.Fields {
		b, _ := pipeline.AppendText(nil, f.Value)
		fs = append(fs, f.Key+"="+string(b))
	}
	return string(ev.Raw) + "|" + strings.Join(fs, ",")
}

// TestFilterAndRouting: lines of three sources go through an input filter
// (debug dropped) and fan out by content: "errors" takes error and fatal,
// "all" takes everything left, "warn" takes warn and changes its copy
// (add_fields, rename, redact of the line). Every line reaches exactly the
// outputs its level routes it to, once, in order per source; the outputs'
// processors change nothing another output sees; and every source commits
// to its end although most lines went to only some outputs.
func TestFilterAndRouting(t *testing.T) {
	filter := buildProc(t, &processors.FilterConfig{Condition: pipeline.Condition{Field: "level", Equals: "debug"}, Action: "drop"})
	// rename first: it changes the event's fields in place, which must
	// be the warn output's copy.
	warnProcs := []pipeline.Processor{
		buildProc(t, &processors.RenameConfig{Fields: map[string]string{"level": "severity"}}),
		buildProc(t, &processors.AddFieldsConfig{Fields: map[string]any{"team": "ops"}, Overwrite: true}),
		buildProc(t, &processors.RedactConfig{Fields: []string{"message"}, Pattern: ` 0000`, Replacement: " XXXX"}),
	}
	small := settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 7 })
	errs := &pipelinetest.Capture{Render: render}
	all := &pipelinetest.Capture{Render: render}
	warn := &pipelinetest.Capture{Render: render}
	r := newRig(t, rigOptions{workers: 3, procs: []pipeline.Processor{levelProc{}, filter},
		routes: map[string]route{
			"errors": {when: cond(t, "level", "^(error|fatal)$")},
			"warn":   {when: cond(t, "level", "^warn$"), procs: warnProcs},
		}},
		outSpec{"errors", errs, small}, outSpec{"all", all, small}, outSpec{"warn", warn, small})
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b", "c"}, Lines: 1000, ChunkLines: 13}
	r.runInput(in)
	r.stop()

	want := map[string][]string{} // output -> per source lines, in order
	for _, src := range in.Sources {
		for i := range in.Lines {
			line := strings.TrimSuffix(pipelinetest.Line(src, i), "\n")
			lvl := levels[i%len(levels)]
			switch lvl {
			case "debug":
				continue
			case "error", "fatal":
				want["errors"] = append(want["errors"], line+"|level="+lvl)
			case "warn":
				want["warn"] = append(want["warn"], strings.Replace(line, " 0000", " XXXX", 1)+"|severity=warn,team=ops")
			}
			want["all"] = append(want["all"], line+"|level="+lvl)
		}
	}
	for name, c := range map[string]*pipelinetest.Capture{"errors": errs, "all": all, "warn": warn} {
		got := bySource(t, name, c.Lines(), in.Sources)
		exp := bySource(t, name, want[name], in.Sources)
		for _, src := range in.Sources {
			if fmt.Sprint(got[src]) != fmt.Sprint(exp[src]) {
				t.Fatalf("output %s, source %s: got %d lines, want %d\nfirst got %q\nfirst want %q",
					name, src, len(got[src]), len(exp[src]), head(got[src]), head(exp[src]))
			}
		}
	}
	if d := r.stats.DroppedByReason()["filter"]; d != 3*200 {
		t.Fatalf("filter drops %d, want 600", d)
	}
	for _, run := range r.runners {
		if n := run.Out.Delivered.Load(); n != int64(len(want[run.Name])) {
			t.Fatalf("%s delivered %d, want %d", run.Name, n, len(want[run.Name]))
		}
	}
	checkCommitted(t, in)
}

// bySource splits recorded lines by source, keeping their order.
func bySource(t *testing.T, output string, lines []string, sources []string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, l := range lines {
		raw, _, _ := strings.Cut(l, "|")
		src, _, _ := strings.Cut(raw, " ")
		if !contains(sources, src) {
			t.Fatalf("output %s: line %q of no source", output, l)
		}
		out[src] = append(out[src], l)
	}
	return out
}

// TestAggregateThroughPipeline: an input's aggregate window, emitted by the
// pipeline's final flush at Drain, reaches every output of the input from
// a synthetic source (route conditions apply to it too), with counts equal
// to what was fed, and the file sources still commit to their end.
func TestAggregateThroughPipeline(t *testing.T) {
	agg := processors.DefaultAggregate()
	agg.Name, agg.GroupBy, agg.Width = "lines", []string{"level"}, config.Dur(time.Hour)
	aggProc := buildProc(t, agg)
	all := &pipelinetest.Capture{Render: render}
	errs := &pipelinetest.Capture{Render: render}
	r := newRig(t, rigOptions{workers: 2, procs: []pipeline.Processor{levelProc{}, aggProc},
		routes: map[string]route{"errors": {when: cond(t, "level", "^error$")}}},
		outSpec{"all", all, settings(nil)}, outSpec{"errors", errs, settings(nil)})
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 500, ChunkLines: 17}
	r.runInput(in)
	r.stop()
	checkCommitted(t, in)

	var aggs []string
	lines := 0
	for _, l := range all.Lines() {
		if strings.HasPrefix(l, "aggregate=") {
			aggs = append(aggs, l)
		} else {
			lines++
		}
	}
	if lines != 1000 || len(aggs) != len(levels) {
		t.Fatalf("all: %d lines and %d aggregates %q", lines, len(aggs), aggs)
	}
	for _, l := range aggs {
		// Each level is 1 in 5 of 1000 lines.
		if !strings.Contains(l, "|aggregate=lines,level=") || !strings.Contains(l, ",count=200,") {
			t.Fatalf("aggregate %q", l)
		}
	}
	var errAggs []string
	for _, l := range errs.Lines() {
		if strings.HasPrefix(l, "aggregate=") {
			errAggs = append(errAggs, l)
		}
	}
	if len(errAggs) != 1 || !strings.Contains(errAggs[0], "level=error,count=200") {
		t.Fatalf("errors output aggregates %q", errAggs)
	}
	snap := aggProc.(pipeline.Snapshotter).Snapshot()
	if len(snap) != len(levels) || snap[0].Value != 200 {
		t.Fatalf("snapshot %+v", snap)
	}
}

func head(xs []string) []string { return xs[:min(len(xs), 5)] }

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// TestOutputAggregateAndDrops: processors of one output (sample, then an
// aggregate that drops what it counts) leave the other output's events
// alone; the aggregate's windows, emitted by the pipeline's ticker on a
// short window, reach only that output and together count every event the
// sample kept, each in exactly one window; drops are counted per reason.
func TestOutputAggregateAndDrops(t *testing.T) {
	sample := buildProc(t, &processors.SampleConfig{Rate: 3, Field: "message"})
	agg := processors.DefaultAggregate()
	agg.Name, agg.GroupBy, agg.Width, agg.DropEvents = "kept", []string{"level"}, config.Dur(20*time.Millisecond), true
	aggProc := buildProc(t, agg)
	all := &pipelinetest.Capture{Render: render}
	stats := &pipelinetest.Capture{Render: render}
	r := newRig(t, rigOptions{workers: 2, procs: []pipeline.Processor{levelProc{}},
		routes: map[string]route{"stats": {procs: []pipeline.Processor{sample, aggProc}}}},
		outSpec{"all", all, settings(nil)}, outSpec{"stats", stats, settings(func(s *pipeline.OutputSettings) {
			s.Batch.Timeout = config.Dur(5 * time.Millisecond)
		})})
	f := pipelinetest.NewFeeder(r.stream, "s")
	const n = 3000
	for range n / 100 {
		if err := f.Emit(r.ctx, 100); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // spread over several windows
	}
	// Windows close on the ticker while lines still flow, and at Drain.
	eventually(t, "a window emitted while running", func() bool { return stats.Len() > 0 })
	r.stop()

	if got := all.Len(); got != n {
		t.Fatalf("all: %d lines, want %d", got, n)
	}
	for _, l := range all.Lines() {
		if strings.HasPrefix(l, "aggregate=") {
			t.Fatalf("all got an aggregate of the other output: %q", l)
		}
	}
	sampled := r.stats.DroppedByReason()["sample"]
	kept := int64(n) - sampled
	if sampled == 0 || kept == 0 {
		t.Fatalf("sample dropped %d of %d", sampled, n)
	}
	if d := r.stats.DroppedByReason()["aggregate"]; d != kept {
		t.Fatalf("aggregate drops %d, want the %d events the sample kept", d, kept)
	}
	var counted int64
	windows := map[string]bool{}
	for _, l := range stats.Lines() {
		if !strings.HasPrefix(l, "aggregate=kept ") {
			t.Fatalf("stats got a line: %q", l)
		}
		var c int64
		for _, kv := range strings.Split(l[strings.IndexByte(l, '|')+1:], ",") {
			if v, ok := strings.CutPrefix(kv, "count="); ok {
				fmt.Sscan(v, &c)
			}
			if v, ok := strings.CutPrefix(kv, "window_end="); ok {
				windows[v] = true
			}
		}
		counted += c
	}
	if counted != kept {
		t.Fatalf("windows count %d events, want %d", counted, kept)
	}
	if len(windows) == 0 {
		t.Fatal("no window end recorded")
	}
	if got, want := f.Committed(), pipelinetest.Size("s", n); got != want {
		t.Fatalf("committed %d, want %d", got, want)
	}
}

// TestRoutedAwayChunkSettlesAtOnce: a chunk none of whose events an output
// takes is settled for it at once, not when a batch (an hour here) closes,
// so the file's checkpoint does not wait for an output it never feeds.
func TestRoutedAwayChunkSettlesAtOnce(t *testing.T) {
	none := &pipelinetest.Capture{}
	all := &pipelinetest.Capture{}
	r := newRig(t, rigOptions{workers: 2, procs: []pipeline.Processor{levelProc{}},
		routes: map[string]route{"none": {when: cond(t, "level", "^panic$")}}},
		outSpec{"none", none, settings(nil)}, outSpec{"all", all, settings(func(s *pipeline.OutputSettings) { s.Batch.MaxEvents = 10 })})
	f := pipelinetest.NewFeeder(r.stream, "s")
	if err := f.Emit(r.ctx, 10); err != nil {
		t.Fatal(err)
	}
	eventually(t, "commit of a chunk routed away from one output", func() bool { return f.Committed() == pipelinetest.Size("s", 10) })
	r.stop()
	if none.Writes() != 0 || all.Len() != 10 {
		t.Fatalf("none wrote %d times, all got %d lines", none.Writes(), all.Len())
	}
}
