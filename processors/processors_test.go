package processors

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// ev builds an event with text fields from "k=v" pairs.
func ev(raw string, kv ...string) pipeline.Event {
	e := pipeline.Event{Raw: []byte(raw)}
	for _, p := range kv {
		k, v, _ := strings.Cut(p, "=")
		t := pipeline.Text(v)
		e.Fields = append(e.Fields, pipeline.Field{Key: k, Value: &t})
	}
	return e
}

// show renders an event's fields as "k=v,k=v" for comparison.
func show(e *pipeline.Event) string {
	var parts []string
	for _, f := range e.Fields {
		b, ok := pipeline.AppendText(nil, f.Value)
		if !ok {
			b = fmt.Append(nil, f.Value)
		}
		parts = append(parts, f.Key+"="+string(b))
	}
	return strings.Join(parts, ",")
}

func run(t *testing.T, p pipeline.Processor, e *pipeline.Event, withArena bool) bool {
	t.Helper()
	var keep bool
	var err error
	var a *pipeline.Arena
	if withArena {
		a = new(pipeline.Arena)
	}
	switch {
	case withArena && isSource(p):
		keep, err = p.(pipeline.SourceProcessor).ProcessSource(nil, e, a)
	case withArena && isArena(p):
		keep, err = p.(pipeline.ArenaProcessor).ProcessArena(e, a)
	default:
		keep, err = p.Process(e)
	}
	if err != nil {
		t.Fatal(err)
	}
	return keep
}

func isSource(p pipeline.Processor) bool { _, ok := p.(pipeline.SourceProcessor); return ok }
func isArena(p pipeline.Processor) bool  { _, ok := p.(pipeline.ArenaProcessor); return ok }

func build(t *testing.T, c pipeline.ProcessorConfig) pipeline.Processor {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	p, err := c.Build(pipeline.ProcessorContext{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFieldProcessors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  pipeline.ProcessorConfig
		in   pipeline.Event
		want string
	}{
		{"add to raw event", &AddFieldsConfig{Fields: map[string]any{"env": "prod", "n": int64(3)}, Overwrite: true},
			ev("line"), "env=prod,n=3"},
		{"add overwrites", &AddFieldsConfig{Fields: map[string]any{"env": "prod"}, Overwrite: true},
			ev("line", "env=dev", "a=1"), "env=prod,a=1"},
		{"add keeps existing", &AddFieldsConfig{Fields: map[string]any{"env": "prod", "b": true}},
			ev("line", "env=dev"), "env=dev,b=true"},
		{"rename", &RenameConfig{Fields: map[string]string{"lvl": "level", "msg": "message"}},
			ev("l", "lvl=info", "x=1", "msg=hi"), "level=info,x=1,message=hi"},
		{"rename missing is no-op", &RenameConfig{Fields: map[string]string{"nope": "x"}},
			ev("l", "a=1"), "a=1"},
		{"rename replaces target", &RenameConfig{Fields: map[string]string{"a": "b"}},
			ev("l", "a=1", "b=2", "c=3"), "b=1,c=3"},
		{"drop", &DropFieldsConfig{Fields: []string{"password", "c", "absent"}},
			ev("l", "a=1", "password=x", "b=2", "c=3"), "a=1,b=2"},
		{"drop all", &DropFieldsConfig{Fields: []string{"a"}}, ev("l", "a=1"), ""},
		{"redact field", &RedactConfig{Fields: []string{"token"}, Pattern: `[0-9a-f]{8,}`, Replacement: "***"},
			ev("l", "token=abc deadbeef01 x", "other=deadbeef01"), "token=abc *** x,other=deadbeef01"},
		{"redact groups", &RedactConfig{Fields: []string{"q"}, Pattern: `(password=)\S+`, Replacement: "${1}[REDACTED]"},
			ev("l", "q=user=bob password=hunter2 ok"), "q=user=bob password=[REDACTED] ok"},
	} {
		for _, arena := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/arena=%v", tc.name, arena), func(t *testing.T) {
				p := build(t, tc.cfg)
				e := tc.in
				e.Fields = append([]pipeline.Field(nil), tc.in.Fields...)
				// Capped, as the pool's are: appending must not write
				// past the event's own fields.
				e.Fields = e.Fields[:len(e.Fields):len(e.Fields)]
				if !run(t, p, &e, arena) {
					t.Fatal("dropped")
				}
				if got := show(&e); got != tc.want {
					t.Fatalf("got %q, want %q", got, tc.want)
				}
				if string(e.Raw) != string(tc.in.Raw) {
					t.Fatalf("raw changed to %q", e.Raw)
				}
			})
		}
	}
}

// Redacting "message" masks the raw line (no parser ran) and a parsed
// message field, in new memory: the original bytes stay as they were,
// since other outputs share them.
func TestRedactMessage(t *testing.T) {
	p := build(t, &RedactConfig{Fields: []string{"message"}, Pattern: `Bearer [A-Za-z0-9.]+`, Replacement: "Bearer [REDACTED]"})
	raw := []byte("GET /x Authorization: Bearer abc.def.ghi ok")
	orig := string(raw)
	for _, arena := range []bool{false, true} {
		e := pipeline.Event{Raw: raw}
		run(t, p, &e, arena)
		if got := string(e.Raw); got != "GET /x Authorization: Bearer [REDACTED] ok" {
			t.Fatalf("raw %q", got)
		}
		if string(raw) != orig {
			t.Fatalf("original line was overwritten: %q", raw)
		}
		parsed := ev(orig, "message=token Bearer xyz1 end", "level=info")
		run(t, p, &parsed, arena)
		if got := show(&parsed); got != "message=token Bearer [REDACTED] end,level=info" {
			t.Fatalf("fields %q", got)
		}
		clean := pipeline.Event{Raw: []byte("nothing here")}
		run(t, p, &clean, arena)
		if string(clean.Raw) != "nothing here" {
			t.Fatal("unmatched line changed")
		}
	}
}

func TestFilter(t *testing.T) {
	static := []pipeline.Field{{Key: "host", Value: "web-1"}}
	src := &pipeline.Source{Name: "s", Fields: static}
	lvl := func(l string) pipeline.Event { return ev("x level="+l, "level="+l, "status=500") }
	for _, tc := range []struct {
		name string
		cfg  FilterConfig
		in   pipeline.Event
		keep bool
	}{
		{"keep match", FilterConfig{Condition: pipeline.Condition{Field: "level", Match: "^(error|fatal)$"}, Action: "keep"}, lvl("error"), true},
		{"keep no match", FilterConfig{Condition: pipeline.Condition{Field: "level", Match: "^(error|fatal)$"}, Action: "keep"}, lvl("errors"), false},
		{"drop match", FilterConfig{Condition: pipeline.Condition{Field: "level", Equals: "debug"}, Action: "drop"}, lvl("debug"), false},
		{"drop no match", FilterConfig{Condition: pipeline.Condition{Field: "level", Equals: "debug"}, Action: "drop"}, lvl("info"), true},
		{"missing field keep", FilterConfig{Condition: pipeline.Condition{Field: "nope", Match: "."}, Action: "keep"}, lvl("info"), false},
		{"missing field drop", FilterConfig{Condition: pipeline.Condition{Field: "nope", Match: "."}, Action: "drop"}, lvl("info"), true},
		{"raw message", FilterConfig{Condition: pipeline.Condition{Field: "message", Match: "level=warn"}, Action: "keep"}, pipeline.Event{Raw: []byte("t level=warn")}, true},
		{"number equals", FilterConfig{Condition: pipeline.Condition{Field: "status", Equals: int64(500)}, Action: "keep"}, lvl("info"), true},
		{"typed number", FilterConfig{Condition: pipeline.Condition{Field: "code", Equals: int64(404)}, Action: "keep"},
			pipeline.Event{Fields: []pipeline.Field{{Key: "code", Value: int64(404)}}}, true},
		{"raw json number", FilterConfig{Condition: pipeline.Condition{Field: "code", Match: "^4"}, Action: "keep"},
			pipeline.Event{Fields: []pipeline.Field{{Key: "code", Value: rawJSON("404")}}}, true},
		{"raw json string", FilterConfig{Condition: pipeline.Condition{Field: "u", Equals: "a\"b"}, Action: "keep"},
			pipeline.Event{Fields: []pipeline.Field{{Key: "u", Value: rawJSON(`"a\"b"`)}}}, true},
		{"negate match", FilterConfig{Condition: pipeline.Condition{Field: "level", Equals: "debug", Negate: true}, Action: "keep"}, lvl("info"), true},
		{"negate no match", FilterConfig{Condition: pipeline.Condition{Field: "level", Equals: "debug", Negate: true}, Action: "keep"}, lvl("debug"), false},
		{"negate missing", FilterConfig{Condition: pipeline.Condition{Field: "nope", Match: ".", Negate: true}, Action: "keep"}, lvl("info"), true},
		{"source field", FilterConfig{Condition: pipeline.Condition{Field: "host", Equals: "web-1"}, Action: "keep"}, lvl("info"), true},
		{"nested", FilterConfig{Condition: pipeline.Condition{Field: "http.status", Equals: "503"}, Action: "keep"},
			pipeline.Event{Fields: []pipeline.Field{{Key: "http", Value: []pipeline.Field{{Key: "status", Value: "503"}}}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			p := build(t, &cfg)
			e := tc.in
			keep, err := p.(pipeline.SourceProcessor).ProcessSource(src, &e, nil)
			if err != nil || keep != tc.keep {
				t.Fatalf("keep = %v, %v; want %v", keep, err, tc.keep)
			}
		})
	}
}

func rawJSON(s string) *pipeline.RawJSON { r := pipeline.RawJSON(s); return &r }

// TestSample: 1 in N by a hash of the field, so the same trace id gets the
// same decision every time, and about 1/N of distinct ids are kept.
func TestSample(t *testing.T) {
	p := build(t, &SampleConfig{Rate: 4, Field: "trace"})
	kept := map[string]bool{}
	const n = 20000
	for i := range n {
		id := fmt.Sprintf("trace-%d", i)
		e := ev("line", "trace="+id)
		kept[id] = run(t, p, &e, true)
	}
	count := 0
	for i := range n {
		id := fmt.Sprintf("trace-%d", i)
		e := ev("another line", "trace="+id)
		if run(t, p, &e, true) != kept[id] {
			t.Fatalf("%s: decision changed", id)
		}
		if kept[id] {
			count++
		}
	}
	// FNV-1a over distinct ids: within 10% of n/4.
	if count < n/4*9/10 || count > n/4*11/10 {
		t.Fatalf("kept %d of %d, want about %d", count, n, n/4)
	}
	one := build(t, &SampleConfig{Rate: 1, Field: "message"})
	e := ev("x")
	if !run(t, one, &e, false) {
		t.Fatal("rate 1 dropped an event")
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)} }

// TestThrottle: per key, burst events pass at once, then rate per second;
// keys do not share a budget, and beyond max_keys they share one bucket.
func TestThrottle(t *testing.T) {
	clk := newClock()
	cfg := &ThrottleConfig{Rate: 10, Burst: 5, KeyFields: []string{"svc"}, MaxKeys: 2}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p := newThrottle(cfg, clk.now)
	pass := func(svc string, n int) int {
		k := 0
		for range n {
			e := ev("x", "svc="+svc)
			if run(t, p, &e, true) {
				k++
			}
		}
		return k
	}
	if got := pass("a", 20); got != 5 {
		t.Fatalf("burst: %d passed, want 5", got)
	}
	if got := pass("b", 7); got != 5 {
		t.Fatalf("key b: %d passed, want 5 (its own burst)", got)
	}
	clk.add(300 * time.Millisecond) // 3 tokens at 10/s
	if got := pass("a", 10); got != 3 {
		t.Fatalf("after 300ms: %d passed, want 3", got)
	}
	clk.add(10 * time.Second) // refilled, capped at burst
	if got := pass("a", 10); got != 5 {
		t.Fatalf("after idle: %d passed, want 5 (burst cap)", got)
	}
	if got := pass("b", 10); got != 5 {
		t.Fatalf("b after idle: %d passed, want 5", got)
	}
	// Third and fourth keys while a and b are not idle (so neither is
	// evicted): both use the shared overflow bucket.
	if got := pass("c", 3) + pass("d", 3); got != 5 {
		t.Fatalf("overflow keys: %d passed, want 5 shared", got)
	}
	if len(p.buckets) != 2 {
		t.Fatalf("%d buckets, want max_keys 2", len(p.buckets))
	}
	// Once a and b have refilled they are forgotten (a full bucket is
	// the same as a new one), and a new key gets a bucket of its own.
	clk.add(time.Second)
	if got := pass("e", 6); got != 5 {
		t.Fatalf("new key after eviction: %d passed, want its own burst of 5", got)
	}
	if _, ok := p.buckets["e"]; !ok || len(p.buckets) > 2 {
		t.Fatalf("buckets %v", p.buckets)
	}
}

// TestAggregateTumbling: count, sum, avg, min and max per key over
// windows closed by Flush at fake times, checked against what was fed.
func TestAggregateTumbling(t *testing.T) {
	clk := newClock()
	cfg := DefaultAggregate()
	cfg.Name, cfg.GroupBy, cfg.Field = "http", []string{"route"}, "ms"
	cfg.Width = config.Dur(10 * time.Second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := NewAggregate(cfg, clk.now())
	feed := func(route string, vals ...string) {
		for _, v := range vals {
			e := ev("x", "route="+route, "ms="+v)
			if keep, _ := a.Process(&e); !keep {
				t.Fatal("aggregate dropped an event without drop_events")
			}
		}
	}
	feed("/a", "10", "20", "30", "40")
	feed("/b", "2.5", "-1")
	e := ev("x", "route=/b", "ms=not-a-number") // counted, not summed
	a.Process(&e)
	clk.add(10 * time.Second)
	got := eventsByKey(a.Flush(clk.now(), false))
	want := map[string]string{
		"/a": "aggregate=http,route=/a,count=4,sum=100,avg=25,min=10,max=40,values=4,window_start=2026-12-01T00:00:00Z,window_end=2026-12-01T00:00:10Z",
		"/b": "aggregate=http,route=/b,count=3,sum=1.5,avg=0.75,min=-1,max=2.5,values=2,window_start=2026-12-01T00:00:00Z,window_end=2026-12-01T00:00:10Z",
	}
	checkEvents(t, got, want)
	snap := map[string]float64{}
	for _, s := range a.Snapshot() {
		snap[s.Name+"{"+s.Labels[0].Name+"="+s.Labels[0].Value+"}"] = s.Value
	}
	if snap["http_count{route=/a}"] != 4 || snap["http_avg{route=/b}"] != 0.75 || snap["http_max{route=/a}"] != 40 || snap["http_min{route=/b}"] != -1 || snap["http_sum{route=/a}"] != 100 {
		t.Fatalf("snapshot %v", snap)
	}
	// Next window: only /a; /b had nothing and is forgotten.
	feed("/a", "5")
	clk.add(10 * time.Second)
	got = eventsByKey(a.Flush(clk.now(), false))
	checkEvents(t, got, map[string]string{
		"/a": "aggregate=http,route=/a,count=1,sum=5,avg=5,min=5,max=5,values=1,window_start=2026-12-01T00:00:10Z,window_end=2026-12-01T00:00:20Z",
	})
	if len(a.Snapshot()) != 5 {
		t.Fatalf("snapshot has %d series, want the 5 of /a", len(a.Snapshot()))
	}
	clk.add(10 * time.Second)
	if evs := a.Flush(clk.now(), true); len(evs) != 0 {
		t.Fatalf("empty window emitted %d events", len(evs))
	}
}

// TestAggregateSliding: width 3 intervals; each flush covers the last
// three buckets.
func TestAggregateSliding(t *testing.T) {
	clk := newClock()
	cfg := DefaultAggregate()
	cfg.Name, cfg.Field = "lat", "v"
	cfg.Width, cfg.Interval = config.Dur(3*time.Second), config.Dur(time.Second)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := NewAggregate(cfg, clk.now())
	if a.Every() != time.Second {
		t.Fatalf("Every %s", a.Every())
	}
	perBucket := [][]float64{{1, 2}, {10}, {100, 200, 300}, {}, {7}}
	for i, vals := range perBucket {
		for _, v := range vals {
			e := ev("x", fmt.Sprintf("v=%g", v))
			a.Process(&e)
		}
		clk.add(time.Second)
		evs := a.Flush(clk.now(), false)
		// Expected: the union of buckets i-2..i.
		var count int
		var sum, mn, mx float64
		first := true
		for j := max(0, i-2); j <= i; j++ {
			for _, v := range perBucket[j] {
				count++
				sum += v
				if first || v < mn {
					mn = v
				}
				if first || v > mx {
					mx = v
				}
				first = false
			}
		}
		if len(evs) != 1 {
			t.Fatalf("flush %d: %d events", i, len(evs))
		}
		start := clk.now().Add(-3 * time.Second)
		if i < 2 {
			start = newClock().t
		}
		want := fmt.Sprintf("aggregate=lat,count=%d,sum=%g,avg=%g,min=%g,max=%g,values=%d,window_start=%s,window_end=%s",
			count, sum, sum/float64(count), mn, mx, count, start.Format(time.RFC3339), clk.now().Format(time.RFC3339))
		if got := show(&evs[0]); got != want {
			t.Fatalf("flush %d:\n got %s\nwant %s", i, got, want)
		}
	}
}

func TestAggregateMaxKeysAndDrop(t *testing.T) {
	cfg := DefaultAggregate()
	cfg.Name, cfg.GroupBy, cfg.MaxKeys, cfg.DropEvents = "n", []string{"k"}, 2, true
	a := NewAggregate(cfg, time.Unix(0, 0))
	for i := range 10 {
		e := ev("x", fmt.Sprintf("k=%d", i%4))
		if keep, _ := a.Process(&e); keep {
			t.Fatal("drop_events kept an event")
		}
	}
	got := eventsByKey(a.Flush(time.Unix(60, 0), false))
	if len(got) != 3 || !strings.Contains(got["0"], "count=3") || !strings.Contains(got["1"], "count=3") || !strings.Contains(got["__other__"], "count=4") {
		t.Fatalf("%v", got)
	}
	// The raw line is logfmt of the fields, for raw-format outputs.
	evs := a.Flush(time.Unix(61, 0), false)
	if len(evs) != 0 {
		t.Fatal("emitted an empty window")
	}
}

func eventsByKey(evs []pipeline.Event) map[string]string {
	out := map[string]string{}
	for i := range evs {
		key := ""
		for _, f := range evs[i].Fields {
			if f.Key != "aggregate" {
				if s, ok := f.Value.(string); ok {
					key = s
				}
				break
			}
		}
		out[key] = show(&evs[i])
	}
	return out
}

func checkEvents(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %v, want %d", len(got), got, len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("%s:\n got %s\nwant %s", k, got[k], w)
		}
	}
}

func TestAggregateRawLine(t *testing.T) {
	cfg := DefaultAggregate()
	cfg.Name, cfg.GroupBy = "n", []string{"svc"}
	a := NewAggregate(cfg, time.Unix(0, 0).UTC())
	e := ev("x", "svc=my app")
	a.Process(&e)
	evs := a.Flush(time.Unix(60, 0), false)
	want := `aggregate=n svc="my app" count=1 window_start=1970-01-01T00:00:00Z window_end=1970-01-01T00:01:00Z`
	if len(evs) != 1 || string(evs[0].Raw) != want {
		t.Fatalf("raw %q, want %q", evs[0].Raw, want)
	}
}

// TestValidate: each bad setting is reported under its own key.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  pipeline.ProcessorConfig
		keys string
	}{
		{&AddFieldsConfig{}, "fields"},
		{&AddFieldsConfig{Fields: map[string]any{"a": []any{1}}}, "fields.a"},
		{&RenameConfig{Fields: map[string]string{"a": "", "b": "b"}}, "fields.a,fields.b"},
		{&RenameConfig{Fields: map[string]string{"a": "x", "b": "x"}}, "fields.b"},
		{&DropFieldsConfig{}, "fields"},
		{&FilterConfig{Action: "maybe"}, "field,match,action"},
		{&FilterConfig{Condition: pipeline.Condition{Field: "a", Match: "("}, Action: "keep"}, "match"},
		{&FilterConfig{Condition: pipeline.Condition{Field: "a", Match: "x", Equals: "y"}, Action: "keep"}, "match"},
		{&FilterConfig{Condition: pipeline.Condition{Field: "a", Equals: []any{}}, Action: "keep"}, "equals"},
		{&SampleConfig{Rate: 0, Field: "x"}, "rate"},
		{&SampleConfig{Rate: 2}, "field"},
		{&ThrottleConfig{Burst: -1}, "rate,burst,max_keys"},
		{&RedactConfig{Pattern: "[", Fields: []string{""}}, "pattern,fields"},
		{&RedactConfig{}, "pattern,fields"},
		{&AggregateConfig{Name: "bad name", Width: config.Dur(time.Millisecond), MaxKeys: 1}, "name,width"},
		{&AggregateConfig{Name: "ok", Width: config.Dur(time.Minute), Interval: config.Dur(7 * time.Second), MaxKeys: 1}, "interval"},
		{&AggregateConfig{Name: "ok", Width: config.Dur(time.Minute), GroupBy: []string{"count"}}, "group_by,max_keys"},
	} {
		err := tc.cfg.Validate()
		var keys []string
		for _, e := range config.Flatten(err) {
			var ce *config.Error
			if !errors.As(e, &ce) {
				t.Fatalf("%T: error without a key: %v", tc.cfg, e)
			}
			keys = append(keys, ce.Key)
		}
		if got := strings.Join(keys, ","); got != tc.keys {
			t.Errorf("%T %+v: keys %q, want %q (%v)", tc.cfg, tc.cfg, got, tc.keys, err)
		}
	}
}

func TestRegistered(t *testing.T) {
	want := "add_fields,aggregate,drop_fields,filter,redact,rename,sample,throttle"
	if got := strings.Join(pipeline.ProcessorTypes(), ","); got != want {
		t.Fatalf("types %s, want %s", got, want)
	}
	for _, typ := range pipeline.ProcessorTypes() {
		if _, ok := pipeline.NewProcessorConfig(typ); !ok {
			t.Fatal(typ)
		}
	}
}

// TestProcessorAllocs holds the processors to what the README claims: no
// allocation per event (the arena's slabs amortise), except redact on a
// line that matches.
func TestProcessorAllocs(t *testing.T) {
	src := &pipeline.Source{Name: "s", Fields: []pipeline.Field{{Key: "host", Value: "web-1"}}}
	agg := DefaultAggregate()
	agg.Name, agg.GroupBy, agg.Field = "a", []string{"route", "host"}, "ms"
	for _, tc := range []struct {
		name string
		cfg  pipeline.ProcessorConfig
	}{
		{"filter", &FilterConfig{Condition: pipeline.Condition{Field: "level", Match: "^info$"}, Action: "keep"}},
		{"filter message", &FilterConfig{Condition: pipeline.Condition{Field: "message", Match: "GET"}, Action: "keep"}},
		{"sample message", &SampleConfig{Rate: 3, Field: "message"}},
		{"throttle", &ThrottleConfig{Rate: 1e9, KeyFields: []string{"route", "host"}, MaxKeys: 10}},
		{"aggregate", agg},
		{"add_fields", &AddFieldsConfig{Fields: map[string]any{"env": "prod"}, Overwrite: true}},
		{"rename", &RenameConfig{Fields: map[string]string{"level": "severity"}}},
		{"drop_fields", &DropFieldsConfig{Fields: []string{"ms"}}},
		{"redact no match", &RedactConfig{Fields: []string{"message", "route"}, Pattern: `password=\S+`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := build(t, tc.cfg)
			a := new(pipeline.Arena)
			base := ev("GET /x 200", "level=info", "route=/x", "ms=12")
			e := base
			allocs := testing.AllocsPerRun(2000, func() {
				e = base
				e.Fields = a.Grow(base.Fields, 0)
				var err error
				switch q := p.(type) {
				case pipeline.SourceProcessor:
					_, err = q.ProcessSource(src, &e, a)
				case pipeline.ArenaProcessor:
					_, err = q.ProcessArena(&e, a)
				default:
					_, err = p.Process(&e)
				}
				if err != nil {
					t.Fatal(err)
				}
			})
			if allocs > 0.05 {
				t.Fatalf("%.2f allocations per event", allocs)
			}
		})
	}
}
