package pipeline

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ackModel is the specification of ordered acknowledgements: after each
// ack, the committed offset is the end of the longest acknowledged prefix,
// and the callback runs exactly when that prefix grows.
func ackModel(ends []int64, order []int) []int64 {
	acked := make([]bool, len(ends))
	next := 0
	var commits []int64
	for _, seq := range order {
		acked[seq] = true
		grew := false
		for next < len(ends) && acked[next] {
			next++
			grew = true
		}
		if grew {
			commits = append(commits, ends[next-1])
		}
	}
	return commits
}

func runAcks(t *testing.T, ends []int64, order []int) []int64 {
	t.Helper()
	var got []int64
	s := &Source{commit: func(off int64) { got = append(got, off) }}
	s.inflight.Store(int64(len(ends)))
	for _, seq := range order {
		s.ack(uint64(seq), ends[seq])
	}
	if n := s.InFlight(); n != 0 {
		t.Errorf("InFlight = %d after every ack, want 0", n)
	}
	if c := s.Committed(); c != ends[len(ends)-1] {
		t.Errorf("Committed = %d, want %d", c, ends[len(ends)-1])
	}
	if len(s.acked) != 0 {
		t.Errorf("%d acknowledgements still parked", len(s.acked))
	}
	return got
}

func TestSourceAckTable(t *testing.T) {
	ends := []int64{10, 30, 31, 60, 100}
	for _, tc := range []struct {
		order []int
		want  []int64
	}{
		{[]int{0, 1, 2, 3, 4}, []int64{10, 30, 31, 60, 100}},
		{[]int{4, 3, 2, 1, 0}, []int64{100}},
		{[]int{1, 0, 3, 2, 4}, []int64{30, 60, 100}},
		{[]int{0, 2, 3, 4, 1}, []int64{10, 100}},
		{[]int{2, 0, 4, 1, 3}, []int64{10, 31, 100}},
		{[]int{1, 2, 3, 4, 0}, []int64{100}},
		{[]int{0, 4, 1, 3, 2}, []int64{10, 30, 100}},
	} {
		t.Run(fmt.Sprint(tc.order), func(t *testing.T) {
			got := runAcks(t, ends, tc.order)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("commits %v, want %v", got, tc.want)
			}
			if m := ackModel(ends, tc.order); !slices.Equal(m, tc.want) {
				t.Fatalf("model disagrees with the table: %v", m) // guards the model
			}
		})
	}
}

func permutations(n int) [][]int {
	if n == 0 {
		return [][]int{{}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := slices.Insert(slices.Clone(p), i, n-1)
			out = append(out, q)
		}
	}
	return out
}

// TestSourceAckAllPermutations checks every order of acknowledging six
// chunks against the model: only the contiguous prefix commits, and commits
// strictly increase.
func TestSourceAckAllPermutations(t *testing.T) {
	ends := []int64{5, 6, 20, 21, 50, 51}
	perms := permutations(len(ends))
	if len(perms) != 720 {
		t.Fatalf("%d permutations", len(perms))
	}
	for _, order := range perms {
		got := runAcks(t, ends, order)
		if want := ackModel(ends, order); !slices.Equal(got, want) {
			t.Fatalf("order %v: commits %v, want %v", order, got, want)
		}
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("order %v: commits %v do not increase", order, got)
			}
		}
	}
}

// TestSourceAckConcurrent acknowledges chunks from many goroutines in a
// random order: the callback sees increasing offsets and ends at the last.
func TestSourceAckConcurrent(t *testing.T) {
	const n = 20000
	ends := make([]int64, n)
	for i := range ends {
		ends[i] = int64(i+1) * 3
	}
	var got []int64 // commit runs under the source's lock
	s := &Source{commit: func(off int64) { got = append(got, off) }}
	s.inflight.Store(n)
	order := rand.Perm(n)
	work := make(chan int, n)
	for _, seq := range order {
		work <- seq
	}
	close(work)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for seq := range work {
				s.ack(uint64(seq), ends[seq])
			}
		})
	}
	wg.Wait()
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("commit %d: %d after %d", i, got[i], got[i-1])
		}
	}
	if len(got) == 0 || got[len(got)-1] != ends[n-1] || s.Committed() != ends[n-1] {
		t.Fatalf("last commit %v, Committed %d; want %d", got[len(got)-1:], s.Committed(), ends[n-1])
	}
	if s.InFlight() != 0 {
		t.Fatalf("InFlight = %d", s.InFlight())
	}
}

// TestSourceReorder has many goroutines hand chunks to reorder in a random
// order; deliver must see them in exact sequence order, one call at a time.
// deliver appends to an unsynchronised slice on purpose: under -race that
// checks that reorder orders successive deliverers (happens-before).
func TestSourceReorder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		workers int
		slow    bool // deliver sleeps sometimes, so chunks park while delivering
	}{
		{"fast", 50000, 8, false},
		{"slow-deliver", 3000, 16, true},
		{"one-worker", 1000, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Source{}
			var got []uint64
			var inside atomic.Int32
			deliver := func(c *Chunk) {
				if inside.Add(1) != 1 {
					t.Error("deliver called concurrently")
				}
				got = append(got, c.Seq)
				if tc.slow && c.Seq%97 == 0 {
					time.Sleep(time.Millisecond)
				}
				inside.Add(-1)
			}
			work := make(chan *Chunk, tc.n)
			for _, seq := range rand.Perm(tc.n) {
				work <- &Chunk{Seq: uint64(seq)}
			}
			close(work)
			var wg sync.WaitGroup
			for range tc.workers {
				wg.Go(func() {
					for c := range work {
						s.reorder(c, deliver)
					}
				})
			}
			wg.Wait()
			if len(got) != tc.n {
				t.Fatalf("delivered %d chunks, want %d", len(got), tc.n)
			}
			for i, seq := range got {
				if seq != uint64(i) {
					t.Fatalf("position %d: chunk %d", i, seq)
				}
			}
			if len(s.rwait) != 0 || s.delivering || s.rnext != uint64(tc.n) {
				t.Fatalf("state after: %d parked, delivering=%v, rnext=%d", len(s.rwait), s.delivering, s.rnext)
			}
		})
	}
}
