package parse

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unsafe"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
)

// kind describes one parser: how to make it, and which shared options
// apply to it.
type kind struct {
	name    string
	pattern bool                        // uses parse.pattern (regex)
	join    lineFormat                  // joins partial lines in this format; noJoin for none
	time    *pipeline.TimestampSettings // timestamp read when none is configured
	// build validates what is the parser's own and returns its per-worker
	// constructor.
	build func(s *pipeline.InputSettings) (func() pipeline.Parser, error)
}

// defaultTime is the timestamp of formats that carry one (cri and docker
// write RFC 3339 with nanoseconds in "time").
var defaultTime = &pipeline.TimestampSettings{Field: "time", Layout: time.RFC3339Nano}

func ready(p func() pipeline.Parser) func(*pipeline.InputSettings) (func() pipeline.Parser, error) {
	return func(*pipeline.InputSettings) (func() pipeline.Parser, error) { return p, nil }
}

var kinds = []kind{
	{name: "json", build: ready(func() pipeline.Parser { return newJSON() })},
	{name: "logfmt", build: ready(func() pipeline.Parser { return &logfmtParser{} })},
	{name: "regex", pattern: true, build: func(s *pipeline.InputSettings) (func() pipeline.Parser, error) {
		re, err := compileRegex(s.Parse.Pattern)
		if err != nil {
			return nil, err
		}
		return re.parser, nil
	}},
	{name: "cri", join: criFormat, time: defaultTime, build: ready(func() pipeline.Parser { return criParser{} })},
	{name: "docker", join: dockerFormat, time: defaultTime, build: ready(func() pipeline.Parser { return newDocker() })},
	{name: "syslog", build: ready(func() pipeline.Parser { return syslogParser{} })},
}

func init() {
	for _, k := range kinds {
		pipeline.RegisterParser(k.name, k.spec)
	}
}

// spec validates the input's parse settings for this parser and returns
// what the pool runs: the parser, wrapped to read the timestamp, and for
// cri and docker the ordered stage that joins partial lines.
func (k kind) spec(s *pipeline.InputSettings) (pipeline.ParserSpec, error) {
	var errs []error
	p := s.Parse
	if p.Pattern != "" && !k.pattern {
		errs = append(errs, config.Errorf("parse.pattern", "is only used by parser = \"regex\", not %q", k.name))
	}
	ts := p.Timestamp
	if ts == (pipeline.TimestampSettings{}) && k.time != nil {
		ts = *k.time
	}
	tr, err := newTimeReader(ts)
	if err != nil {
		errs = append(errs, err)
	}
	if k.join == noJoin && p.PartialTimeout != pipeline.DefaultInputSettings().Parse.PartialTimeout {
		errs = append(errs, config.Errorf("parse.partial_timeout", "is only used by parser = \"cri\" or \"docker\", not %q", k.name))
	}
	if k.join != noJoin && p.PartialTimeout.D() <= 0 {
		errs = append(errs, config.Errorf("parse.partial_timeout", "must be above 0"))
	}
	newParser, err := k.build(s)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return pipeline.ParserSpec{}, err
	}
	spec := pipeline.ParserSpec{Name: k.name, New: newParser}
	if tr != nil {
		spec.New = func() pipeline.Parser { return &timed{p: newParser(), t: tr} }
	}
	if k.join != noJoin {
		format, maxLine, timeout := k.join, int(s.MaxLineBytes), p.PartialTimeout.D()
		spec.NewOrdered = func(st *pipeline.Stats) pipeline.Ordered {
			return newJoiner(format, maxLine, timeout, st)
		}
	}
	return spec, nil
}

// timeReader sets Event.Time from a parsed field.
type timeReader struct {
	field  string
	layout string
	unit   time.Duration // for unix layouts; 0 for a Go layout
}

func newTimeReader(ts pipeline.TimestampSettings) (*timeReader, error) {
	if ts == (pipeline.TimestampSettings{}) {
		return nil, nil
	}
	if ts.Field == "" {
		return nil, config.Errorf("parse.timestamp.field", "is required with parse.timestamp")
	}
	t := &timeReader{field: ts.Field, layout: ts.Layout}
	switch ts.Layout {
	case "":
		return nil, config.Errorf("parse.timestamp.layout", "is required: a Go layout such as %q, or unix, unix_ms, unix_us, unix_ns", time.RFC3339)
	case "unix":
		t.unit = time.Second
	case "unix_ms":
		t.unit = time.Millisecond
	case "unix_us":
		t.unit = time.Microsecond
	case "unix_ns":
		t.unit = time.Nanosecond
	default:
		// A layout without any reference element parses nothing; that
		// is always a mistake in the config.
		now := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
		if now.Format(ts.Layout) == ts.Layout {
			return nil, config.Errorf("parse.timestamp.layout", "%q has no time elements (write the reference time Mon Jan 2 15:04:05 MST 2006)", ts.Layout)
		}
	}
	return t, nil
}

func (t *timeReader) read(ev *pipeline.Event, fields []pipeline.Field) error {
	var raw []byte
	found := false
	for i := range fields {
		if fields[i].Key != t.field {
			continue
		}
		found = true
		switch v := fields[i].Value.(type) {
		case *pipeline.RawJSON:
			raw = *v // a JSON number, for unix layouts
		default:
			raw, _ = pipeline.Bytes(v)
		}
		break
	}
	if !found {
		return fmt.Errorf("timestamp: field %q missing", t.field)
	}
	if t.unit != 0 {
		ts, err := parseUnix(raw, t.unit)
		if err != nil {
			return fmt.Errorf("timestamp: field %q: %w", t.field, err)
		}
		ev.Time = ts
		return nil
	}
	// time.Parse takes a string; converting raw would allocate per event.
	// The string only lives through this call: raw stays valid (it is in
	// the chunk) and the error, which keeps it, is formatted before the
	// chunk can be released.
	ts, err := time.Parse(t.layout, unsafe.String(unsafe.SliceData(raw), len(raw)))
	if err != nil {
		return fmt.Errorf("timestamp: field %q: %s", t.field, err.Error())
	}
	if ts.Year() == 0 {
		ts = withYear(ts, time.Now())
	}
	ev.Time = ts
	return nil
}

// withYear dates a timestamp written without a year (BSD syslog's
// "Jan _2 15:04:05") in the year of now, or the year before when that
// would put it more than a day in the future: a December line read in
// January is last year's. Feb 29 is dated in the last leap year that
// puts it in the past: time.Date would turn it into Mar 1 of other years.
func withYear(ts, now time.Time) time.Time {
	at := func(y int) time.Time {
		return time.Date(y, ts.Month(), ts.Day(), ts.Hour(), ts.Minute(), ts.Second(), ts.Nanosecond(), ts.Location())
	}
	y := now.Year()
	t := at(y)
	if t.After(now.Add(24 * time.Hour)) {
		y--
		t = at(y)
	}
	for t.Month() != ts.Month() {
		y--
		t = at(y)
	}
	return t
}

// parseUnix reads an integer or decimal count of unit since the epoch.
// Counts a time.Duration from 1970 cannot hold (about 292 years) are
// rejected: converted, they would wrap around silently to another date.
func parseUnix(b []byte, unit time.Duration) (time.Time, error) {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
			return time.Time{}, fmt.Errorf("%d is out of range", n)
		}
		return time.Unix(0, n*int64(unit)).UTC(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a number", string(b))
	}
	// 1<<63 is exact as a float and the first count int64 cannot hold
	// (MaxInt64 rounds up to it); the bound is written so that NaN, which
	// compares false with everything, fails it too.
	ns := f * float64(unit)
	if !(ns >= -(1<<63) && ns < 1<<63) {
		return time.Time{}, fmt.Errorf("%g is out of range", f)
	}
	return time.Unix(0, int64(ns)).UTC(), nil
}

// timed runs a parser and then reads the event time.
type timed struct {
	p pipeline.Parser
	t *timeReader
}

func (t *timed) Parse(ev *pipeline.Event, a *pipeline.Arena) error {
	if err := t.p.Parse(ev, a); err != nil {
		return err
	}
	return t.t.read(ev, a.Fields())
}

// keyCache interns field keys: a line's keys are bytes, Field.Key is a
// string, and most sources repeat a small set of keys, so a lookup (which
// does not allocate) replaces an allocation per field. It also tells a
// repeated key within one line in O(1), by stamping each key with the line
// it was last seen in, so only such lines pay for Arena.Set's scan. It is
// bounded so that lines with random keys cannot grow it without end.
type keyCache struct {
	m    map[string]*cachedKey
	line uint64
	// Lines of one source mostly repeat the previous line's keys in the
	// same order: prev holds them, and the key at position pos is tried
	// first with a plain comparison, which is cheaper than hashing it.
	prev, cur []*cachedKey
}

type cachedKey struct {
	s    string
	line uint64
}

const maxCachedKeys = 4096

// nextLine starts a new line for repeat detection.
func (k *keyCache) nextLine() {
	k.line++
	k.prev, k.cur = k.cur, k.prev[:0]
}

// add sets the field key b = v of the line being parsed.
func (k *keyCache) add(a *pipeline.Arena, b []byte, v any) {
	key, repeat := k.get(b)
	if repeat {
		a.Set(key, v)
	} else {
		a.Add(key, v)
	}
}

// get returns the key as a string and whether it may already be in this
// line (always for keys beyond the cache's bound).
func (k *keyCache) get(b []byte) (key string, repeat bool) {
	if pos := len(k.cur); pos < len(k.prev) {
		if e := k.prev[pos]; e.s == string(b) {
			return k.hit(e)
		}
	}
	if e, ok := k.m[string(b)]; ok {
		return k.hit(e)
	}
	s := string(b)
	if k.m == nil {
		k.m = make(map[string]*cachedKey, 64)
	}
	if len(k.m) >= maxCachedKeys {
		return s, true
	}
	e := &cachedKey{s: s, line: k.line}
	k.m[s] = e
	k.cur = append(k.cur, e)
	return s, false
}

func (k *keyCache) hit(e *cachedKey) (string, bool) {
	repeat := e.line == k.line
	e.line = k.line
	if !repeat {
		k.cur = append(k.cur, e)
	}
	return e.s, repeat
}
