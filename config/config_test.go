package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	cases := map[string]Size{"512": 512, "64KiB": 64 << 10, "5MiB": 5 << 20, "1GB": 1e9, "1.5KiB": 1536, "2 MiB": 2 << 20, "10B": 10}
	for in, want := range cases {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1KiB", "12 parsecs", "0x10"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestDurationRejectsBareNumbers(t *testing.T) {
	var d Duration
	for _, bad := range []string{"30", "1.5", "-1s", "soon"} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted as %v", bad, d)
		}
	}
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.D() != 90*time.Second {
		t.Errorf("1m30s -> %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("0")); err != nil || d.D() != 0 {
		t.Errorf("0 -> %v, %v", d, err)
	}
}

func TestPrefixKeepsKeys(t *testing.T) {
	err := Prefix("batch", Errorf("max_bytes", "too small"))
	fl := Flatten(err)
	if len(fl) != 1 || fl[0].Error() != "batch.max_bytes: too small" {
		t.Fatalf("got %v", fl)
	}
}
