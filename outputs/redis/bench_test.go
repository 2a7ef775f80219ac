package redis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/tailship/tailship/pipeline"
)

// accessLog returns ~256 KiB of ~160-byte access-log lines.
func accessLog() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/api/v1/users", "/api/v1/orders/checkout", "/static/app.js", "/healthz"}
	var block []byte
	for len(block) < 256<<10-200 {
		block = fmt.Appendf(block, "10.%d.%d.%d - - [22/Nov/2026:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d \"-\" \"curl/8.5\" req=%016x\n",
			rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(60), rng.IntN(60), paths[rng.IntN(len(paths))],
			[]int{200, 200, 200, 404, 500}[rng.IntN(5)], rng.IntN(50000), rng.Uint64())
	}
	return block
}

// BenchmarkPipelineToRedis measures the path from an emitted chunk to
// events Redis has answered for (split, queue, batch, encode, pipeline,
// acknowledge), with ~160-byte lines, against the local server. MB/s are
// of input lines; lines/s is reported too.
func BenchmarkPipelineToRedis(b *testing.B) {
	for _, mode := range []string{ModeList, ModeStream, ModePubSub} {
		for _, format := range []string{"raw", "json"} {
			b.Run(mode+"/"+format, func(b *testing.B) { benchPipelineToRedis(b, mode, format) })
		}
	}
}

func benchPipelineToRedis(b *testing.B, mode, format string) {
	rc := server(b)
	key := unique(b, rc)
	block := accessLog()
	lines := 0
	for _, c := range block {
		if c == '\n' {
			lines++
		}
	}
	c := DefaultConfig()
	c.Key = key
	c.Inputs = []string{"in"}
	c.Mode = mode
	c.Format = format
	if mode == ModeStream {
		c.MaxLen = 100000 // keep the server's memory bounded
	}
	out, err := c.Build(pipeline.BuildContext{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	stats := &pipeline.Stats{}
	r := pipeline.NewRunner("bench", out, c.OutputSettings, nil, stats)
	p := pipeline.New(pipeline.Options{Workers: 1, MemoryLimit: 64 << 20, Stats: stats})
	abort, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(abort)
	p.Start(abort)
	st := p.NewStream("bench", 1<<20, nil, nil, []*pipeline.Runner{r})
	var committed atomic.Int64
	src := st.NewSource("bench", func(off int64) { committed.Store(off) })
	ctx := context.Background()

	b.SetBytes(int64(len(block)))
	b.ResetTimer()
	var off int64
	for i := 0; i < b.N; i++ {
		ch, err := st.NewChunk(ctx, src, len(block))
		if err != nil {
			b.Fatal(err)
		}
		ch.Buf = append(ch.Buf, block...)
		off += int64(len(block))
		ch.End = off
		if err := st.Emit(ctx, ch); err != nil {
			b.Fatal(err)
		}
		if mode == ModeList && i%64 == 63 {
			// Keep the server's memory bounded; the list is not read.
			rc.LTrim(ctx, key, -1000, -1)
		}
	}
	p.Drain()
	if err := r.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*lines)/b.Elapsed().Seconds(), "lines/s")
	if committed.Load() != off {
		b.Fatalf("committed %d of %d bytes", committed.Load(), off)
	}
	if d := r.Out.Delivered.Load(); d != int64(b.N*lines) {
		b.Fatalf("delivered %d of %d lines", d, b.N*lines)
	}
}
