package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// BenchmarkBatcher measures the output side of the pool alone: queue,
// batcher (closing on max_events or max_bytes), the output call and the
// ordered acknowledgement, into a discarding output, for batch sizes from
// small to the default. One worker and parser none keep the pool's share
// small; b.N counts events.
func BenchmarkBatcher(b *testing.B) {
	line := strings.Repeat("x", 150) + "\n"
	const perChunk = 1000
	chunk := []byte(strings.Repeat(line, perChunk))
	for _, events := range []int{100, 1000, 5000} {
		b.Run(fmt.Sprintf("max_events=%d", events), func(b *testing.B) {
			stats := &pipeline.Stats{}
			p := pipeline.New(pipeline.Options{Workers: 1, Stats: stats})
			set := pipeline.DefaultOutputSettings()
			set.Inputs = []string{"in"}
			set.Batch.MaxEvents = events
			out := &pipelinetest.Discard{}
			run := pipeline.NewRunner("out", out, set, nil, stats)
			ctx := context.Background()
			run.Start(ctx)
			p.Start(ctx)
			st := p.NewStream("in", 1<<20, nil, nil, []*pipeline.Runner{run})
			src := st.NewSource("bench", nil)
			b.SetBytes(int64(len(line)))
			b.ReportAllocs()
			b.ResetTimer()
			var off int64
			for left := b.N; left > 0; left -= perChunk {
				part := chunk[:min(left, perChunk)*len(line)]
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
			ev, _, batches := out.Counts()
			if ev != int64(b.N) {
				b.Fatalf("%d events delivered, want %d", ev, b.N)
			}
			b.ReportMetric(float64(b.N)/float64(max(batches, 1)), "events/batch")
		})
	}
}
