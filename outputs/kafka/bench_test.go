package kafka

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tailship/tailship/pipeline"
)

// BenchmarkPipelineToKafka measures the path from an emitted chunk to
// records acknowledged by an in-process broker (kfake, the real protocol
// over loopback): split, queue, batch, build records, compress, produce
// with acks = all and the idempotent producer, acknowledge. Lines are
// ~160-byte access-log lines; MB/s are of input lines. kfake stores what it
// receives in memory, so this is the agent's side plus a cheap broker.
func BenchmarkPipelineToKafka(b *testing.B) {
	for _, comp := range []string{"zstd", "lz4", "snappy", "none"} {
		for _, format := range []string{"raw", "json"} {
			if format == "json" && comp != "zstd" {
				continue
			}
			b.Run(fmt.Sprintf("%s/%s", format, comp), func(b *testing.B) { benchPipelineToKafka(b, format, comp) })
		}
	}
}

func benchPipelineToKafka(b *testing.B, format, comp string) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/api/v1/users", "/api/v1/orders/checkout", "/static/app.js", "/healthz"}
	var block []byte
	for len(block) < 256<<10-200 {
		block = fmt.Appendf(block, "10.%d.%d.%d - - [22/Nov/2026:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d \"-\" \"curl/8.5\" req=%016x\n",
			rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(60), rng.IntN(60), paths[rng.IntN(len(paths))],
			[]int{200, 200, 200, 404, 500}[rng.IntN(5)], rng.IntN(50000), rng.Uint64())
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	defer closeCluster(c)

	cfg := DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.Topic = "bench"
	cfg.Inputs = []string{"in"}
	cfg.Format = format
	cfg.Compression = comp
	out, err := cfg.Build(pipeline.BuildContext{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	stats := &pipeline.Stats{}
	r := pipeline.NewRunner("bench", out, cfg.OutputSettings, nil, stats)
	p := pipeline.New(pipeline.Options{Workers: 1, MemoryLimit: 64 << 20, Stats: stats})
	abort, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(abort)
	p.Start(abort)
	st := p.NewStream("bench", 1<<20, nil, nil, []*pipeline.Runner{r})
	var committed atomic.Int64
	// Several sources, so records spread over the partitions by key.
	srcs := make([]*pipeline.Source, 4)
	offs := make([]int64, len(srcs))
	for i := range srcs {
		srcs[i] = st.NewSource(fmt.Sprintf("/var/log/app-%d.log", i), func(int64) { committed.Add(1) })
	}
	ctx := context.Background()

	b.SetBytes(int64(len(block)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % len(srcs)
		ch, err := st.NewChunk(ctx, srcs[k], len(block))
		if err != nil {
			b.Fatal(err)
		}
		ch.Buf = append(ch.Buf, block...)
		offs[k] += int64(len(block))
		ch.End = offs[k]
		if err := st.Emit(ctx, ch); err != nil {
			b.Fatal(err)
		}
	}
	p.Drain()
	if err := r.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	for k, s := range srcs {
		if s.Committed() != offs[k] {
			b.Fatalf("source %d: committed %d of %d bytes", k, s.Committed(), offs[k])
		}
	}
	if f := r.Out.Failures.Load(); f != 0 {
		b.Fatalf("%d failed writes", f)
	}
}
