package pipeline

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func acquireAsync(ctx context.Context, b *Budget, n int64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- b.Acquire(ctx, n) }()
	return ch
}

func wantUsed(t *testing.T, b *Budget, n int64) {
	t.Helper()
	if u := b.Used(); u != n {
		t.Fatalf("Used = %d, want %d", u, n)
	}
}

func TestBudgetBlocksAtLimit(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	if err := b.Acquire(ctx, 60); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(ctx, 40); err != nil { // exactly at the limit
		t.Fatal(err)
	}
	wantUsed(t, b, 100)

	res := acquireAsync(ctx, b, 10)
	stays(t, res, "Acquire beyond the limit")
	b.Release(5) // 95 used: 10 still does not fit
	stays(t, res, "Acquire that still does not fit")
	b.Release(35) // 60 used
	if err := within(t, res, "Acquire after Release"); err != nil {
		t.Fatal(err)
	}
	wantUsed(t, b, 70)
	if b.Limit() != 100 {
		t.Fatalf("Limit = %d", b.Limit())
	}
}

func TestBudgetOversizeRequestWhenEmpty(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	res := acquireAsync(ctx, b, 1000)
	if err := within(t, res, "oversize Acquire on an empty budget"); err != nil {
		t.Fatal(err)
	}
	wantUsed(t, b, 1000)
	res = acquireAsync(ctx, b, 1)
	stays(t, res, "Acquire while an oversize grant is held")
	b.Release(1000)
	if err := within(t, res, "Acquire after the oversize grant is returned"); err != nil {
		t.Fatal(err)
	}
	wantUsed(t, b, 1)

	// An oversize request waits for the budget to empty, then is granted.
	res = acquireAsync(ctx, b, 500)
	stays(t, res, "oversize Acquire while something is charged")
	b.Release(1)
	if err := within(t, res, "oversize Acquire once empty"); err != nil {
		t.Fatal(err)
	}
	wantUsed(t, b, 500)
}

func TestBudgetContextCancel(t *testing.T) {
	b := NewBudget(10)
	if err := b.Acquire(context.Background(), 10); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := acquireAsync(ctx, b, 1)
	stays(t, res, "Acquire beyond the limit")
	cancel()
	if err := within(t, res, "Acquire after cancel"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v, want context.Canceled", err)
	}
	wantUsed(t, b, 10) // the failed request charged nothing
	b.Release(10)
	wantUsed(t, b, 0)
}

func TestBudgetUnlimited(t *testing.T) {
	for _, limit := range []int64{0, -1} {
		b := NewBudget(limit)
		for range 100 {
			if err := b.Acquire(context.Background(), 1<<30); err != nil {
				t.Fatal(err)
			}
		}
		wantUsed(t, b, 100<<30)
	}
}

// TestBudgetConcurrent: many goroutines charge and return; the limit is
// never exceeded (every request fits the limit, so the empty-budget
// exception never applies) and everything is returned in the end.
func TestBudgetConcurrent(t *testing.T) {
	const limit = 1000
	b := NewBudget(limit)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 300 {
				n := int64(1 + (g*31+i*7)%400)
				if err := b.Acquire(context.Background(), n); err != nil {
					t.Error(err)
					return
				}
				h := held.Add(n)
				for {
					p := peak.Load()
					if h <= p || peak.CompareAndSwap(p, h) {
						break
					}
				}
				held.Add(-n)
				b.Release(n)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Fatalf("peak held %d beyond the limit %d", p, limit)
	}
	wantUsed(t, b, 0)
}

// TestBudgetServesInOrder: waiters are granted in the order they came, and
// one that gives up leaves its place to the next, so under a full budget
// readers take turns instead of racing for each release.
func TestBudgetServesInOrder(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	if err := b.Acquire(ctx, 100); err != nil {
		t.Fatal(err)
	}
	const waiters = 8
	order := make(chan int, waiters)
	cancelled := 3
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range waiters {
		wctx := ctx
		if i == cancelled {
			wctx = cctx
		}
		wg.Go(func() {
			if err := b.Acquire(wctx, 10); err == nil {
				order <- i
			}
		})
		for b.waiting() != i+1 { // queued before the next one starts
			runtime.Gosched()
		}
	}
	cancel()
	for b.waiting() != waiters-1 {
		runtime.Gosched()
	}
	if b.TryAcquire(1) {
		t.Fatal("TryAcquire went ahead of the queue")
	}
	want := 0
	for range waiters - 1 {
		if want == cancelled {
			want++
		}
		b.Release(10) // room for exactly one more: the next in line
		if got := <-order; got != want {
			t.Fatalf("waiter %d was served when %d was next", got, want)
		}
		want++
	}
	wg.Wait()
	wantUsed(t, b, 100)
}
