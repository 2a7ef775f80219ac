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

// TestEventIDsSurviveKeep: every event of a batch has its own id, and a
// narrowed batch (a retry of what failed) yields the same ids for the
// events it kept. Sources made alike still get different serials.
func TestEventIDsSurviveKeep(t *testing.T) {
	s1, s2 := &Source{Name: "x"}, &Source{Name: "x"}
	c1 := &Chunk{Source: s1, Seq: 7, Events: []Event{{Raw: []byte("a0")}, {Raw: []byte("a1"), Drop: true}, {Raw: []byte("a2")}}}
	c2 := &Chunk{Source: s2, Seq: 7, Events: []Event{{Raw: []byte("b0")}, {Raw: []byte("b1")}}}
	var b Batch
	for _, i := range []int{0, 1, 2} {
		b.add(c1, i)
	}
	b.add(c2, 0)
	b.add(c2, 1)
	ids := map[string]string{}
	for id, ev := range b.WithIDs() {
		text := string(id.AppendText(nil))
		if other, dup := ids[text]; dup {
			t.Fatalf("%s and %s share id %s", other, ev.Raw, text)
		}
		ids[text] = string(ev.Raw)
	}
	if len(ids) != 4 || s1.Serial() == s2.Serial() || s1.Serial() != s1.Serial() {
		t.Fatalf("ids %v, serials %d %d", ids, s1.Serial(), s2.Serial())
	}
	b.keep([]bool{false, true, false, true}) // a2, b1
	n := 0
	for id, ev := range b.WithIDs() {
		if text := string(id.AppendText(nil)); ids[text] != string(ev.Raw) {
			t.Fatalf("after keep %s has id %s, which was %q's", ev.Raw, text, ids[text])
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d events after keep, want 2", n)
	}
}
