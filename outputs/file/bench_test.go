package file

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkPipelineToFile measures the path from an emitted chunk to bytes
// in a file: split, reorder, fan-out, queue, batch, encode, compress, write,
// acknowledge. It reports MB/s, allocations per line, and CPU seconds per GB
// of input.
func BenchmarkPipelineToFile(b *testing.B) {
	for _, comp := range []string{"none", "zstd", "gzip"} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%s/workers=%d", comp, workers), func(b *testing.B) {
				benchPipelineToFile(b, comp, workers)
			})
		}
	}
}

func benchPipelineToFile(b *testing.B, comp string, workers int) {
	// One chunk's worth (about 256 KiB) of access-log-like lines of about
	// 160 bytes, varied enough to compress like real logs, copied into each
	// chunk as a reader's pread would.
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
	cfg := &Config{
		OutputSettings: pipeline.DefaultOutputSettings(),
		Settings:       codec.Settings{Format: "raw", Compression: comp},
		Path:           filepath.Join(b.TempDir(), "out.log"),
	}
	out, err := cfg.Build(pipeline.BuildContext{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	stats := &pipeline.Stats{}
	r := pipeline.NewRunner("bench", out, cfg.OutputSettings, nil, stats)
	p := pipeline.New(pipeline.Options{Workers: workers, MemoryLimit: 64 << 20, Stats: stats})
	abort, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(abort)
	p.Start(abort)
	st := p.NewStream("bench", 1<<20, nil, nil, []*pipeline.Runner{r})
	var committed int64
	src := st.NewSource("bench", func(off int64) { committed = off })
	ctx := context.Background()

	b.SetBytes(int64(len(block)))
	b.ReportAllocs()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	cpu0 := cpuSeconds()
	b.ResetTimer()
	var off int64
	for i := 0; i < b.N; i++ {
		c, err := st.NewChunk(ctx, src, len(block))
		if err != nil {
			b.Fatal(err)
		}
		c.Buf = append(c.Buf, block...)
		off += int64(len(block))
		c.End = off
		if err := st.Emit(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
	p.Drain()
	if err := r.Stop(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := cpuSeconds() - cpu0
	if committed != off {
		b.Fatalf("committed %d of %d bytes", committed, off)
	}
	runtime.ReadMemStats(&ms1)
	lines := float64(b.N) * float64(n)
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/lines, "allocs/line")
	b.ReportMetric(cpu/(float64(off)/1e9), "cpu-s/GB")
	b.ReportMetric(lines/b.Elapsed().Seconds(), "lines/s")
}
