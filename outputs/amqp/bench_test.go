package amqp

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

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

// BenchmarkPipelineToRabbitMQ measures the path from an emitted chunk to
// messages the local broker confirmed (split, queue, batch, encode,
// publish, confirm, acknowledge), with ~160-byte lines, one message per
// line, into a bound queue capped at 20,000 messages (the broker drops the
// oldest) so the broker's memory stays bounded. MB/s are of input lines.
func BenchmarkPipelineToRabbitMQ(b *testing.B) {
	for _, format := range []string{"raw", "json"} {
		for _, persistent := range []bool{true, false} {
			name := format + "/persistent"
			if !persistent {
				name = format + "/transient"
			}
			b.Run(name, func(b *testing.B) { benchPipelineToRabbitMQ(b, format, persistent) })
		}
	}
}

func benchPipelineToRabbitMQ(b *testing.B, format string, persistent bool) {
	ch := broker(b)
	ex := setup(b, ch, "direct")
	bind(b, ch, ex, "logs", amqp.Table{"x-max-length": int32(20000)})
	block := accessLog()
	lines := 0
	for _, c := range block {
		if c == '\n' {
			lines++
		}
	}
	c := DefaultConfig()
	c.URL = brokerURL
	c.Exchange = ex
	c.RoutingKey = "logs"
	c.Inputs = []string{"in"}
	c.Format = format
	c.Persistent = persistent
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
		chunk, err := st.NewChunk(ctx, src, len(block))
		if err != nil {
			b.Fatal(err)
		}
		chunk.Buf = append(chunk.Buf, block...)
		off += int64(len(block))
		chunk.End = off
		if err := st.Emit(ctx, chunk); err != nil {
			b.Fatal(err)
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
		b.Fatalf("delivered %d of %d lines (%d failed attempts)", d, b.N*lines, r.Out.Failures.Load())
	}
}
