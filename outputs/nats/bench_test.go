package nats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tailship/tailship/pipeline"
)

// BenchmarkPipelineToNATS measures the path from an emitted chunk to
// messages acknowledged by the real JetStream server on this machine
// (127.0.0.1:4222; a memory-storage stream made for the run): split, queue,
// batch, publish asynchronously, wait for every acknowledgement,
// acknowledge. Lines are ~160-byte access-log lines; MB/s are of input
// lines. The server shares the machine's cores with the benchmark.
func BenchmarkPipelineToNATS(b *testing.B) {
	for _, format := range []string{"raw", "json"} {
		b.Run(format, func(b *testing.B) { benchPipelineToNATS(b, format) })
	}
}

func benchPipelineToNATS(b *testing.B, format string) {
	s := newStream(b, serverAddr, func(sc *jetstream.StreamConfig) {
		// Keep the shared server's memory bounded however long it runs.
		sc.MaxBytes = 256 << 20
		sc.Discard = jetstream.DiscardOld
	})
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/api/v1/users", "/api/v1/orders/checkout", "/static/app.js", "/healthz"}
	var block []byte
	for len(block) < 256<<10-200 {
		block = fmt.Appendf(block, "10.%d.%d.%d - - [22/Nov/2026:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d \"-\" \"curl/8.5\" req=%016x\n",
			rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(60), rng.IntN(60), paths[rng.IntN(len(paths))],
			[]int{200, 200, 200, 404, 500}[rng.IntN(5)], rng.IntN(50000), rng.Uint64())
	}
	c := DefaultConfig()
	c.URL = "nats://" + serverAddr
	c.Subject = s.prefix + ".bench"
	c.Inputs = []string{"in"}
	c.Format = format
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
	src := st.NewSource("bench", nil)
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
	}
	p.Drain()
	if err := r.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if src.Committed() != off {
		b.Fatalf("committed %d of %d bytes", src.Committed(), off)
	}
	if f := r.Out.Failures.Load(); f != 0 {
		b.Fatalf("%d failed writes", f)
	}
}
