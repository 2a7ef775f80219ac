package codec

import (
	"fmt"
	"testing"

	"github.com/tailship/tailship/pipeline"
)

// TestAppendJSONParsedValues: the parsers' arena values encode as their
// kinds: *Text as an escaped string, *RawJSON as is (numbers keep their
// digits, nested values their shape), an empty *RawJSON as null; and
// encoding them allocates nothing.
func TestAppendJSONParsedValues(t *testing.T) {
	a := new(pipeline.Arena)
	big := a.RawJSON([]byte("123456789012345678901234567890"))
	ev := &pipeline.Event{Raw: []byte("raw"), Fields: []pipeline.Field{
		{Key: "s", Value: a.Text([]byte("say \"hi\"\n\xff"))},
		{Key: "n", Value: big},
		{Key: "o", Value: a.RawJSON([]byte(`{"a":[1,true,null]}`))},
		{Key: "e", Value: a.RawJSON(nil)},
		{Key: "v", Value: pipeline.Text("value form")},
	}}
	got := string(AppendJSON(nil, nil, ev))
	want := `{"message":"raw","s":"say \"hi\"\n\ufffd","n":123456789012345678901234567890,"o":{"a":[1,true,null]},"e":null,"v":"value form"}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	decodeObject(t, []byte(got))
	buf := make([]byte, 0, 1024)
	if n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], nil, ev) }); n != 0 {
		t.Errorf("AppendJSON allocates %v times per event with parsed values", n)
	}
}

// TestParsedValuesPrint: outputs that format values with fmt (index
// templates, labels) see the text, not a pointer.
func TestParsedValuesPrint(t *testing.T) {
	a := new(pipeline.Arena)
	if got := fmt.Sprint(a.Text([]byte("web")), " ", a.RawJSON([]byte("42"))); got != "web 42" {
		t.Errorf("fmt.Sprint = %q", got)
	}
}
