package processors

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// AggregateConfig is `type = "aggregate"`: per value of group_by, count
// events and sum/avg/min/max the number in field over a window of width,
// emitted every interval (interval = width: tumbling windows; a smaller
// interval that divides width: sliding windows). Each window is emitted as
// one event per key to the outputs the processor feeds, and its values
// are kept for /metrics (Snapshot). Windows follow the agent's clock (when
// events are processed), not the time written in the lines.
//
// Events pass through unchanged unless drop_events is set (then they are
// dropped and counted with reason "aggregate"), so one input can both ship
// lines and summarise them.
type AggregateConfig struct {
	Type       string          `toml:"type"`
	Name       string          `toml:"name"`
	GroupBy    []string        `toml:"group_by"`
	Field      string          `toml:"field"`
	Width      config.Duration `toml:"width"`
	Interval   config.Duration `toml:"interval"`
	DropEvents bool            `toml:"drop_events"`
	MaxKeys    int             `toml:"max_keys"`
}

// DefaultAggregate returns the defaults: one-minute tumbling windows.
func DefaultAggregate() *AggregateConfig {
	return &AggregateConfig{Width: config.Dur(time.Minute), MaxKeys: 10000}
}

var metricName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Validate implements pipeline.ProcessorConfig.
func (c *AggregateConfig) Validate() error {
	var errs []error
	if !metricName.MatchString(c.Name) {
		errs = append(errs, config.Errorf("name", "is required and must be a metric name (letters, digits, '_'), got %q", c.Name))
	}
	w, iv := c.Width.D(), c.Interval.D()
	if w < 10*time.Millisecond {
		errs = append(errs, config.Errorf("width", "must be at least 10ms"))
	}
	if iv != 0 && (iv < 10*time.Millisecond || iv > w || w%iv != 0) {
		errs = append(errs, config.Errorf("interval", "must divide width (%s) evenly and be at least 10ms, got %s", w, iv))
	} else if iv != 0 && w/iv > 1000 {
		errs = append(errs, config.Errorf("interval", "width/interval must be at most 1000 buckets"))
	}
	seen := map[string]bool{}
	for _, g := range c.GroupBy {
		l := labelName(g)
		if g == "" || seen[l] || isStatName(l) {
			errs = append(errs, config.Errorf("group_by", "%q: names must be non-empty, distinct and not count, sum, avg, min, max, aggregate or window_*", g))
		}
		seen[l] = true
	}
	if c.MaxKeys < 1 {
		errs = append(errs, config.Errorf("max_keys", "must be at least 1"))
	}
	return errors.Join(errs...)
}

func isStatName(s string) bool {
	switch s {
	case "count", "sum", "avg", "min", "max", "values", "aggregate", "window_start", "window_end", "message":
		return true
	}
	return false
}

// labelName makes a field name a Prometheus label name.
func labelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Build implements pipeline.ProcessorConfig.
func (c *AggregateConfig) Build(pipeline.ProcessorContext) (pipeline.Processor, error) {
	return NewAggregate(c, time.Now()), nil
}

// Aggregate is the aggregate processor; it is exported so a test or the
// agent can drive its windows (Flush) and read them (Snapshot).
type Aggregate struct {
	name     string
	groupBy  []string
	labels   []string
	field    string
	interval time.Duration
	buckets  int
	drop     bool
	maxKeys  int

	mu      sync.Mutex
	series  map[string]*series
	other   *series     // keys beyond max_keys
	starts  []time.Time // start of each bucket, ring indexed like series buckets
	cur     int
	scratch []byte
	last    []pipeline.Series
}

type series struct {
	values  []string
	buckets []stats
}

type stats struct {
	count, values int64
	sum, min, max float64
}

func (s *stats) add(o stats) {
	if o.values > 0 {
		if s.values == 0 || o.min < s.min {
			s.min = o.min
		}
		if s.values == 0 || o.max > s.max {
			s.max = o.max
		}
	}
	s.count += o.count
	s.values += o.values
	s.sum += o.sum
}

// NewAggregate returns the processor with its first window starting at
// start.
func NewAggregate(c *AggregateConfig, start time.Time) *Aggregate {
	iv := c.Interval.D()
	if iv == 0 {
		iv = c.Width.D()
	}
	n := int(c.Width.D() / iv)
	a := &Aggregate{name: c.Name, groupBy: c.GroupBy, field: c.Field, interval: iv, buckets: n,
		drop: c.DropEvents, maxKeys: c.MaxKeys, series: map[string]*series{}, starts: make([]time.Time, n)}
	for _, g := range c.GroupBy {
		a.labels = append(a.labels, labelName(g))
	}
	a.starts[0] = start
	return a
}

// DropReason implements pipeline.DropReason.
func (a *Aggregate) DropReason() string { return "aggregate" }

// Every implements pipeline.Windowed.
func (a *Aggregate) Every() time.Duration { return a.interval }

// Process implements pipeline.Processor.
func (a *Aggregate) Process(ev *pipeline.Event) (bool, error) { return a.ProcessSource(nil, ev, nil) }

// ProcessSource implements pipeline.SourceProcessor.
func (a *Aggregate) ProcessSource(src *pipeline.Source, ev *pipeline.Event, _ *pipeline.Arena) (bool, error) {
	var st stats
	st.count = 1
	if a.field != "" {
		if v, ok := pipeline.Lookup(src, ev, a.field); ok {
			if f, ok := pipeline.Number(v); ok && !math.IsNaN(f) && !math.IsInf(f, 0) {
				st.values, st.sum, st.min, st.max = 1, f, f, f
			}
		}
	}
	a.mu.Lock()
	a.scratch = appendKey(a.scratch[:0], src, ev, a.groupBy)
	s, ok := a.series[string(a.scratch)]
	if !ok {
		s = a.newSeries(src, ev)
	}
	s.buckets[a.cur].add(st)
	a.mu.Unlock()
	return !a.drop, nil
}

func (a *Aggregate) newSeries(src *pipeline.Source, ev *pipeline.Event) *series {
	if len(a.series) >= a.maxKeys {
		if a.other == nil {
			a.other = &series{values: make([]string, len(a.groupBy)), buckets: make([]stats, a.buckets)}
			for i := range a.other.values {
				a.other.values[i] = "__other__"
			}
		}
		return a.other
	}
	s := &series{values: make([]string, len(a.groupBy)), buckets: make([]stats, a.buckets)}
	for i, g := range a.groupBy {
		if v, ok := pipeline.Lookup(src, ev, g); ok {
			if b, ok := pipeline.AppendText(nil, v); ok {
				s.values[i] = string(b)
			}
		}
	}
	a.series[string(a.scratch)] = s
	return s
}

// Flush implements pipeline.Windowed: it closes the current bucket at
// now, returns one event per key that saw events in the window (the last
// width), and starts the next bucket. Keys with no event in the whole
// window are forgotten. final is for the last flush at shutdown, which
// emits the same way.
func (a *Aggregate) Flush(now time.Time, final bool) []pipeline.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	oldest := (a.cur + 1) % a.buckets
	start := a.starts[oldest]
	if start.IsZero() {
		start = a.starts[0]
	}
	var evs []pipeline.Event
	var snap []pipeline.Series
	emit := func(s *series) bool {
		var w stats
		for _, b := range s.buckets {
			w.add(b)
		}
		if w.count == 0 {
			return false
		}
		evs = append(evs, a.event(s, w, start, now))
		snap = a.appendSeries(snap, s, w)
		return true
	}
	for _, k := range sortedKeys(a.series) {
		if !emit(a.series[k]) {
			delete(a.series, k)
		}
	}
	if a.other != nil && !emit(a.other) {
		a.other = nil
	}
	a.last = snap
	// The next bucket reuses the oldest slot.
	a.cur = oldest
	a.starts[a.cur] = now
	for _, s := range a.series {
		s.buckets[a.cur] = stats{}
	}
	if a.other != nil {
		a.other.buckets[a.cur] = stats{}
	}
	return evs
}

func (a *Aggregate) event(s *series, w stats, start, end time.Time) pipeline.Event {
	fs := make([]pipeline.Field, 0, 4+len(s.values)+5)
	fs = append(fs, pipeline.Field{Key: "aggregate", Value: a.name})
	for i, g := range a.groupBy {
		fs = append(fs, pipeline.Field{Key: g, Value: s.values[i]})
	}
	fs = append(fs, pipeline.Field{Key: "count", Value: w.count})
	if a.field != "" && w.values > 0 {
		fs = append(fs,
			pipeline.Field{Key: "sum", Value: w.sum},
			pipeline.Field{Key: "avg", Value: w.sum / float64(w.values)},
			pipeline.Field{Key: "min", Value: w.min},
			pipeline.Field{Key: "max", Value: w.max},
			pipeline.Field{Key: "values", Value: w.values})
	}
	fs = append(fs, pipeline.Field{Key: "window_start", Value: start.UTC()},
		pipeline.Field{Key: "window_end", Value: end.UTC()})
	// Parsed: the fields are the event; Raw (logfmt of them) is for raw outputs.
	return pipeline.Event{Raw: logfmt(fs), Fields: fs, Time: end, Parsed: true}
}

// logfmt is the event's line, what a raw-format output writes.
func logfmt(fs []pipeline.Field) []byte {
	var b []byte
	for i, f := range fs {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, f.Key...)
		b = append(b, '=')
		var v []byte
		switch x := f.Value.(type) {
		case float64:
			v = strconv.AppendFloat(nil, x, 'g', -1, 64)
		default:
			v, _ = pipeline.AppendText(nil, x)
		}
		if len(v) == 0 || strings.ContainsAny(string(v), " \"=\\") {
			b = strconv.AppendQuote(b, string(v))
		} else {
			b = append(b, v...)
		}
	}
	return b
}

func (a *Aggregate) appendSeries(out []pipeline.Series, s *series, w stats) []pipeline.Series {
	labels := make([]pipeline.Label, len(a.labels))
	for i, l := range a.labels {
		labels[i] = pipeline.Label{Name: l, Value: s.values[i]}
	}
	add := func(stat, help string, v float64) {
		out = append(out, pipeline.Series{Name: a.name + "_" + stat, Help: help, Labels: labels, Value: v})
	}
	add("count", "Events in the last closed window of aggregate "+a.name, float64(w.count))
	if a.field != "" && w.values > 0 {
		add("sum", "Sum of "+a.field+" in the last closed window", w.sum)
		add("avg", "Average of "+a.field+" in the last closed window", w.sum/float64(w.values))
		add("min", "Minimum of "+a.field+" in the last closed window", w.min)
		add("max", "Maximum of "+a.field+" in the last closed window", w.max)
	}
	return out
}

// Snapshot implements pipeline.Snapshotter: the values of the last window
// that closed, one gauge per statistic and key. The slice is shared; do not
// modify it.
func (a *Aggregate) Snapshot() []pipeline.Series {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}
