package tcp

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tailship/tailship/pipeline"
)

// BenchmarkPipelineToTCP measures the path from an emitted chunk to bytes a
// local receiver has read (split, queue, batch, encode, compress, write,
// acknowledge), with ~160-byte access-log lines. MB/s are of input lines.
func BenchmarkPipelineToTCP(b *testing.B) {
	for _, framing := range []string{FramingNewline, FramingOctetCounted} {
		for _, comp := range []string{"none", "gzip", "zstd"} {
			if framing == FramingOctetCounted && comp != "none" {
				continue
			}
			b.Run(fmt.Sprintf("%s/%s", framing, comp), func(b *testing.B) { benchPipelineToTCP(b, framing, comp) })
		}
	}
}

func benchPipelineToTCP(b *testing.B, framing, comp string) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/api/v1/users", "/api/v1/orders/checkout", "/static/app.js", "/healthz"}
	var block []byte
	for len(block) < 256<<10-200 {
		block = fmt.Appendf(block, "10.%d.%d.%d - - [22/Nov/2026:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d \"-\" \"curl/8.5\" req=%016x\n",
			rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(60), rng.IntN(60), paths[rng.IntN(len(paths))],
			[]int{200, 200, 200, 404, 500}[rng.IntN(5)], rng.IntN(50000), rng.Uint64())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wire atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				n, _ := io.Copy(io.Discard, c)
				wire.Add(n)
				c.Close()
			})
		}
	})
	defer func() { ln.Close(); wg.Wait() }()

	c := DefaultConfig()
	c.Address = ln.Addr().String()
	c.Inputs = []string{"in"}
	c.Framing = framing
	c.Compression = comp
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
	}
	p.Drain()
	if err := r.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if committed.Load() != off {
		b.Fatalf("committed %d of %d bytes", committed.Load(), off)
	}
}
