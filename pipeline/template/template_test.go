package template

import (
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
)

func TestAppend(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("x", 3600))
	src := &pipeline.Source{Fields: []pipeline.Field{{Key: "env", Value: "Prod"}, {Key: "service", Value: "static"}}}
	txt := pipeline.Text("from-parser")
	ev := &pipeline.Event{Fields: []pipeline.Field{{Key: "service", Value: "Check Out"}, {Key: "n", Value: int64(7)}, {Key: "p", Value: &txt}, {Key: "empty", Value: ""}}}
	for _, tc := range []struct{ tmpl, want string }{
		{"logs", "logs"},
		{"logs:%{service}", "logs:Check Out"}, // the event's field wins, as written
		{"%{env}-%Y.%m.%d-%H", "Prod-2026.03.04-04"},
		{"x-%{n}-%{p}-%{missing}-%{empty}", "x-7-from-parser-unknown-unknown"},
		{"100%%", "100%"},
	} {
		tm, err := Parse(tc.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := string(tm.Append(nil, src, ev, now, nil)); got != tc.want {
			t.Errorf("%q expands to %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, bad := range []string{"", "x-%", "%{service", "%{}", "%q"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestStaticAndLiteral(t *testing.T) {
	for _, tc := range []struct {
		tmpl            string
		static, literal bool
	}{
		{"logs", true, true}, {"100%%", true, true}, {"logs-%Y", true, false}, {"logs-%{a}", false, false},
	} {
		tm, err := Parse(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		_, lit := tm.Literal()
		if tm.Static() != tc.static || lit != tc.literal {
			t.Errorf("%q: static %v literal %v, want %v %v", tc.tmpl, tm.Static(), lit, tc.static, tc.literal)
		}
	}
}

// TestDottedField: an input's metadata object is reachable by a dotted key.
func TestDottedField(t *testing.T) {
	ev := &pipeline.Event{Fields: []pipeline.Field{{Key: "metadata", Value: []pipeline.Field{{Key: "topic", Value: "orders"}, {Key: "partition", Value: int64(3)}}}}}
	tm, err := Parse("%{metadata.topic}-%{metadata.partition}-%{metadata.nope}")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(tm.Append(nil, nil, ev, time.Now(), nil)); got != "orders-3-unknown" {
		t.Fatalf("got %q", got)
	}
}

// TestNestedFields: a dotted name reaches into nested fields (an input's
// metadata) when no field has the dotted name as written.
func TestNestedFields(t *testing.T) {
	meta := []pipeline.Field{{Key: "routing_key", Value: "logs.app"}, {Key: "deep", Value: []pipeline.Field{{Key: "x", Value: int64(3)}}}}
	ev := &pipeline.Event{Fields: []pipeline.Field{{Key: "metadata", Value: meta}, {Key: "a.b", Value: "flat"}}}
	for key, want := range map[string]string{
		"metadata.routing_key": "logs.app", "metadata.deep.x": "3", "a.b": "flat", "metadata.missing": "unknown",
	} {
		tm, err := Parse("%{" + key + "}")
		if err != nil {
			t.Fatal(err)
		}
		got := string(tm.Append(nil, nil, ev, time.Now(), nil))
		if got != want {
			t.Errorf("%%{%s} = %q, want %q", key, got, want)
		}
	}
}

// TestShapeAndString: Shape stands in for what varies, String writes the
// pattern back as it was parsed.
func TestShapeAndString(t *testing.T) {
	tm, err := Parse("logs.%{service}.%Y%%")
	if err != nil {
		t.Fatal(err)
	}
	if got := tm.Shape(""); got != "logs..%" {
		t.Errorf(`Shape("") = %q`, got)
	}
	if got := tm.Shape("x"); got != "logs.x.x%" {
		t.Errorf(`Shape("x") = %q`, got)
	}
	if got := tm.String(); got != "logs.%{service}.%Y%%" {
		t.Errorf("String() = %q", got)
	}
}
