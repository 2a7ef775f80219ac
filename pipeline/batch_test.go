package pipeline

import (
	"fmt"
	"testing"
)

// TestBatchKeep: narrowing a batch keeps the marked events in order across
// chunks and parts, skips dropped events, and recounts events and bytes.
func TestBatchKeep(t *testing.T) {
	c1 := &Chunk{Events: []Event{{Raw: []byte("a0")}, {Raw: []byte("a1"), Drop: true}, {Raw: []byte("a2")}, {Raw: []byte("a3")}}}
	c2 := &Chunk{Events: []Event{{Raw: []byte("b0")}, {Raw: []byte("b1")}}}
	var b Batch
	for _, i := range []int{0, 2, 3} {
		b.add(c1, i)
	}
	b.add(c2, 0)
	b.add(c2, 1)
	b.acks = append(b.acks, c1, c2)
	// All order: a0 a2 a3 b0 b1
	b.keep([]bool{false, true, true, false, true})
	var got []string
	for _, ev := range b.All() {
		got = append(got, string(ev.Raw))
	}
	if fmt.Sprint(got) != "[a2 a3 b1]" || b.Len() != 3 || b.Bytes() != 9 {
		t.Fatalf("kept %v, %d events, %d bytes", got, b.Len(), b.Bytes())
	}
	if len(b.parts) != 2 || len(b.acks) != 2 {
		t.Fatalf("parts %v acks %d: contiguous events must share a part, acknowledgements stay", b.parts, len(b.acks))
	}
	b.keep([]bool{false, false, false})
	if b.Len() != 0 || len(b.parts) != 0 {
		t.Fatalf("empty keep left %d events", b.Len())
	}
}
