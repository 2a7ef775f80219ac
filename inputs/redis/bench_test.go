package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// BenchmarkStreamInput: entries of ~100 bytes read from a real Redis
// stream through a consumer group, delivered to a discarding output and
// acknowledged (XPENDING back to 0), per mode.
func BenchmarkStreamInput(b *testing.B) {
	for _, mode := range []string{ModeStream, ModeList} {
		b.Run(mode, func(b *testing.B) {
			c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true})
			defer c.Close()
			if err := c.Ping(context.Background()).Err(); err != nil {
				b.Skipf("Redis unreachable: %v", err)
			}
			ctx := context.Background()
			const n = 50000
			body := strings.Repeat("x", 80)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				key := fmt.Sprintf("tailship-bench:%s:%d", mode, time.Now().UnixNano())
				pipe := c.Pipeline()
				for j := range n {
					if mode == ModeStream {
						pipe.XAdd(ctx, &goredis.XAddArgs{Stream: key, Values: []string{"message", fmt.Sprintf("%08d %s", j, body)}})
					} else {
						pipe.RPush(ctx, key, fmt.Sprintf("%08d %s", j, body))
					}
				}
				if _, err := pipe.Exec(ctx); err != nil {
					b.Fatal(err)
				}
				cfg := DefaultConfig()
				cfg.Mode, cfg.Key, cfg.Consumer = mode, key, "bench"
				cfg.Count = 1000
				cfg.Block = config.Dur(50 * time.Millisecond)
				out := &pipelinetest.Discard{}
				b.StartTimer()
				r := startBench(b, cfg, out)
				for {
					ev, _, _ := out.Counts()
					if ev >= n {
						break
					}
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				r()
				c.Del(ctx, key, key+":processing:bench")
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
