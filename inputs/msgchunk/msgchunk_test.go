package msgchunk

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPositionsReleasedInOrderAfterDelivery: the positions of a chunk's
// messages reach ack only once the output has the chunk, in order, each
// once; a message longer than max_line is cut, not split.
func TestPositionsReleasedInOrderAfterDelivery(t *testing.T) {
	var mu sync.Mutex
	var acked []int
	out := &pipelinetest.Capture{}
	out.Fail = func(attempt int, b *pipeline.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		// Nothing of this batch may be acknowledged before it is written.
		for _, ev := range b.All() {
			var n int
			fmt.Sscanf(string(ev.Raw), "msg %d", &n)
			if slices.Contains(acked, n) {
				return pipeline.Permanent(fmt.Errorf("message %d acknowledged before delivery", n))
			}
		}
		if attempt == 1 {
			return fmt.Errorf("first attempt fails")
		}
		return nil
	}
	set := pipeline.DefaultOutputSettings()
	set.Batch.Timeout = config.Dur(5 * time.Millisecond)
	set.Batch.MaxEvents = 64
	set.Retry.Initial = config.Dur(time.Millisecond)
	set.Retry.Max = config.Dur(5 * time.Millisecond)
	stats := &pipeline.Stats{}
	r := pipeline.NewRunner("out", out, set, nil, stats)
	p := pipeline.New(pipeline.Options{Workers: 2, MemoryLimit: 4 << 20, Stats: stats})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.Start(ctx)
	p.Start(ctx)
	st := p.NewStream("in", 64, nil, nil, []*pipeline.Runner{r})
	pk := New(st, "test", 10, 1024, 64, func(pos []int) {
		mu.Lock()
		acked = append(acked, pos...)
		mu.Unlock()
	})
	const n = 1000
	for i := range n {
		body := fmt.Sprintf("msg %d\nsecond line", i)
		if i == 7 {
			body += string(make([]byte, 200))
		}
		if err := pk.Add(ctx, []byte(body), nil, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := pk.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := pk.WaitCommitted(wctx); err != nil {
		t.Fatal(err)
	}
	p.Drain()
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(acked) != n {
		t.Fatalf("%d positions acknowledged, want %d", len(acked), n)
	}
	for i, v := range acked {
		if v != i {
			t.Fatalf("position %d acknowledged at %d: out of order", v, i)
		}
	}
	lines := out.Lines()
	if len(lines) != n {
		t.Fatalf("%d events, want %d", len(lines), n)
	}
	for i, l := range lines {
		want := fmt.Sprintf("msg %d\nsecond line", i)
		if i == 7 {
			want = (want + string(make([]byte, 200)))[:64]
		}
		if l != want {
			t.Fatalf("event %d = %q, want %q", i, l, want)
		}
	}
	if got := stats.LinesTruncated.Load(); got != 1 {
		t.Fatalf("truncated %d, want 1", got)
	}
}
