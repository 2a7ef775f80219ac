package processors

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// BenchmarkProcessorsOnPool drives logfmt lines through the whole pool
// (split, parse, processors, reorder, fan-out, batch, discard output) with
// each processor chain; b.N counts lines, so ns/op is per event and
// allocs/line counts every allocation, per-chunk ones included. "none" is
// the baseline with the parser alone.
func BenchmarkProcessorsOnPool(b *testing.B) {
	line := `time=2026-11-22T10:00:00.123Z level=info route=/api/orders ms=42 trace_id=4bf92f3577b34da6 msg="order processed password=hunter2"` + "\n"
	mk := func(cs ...pipeline.ProcessorConfig) func(b *testing.B) []pipeline.Processor {
		return func(b *testing.B) []pipeline.Processor {
			var ps []pipeline.Processor
			for _, c := range cs {
				if err := c.Validate(); err != nil {
					b.Fatal(err)
				}
				p, err := c.Build(pipeline.ProcessorContext{})
				if err != nil {
					b.Fatal(err)
				}
				ps = append(ps, p)
			}
			return ps
		}
	}
	agg := DefaultAggregate()
	agg.Name, agg.GroupBy, agg.Field, agg.Width = "req", []string{"route", "level"}, "ms", config.Dur(time.Hour)
	cases := []struct {
		name   string
		procs  func(b *testing.B) []pipeline.Processor
		routed bool // two outputs: one with a when, one with its own add_fields
	}{
		{"none", mk(), false},
		{"filter", mk(&FilterConfig{Condition: pipeline.Condition{Field: "level", Match: "^(info|warn|error)$"}, Action: "keep"}), false},
		{"add_rename_drop", mk(
			&AddFieldsConfig{Fields: map[string]any{"env": "prod", "team": "ops"}, Overwrite: true},
			&RenameConfig{Fields: map[string]string{"msg": "message"}},
			&DropFieldsConfig{Fields: []string{"trace_id"}}), false},
		{"redact", mk(&RedactConfig{Fields: []string{"msg"}, Pattern: `password=\S+`, Replacement: "password=[REDACTED]"}), false},
		{"sample", mk(&SampleConfig{Rate: 1, Field: "trace_id"}), false},
		{"throttle", mk(&ThrottleConfig{Rate: 1e12, KeyFields: []string{"route"}, MaxKeys: 100}), false},
		{"aggregate", mk(agg), false},
		{"routed", mk(), true},
	}
	const perChunk = 1000
	chunk := []byte(strings.Repeat(line, perChunk))
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			stats := &pipeline.Stats{}
			p := pipeline.New(pipeline.Options{Workers: 2, Stats: stats})
			set := pipeline.DefaultOutputSettings()
			set.Inputs = []string{"in"}
			outs := []*pipelinetest.Discard{{}}
			if tc.routed {
				outs = append(outs, &pipelinetest.Discard{})
			}
			ctx := context.Background()
			var runs []*pipeline.Runner
			for i, out := range outs {
				run := pipeline.NewRunner("out", out, set, nil, stats)
				if i == 1 {
					when := &pipeline.Condition{Field: "level", Match: "^info$"}
					if err := run.Route(when, mk(&AddFieldsConfig{Fields: map[string]any{"copy": true}, Overwrite: true})(b)); err != nil {
						b.Fatal(err)
					}
				}
				run.Start(ctx)
				runs = append(runs, run)
			}
			p.Start(ctx)
			st := p.NewStream("in", 1<<20, nil, tc.procs(b), runs)
			is := pipeline.DefaultInputSettings()
			is.Parser = "logfmt"
			ps, err := pipeline.BuildParser(&is)
			if err != nil {
				b.Fatal(err)
			}
			st.SetParser(ps)
			src := st.NewSource("bench", nil)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			var ms0, ms1 runtime.MemStats
			runtime.ReadMemStats(&ms0)
			b.ResetTimer()
			var off int64
			for left := b.N; left > 0; left -= perChunk {
				n := min(left, perChunk)
				part := chunk[:n*len(line)]
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
			for _, run := range runs {
				if err := run.Stop(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			runtime.ReadMemStats(&ms1)
			b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(b.N), "allocs/line")
			events, _, _ := outs[0].Counts()
			if tc.name == "aggregate" {
				events-- // the window emitted at Drain
			}
			if events != int64(b.N) {
				b.Fatalf("%d events delivered, want %d", events, b.N)
			}
			if tc.routed {
				if e, _, _ := outs[1].Counts(); e != int64(b.N) {
					b.Fatalf("routed output: %d events, want %d", e, b.N)
				}
			}
		})
	}
}
