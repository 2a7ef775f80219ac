package parse

import (
	"testing"
	"time"
)

func TestWithYear(t *testing.T) {
	at := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
	cases := []struct{ ts, now, want time.Time }{
		{at(0, time.March, 5, 10), at(2026, time.March, 5, 12), at(2026, time.March, 5, 10)},
		{at(0, time.December, 31, 23), at(2027, time.January, 1, 0), at(2026, time.December, 31, 23)},
		{at(0, time.March, 6, 1), at(2026, time.March, 5, 12), at(2026, time.March, 6, 1)},           // clock skew: < 1 day ahead
		{at(0, time.February, 29, 10), at(2026, time.March, 5, 12), at(2024, time.February, 29, 10)}, // not Mar 1 2026
		{at(0, time.February, 29, 10), at(2028, time.March, 5, 12), at(2028, time.February, 29, 10)},
		{at(0, time.February, 29, 10), at(2028, time.January, 5, 12), at(2024, time.February, 29, 10)},
	}
	for _, tc := range cases {
		if got := withYear(tc.ts, tc.now); !got.Equal(tc.want) {
			t.Errorf("withYear(%v, now %v) = %v, want %v", tc.ts, tc.now, got, tc.want)
		}
	}
}
