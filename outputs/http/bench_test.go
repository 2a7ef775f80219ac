package http

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/tailship/tailship/pipeline"
)

// BenchmarkPipelineToHTTP measures the path from an emitted chunk to a
// request a local receiver has read: split, queue, batch, encode, compress,
// POST, acknowledge. The receiver reads and discards the body, so the
// numbers are the agent's side (both share the machine). MB/s are of input
// lines (~160-byte access-log lines); wire-MB/s is what was sent.
func BenchmarkPipelineToHTTP(b *testing.B) {
	for _, format := range []string{FormatRaw, FormatNDJSON, FormatElasticsearch} {
		for _, comp := range []string{"none", "gzip", "zstd"} {
			if comp == "zstd" && format == FormatElasticsearch {
				continue // not accepted by Elasticsearch
			}
			for _, inflight := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/in_flight=%d", format, comp, inflight), func(b *testing.B) {
					benchPipelineToHTTP(b, format, comp, inflight)
				})
			}
		}
	}
}

func benchPipelineToHTTP(b *testing.B, format, comp string, inflight int) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/api/v1/users", "/api/v1/orders/checkout", "/static/app.js", "/healthz"}
	var block []byte
	n := 0
	for len(block) < 256<<10-200 {
		block = fmt.Appendf(block, "10.%d.%d.%d - - [22/Nov/2026:10:%02d:%02d +0000] \"GET %s HTTP/1.1\" %d %d \"-\" \"curl/8.5\" req=%016x\n",
			rng.IntN(256), rng.IntN(256), rng.IntN(256), rng.IntN(60), rng.IntN(60), paths[rng.IntN(len(paths))],
			[]int{200, 200, 200, 404, 500}[rng.IntN(5)], rng.IntN(50000), rng.Uint64())
		n++
	}
	var wire atomic.Int64
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		k, _ := io.Copy(io.Discard, r.Body)
		wire.Add(k)
		if format == FormatElasticsearch {
			io.WriteString(w, `{"errors":false}`)
		}
	}))
	defer srv.Close()
	c := DefaultConfig()
	c.URL = srv.URL
	c.Inputs = []string{"in"}
	c.Format = format
	c.Compression = comp
	c.Index = "logs"
	c.MaxInFlight = inflight
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
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)*float64(n)/secs, "lines/s")
	b.ReportMetric(float64(wire.Load())/1e6/secs, "wire-MB/s")
	b.ReportMetric(float64(off)/float64(max(wire.Load(), 1)), "ratio")
}
