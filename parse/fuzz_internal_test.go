package parse

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// The layouts FuzzTimestamp reads with: the unix units, and Go layouts with
// and without a year (a missing one is filled in from the clock).
var fuzzLayouts = []string{
	"unix", "unix_ms", "unix_us", "unix_ns",
	time.RFC3339Nano, time.RFC3339, time.Stamp, "02/Jan/2006:15:04:05 -0700", time.RFC1123Z,
}

var fuzzUnits = map[string]time.Duration{"unix": time.Second, "unix_ms": time.Millisecond, "unix_us": time.Microsecond, "unix_ns": time.Nanosecond}

// FuzzTimestamp feeds any value, as text or as a JSON number, to the
// timestamp reader of each layout. Whatever the value: read does not panic;
// a failure names the field and leaves the event's time alone; a unix time
// is the value times the unit (no silent wrap-around past what a
// time.Duration from 1970 holds, no NaN turned into a date); a Go layout
// gives what time.Parse gives, dated into the last year when the layout
// has none.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []struct {
		layout, kind uint8
		value        string
	}{
		{uint8(0), uint8(0), "1700000000"},
		{uint8(1), uint8(1), "1700000000123"},
		{uint8(0), uint8(1), "1700000000.5"},
		{uint8(3), uint8(0), "-9223372036854775808"},
		{uint8(2), uint8(1), "1e300"},
		{uint8(4), uint8(0), "2024-01-02T03:04:05.000000001Z"},
		{uint8(5), uint8(0), "2024-01-02T03:04:05+01:00"},
		{uint8(6), uint8(0), "Feb 29 10:00:00"},
		{uint8(7), uint8(0), "10/Oct/2000:13:55:36 -0700"},
		{uint8(4), uint8(2), "2024-01-02T03:04:05Z"},
	} {
		f.Add(s.layout, s.kind, s.value)
	}
	f.Fuzz(func(t *testing.T, layout, kind uint8, value string) {
		l := fuzzLayouts[int(layout)%len(fuzzLayouts)]
		tr, err := newTimeReader(pipeline.TimestampSettings{Field: "ts", Layout: l})
		if err != nil {
			t.Fatal(err)
		}
		var fields []pipeline.Field
		b := []byte(value)
		switch kind % 3 {
		case 0:
			txt := pipeline.Text(b)
			fields = []pipeline.Field{{Key: "ts", Value: &txt}}
		case 1:
			raw := pipeline.RawJSON(b)
			fields = []pipeline.Field{{Key: "other", Value: "x"}, {Key: "ts", Value: &raw}}
		case 2: // the field is missing
			txt := pipeline.Text(b)
			fields = []pipeline.Field{{Key: "tss", Value: &txt}}
		}
		var ev pipeline.Event
		before := time.Now()
		err = tr.read(&ev, fields)
		if err != nil {
			if !strings.Contains(err.Error(), `"ts"`) {
				t.Fatalf("error %q does not name the field", err)
			}
			if !ev.Time.IsZero() {
				t.Fatalf("failed read set the time to %v", ev.Time)
			}
			return
		}
		if kind%3 == 2 {
			t.Fatalf("read succeeded without the field: %v", ev.Time)
		}
		if unit, ok := fuzzUnits[l]; ok {
			checkUnix(t, value, unit, ev.Time)
			return
		}
		want, perr := time.Parse(l, value)
		if perr != nil {
			t.Fatalf("read accepted %q, which time.Parse(%q) rejects: %v", value, l, perr)
		}
		if want.Year() != 0 {
			if !ev.Time.Equal(want) {
				t.Fatalf("%q: read %v, time.Parse %v", value, ev.Time, want)
			}
			return
		}
		// No year in the line: within the last year (Feb 29: the last
		// leap year), never more than a day ahead of the clock, same day
		// and time of day.
		oldest := before.AddDate(-1, 0, -1)
		if want.Month() == time.February && want.Day() == 29 {
			oldest = before.AddDate(-8, 0, -1)
		}
		if ev.Time.After(time.Now().Add(24*time.Hour)) || ev.Time.Before(oldest) {
			t.Fatalf("%q dated %v, not after %v and at most a day ahead", value, ev.Time, oldest)
		}
		if h, m, s := ev.Time.Clock(); h != want.Hour() || m != want.Minute() || s != want.Second() || ev.Time.Nanosecond() != want.Nanosecond() {
			t.Fatalf("%q dated %v: time of day changed from %v", value, ev.Time, want)
		}
		if ev.Time.Month() != want.Month() || ev.Time.Day() != want.Day() {
			t.Fatalf("%q dated %v: day changed from %v %d", value, ev.Time, want.Month(), want.Day())
		}
	})
}

// checkUnix checks a unix time read from value against the value itself.
func checkUnix(t *testing.T, value string, unit time.Duration, got time.Time) {
	t.Helper()
	if got.Location() != time.UTC {
		t.Fatalf("%q: %v is not UTC", value, got)
	}
	if n, err := strconv.ParseInt(value, 10, 64); err == nil {
		if n > math.MaxInt64/int64(unit) || n < math.MinInt64/int64(unit) {
			t.Fatalf("%q: accepted %d %v, which overflows (read as %v)", value, n, unit, got)
		}
		if got.UnixNano() != n*int64(unit) {
			t.Fatalf("%q: read %v (%d ns), want %d ns", value, got, got.UnixNano(), n*int64(unit))
		}
		return
	}
	v, err := strconv.ParseFloat(value, 64)
	if err != nil {
		t.Fatalf("accepted %q, which is not a number", value)
	}
	ns := v * float64(unit)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns < math.MinInt64 {
		t.Fatalf("%q: accepted %g ns, beyond what an int64 holds (read as %v)", value, ns, got)
	}
	// int64(ns) truncates toward zero; the float itself has a relative
	// error of one ulp.
	if d := math.Abs(float64(got.UnixNano()) - ns); d > 1+math.Abs(ns)*1e-15 {
		t.Fatalf("%q: read %v (%d ns), want %g ns", value, got, got.UnixNano(), ns)
	}
}
