package processors

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestThrottleDropsCounted: on the pool, what the throttle drops is
// counted under its reason, every other event is delivered, and the
// dropped lines are acknowledged with the rest, so the source commits to
// its end. The clock does not move, so each key passes exactly its burst,
// whichever worker sees which line first.
func TestThrottleDropsCounted(t *testing.T) {
	stats := &pipeline.Stats{}
	p := pipeline.New(pipeline.Options{Workers: 2, Stats: stats})
	set := pipeline.DefaultOutputSettings()
	set.Inputs = []string{"in"}
	out := &pipelinetest.Capture{}
	ctx := context.Background()
	run := pipeline.NewRunner("out", out, set, nil, stats)
	run.Start(ctx)
	p.Start(ctx)
	cfg := &ThrottleConfig{Rate: 1, Burst: 3, KeyFields: []string{"svc"}, MaxKeys: 10}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	throttle := newThrottle(cfg, newClock().now)
	st := p.NewStream("in", 1<<20, nil, []pipeline.Processor{throttle}, []*pipeline.Runner{run})
	is := pipeline.DefaultInputSettings()
	is.Parser = "logfmt"
	ps, err := pipeline.BuildParser(&is)
	if err != nil {
		t.Fatal(err)
	}
	st.SetParser(ps)
	var committed int64
	src := st.NewSource("s", func(off int64) { committed = off })
	var off int64
	for i := range 10 { // 20 lines of a and 4 of b, in 10 chunks
		var b strings.Builder
		fmt.Fprintf(&b, "svc=a n=%d\nsvc=a n=%d\n", 2*i, 2*i+1)
		if i%5 == 0 {
			fmt.Fprintf(&b, "svc=b n=%d\nsvc=b n=%d\n", i, i+1)
		}
		c, err := st.NewChunk(ctx, src, b.Len())
		if err != nil {
			t.Fatal(err)
		}
		c.Buf = append(c.Buf, b.String()...)
		off += int64(b.Len())
		c.End = off
		if err := st.Emit(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	p.Drain()
	if err := run.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, l := range out.Lines() {
		svc, _, _ := strings.Cut(l, " ")
		got[svc]++
	}
	if got["svc=a"] != 3 || got["svc=b"] != 3 || len(got) != 2 {
		t.Fatalf("delivered %v, want the burst of 3 per key", got)
	}
	if d := stats.DroppedByReason()["throttle"]; d != 24-6 {
		t.Fatalf("throttle drops counted %d, want %d", d, 24-6)
	}
	if committed != off {
		t.Fatalf("committed %d, want %d: dropped lines must be acknowledged", committed, off)
	}
}
