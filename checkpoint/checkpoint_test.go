package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "checkpoints.json")
	s, warn, err := Open(path)
	if err != nil || warn != nil {
		t.Fatal(err, warn)
	}
	s.Set("app/1:2", Entry{Offset: 42, Path: "/x.log", Fingerprint: 7, FPLen: 100})
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s2, _, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := s2.Get("app/1:2")
	if !ok || e.Offset != 42 || e.Fingerprint != 7 || e.FPLen != 100 {
		t.Fatalf("got %+v %v", e, ok)
	}
	if keys := s2.Keys("app/"); len(keys) != 1 {
		t.Fatalf("keys %v", keys)
	}
	matches, _ := filepath.Glob(path + ".tmp-*")
	if len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}
}

// A checkpoint file that cannot be trusted is kept aside and the store
// starts empty: inputs re-read rather than skip.
func TestCorruptFileMovedAside(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":   "\x00\x01not json",
		"truncated": `{"version":1,"entries":{"a":{"offset":`,
		"version":   `{"version":99,"entries":{}}`,
		"empty":     "",
		"negative":  `{"version":1,"entries":{"a":{"offset":-5,"updated":"2026-12-02T05:00:00Z"}}}`,
		"null":      "null",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkpoints.json")
			os.WriteFile(path, []byte(content), 0o644)
			s, warn, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if warn == nil || !strings.Contains(warn.Error(), "kept as") {
				t.Fatalf("warning = %v", warn)
			}
			if len(s.Keys("")) != 0 {
				t.Fatal("store not empty")
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("aside files: %v", aside)
			}
			if b, _ := os.ReadFile(aside[0]); string(b) != content {
				t.Fatal("aside file changed")
			}
		})
	}
}

// TestAgeCountsFromOldestUnflushedChange: Age is 0 while the file is
// current, counts from the first change after a flush (later changes do
// not reset it), survives a failed flush, and is 0 again after a good one.
func TestAgeCountsFromOldestUnflushedChange(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(filepath.Join(dir, "sub", "checkpoints.json"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Age() != 0 {
		t.Fatalf("age %v of an untouched store", s.Age())
	}
	s.Set("a", Entry{Offset: 1})
	time.Sleep(20 * time.Millisecond)
	s.Set("a", Entry{Offset: 2})
	if a := s.Age(); a < 20*time.Millisecond {
		t.Errorf("age %v: a later change reset it", a)
	}
	// The directory does not exist: the flush fails and the change waits.
	if err := s.Flush(); err == nil {
		t.Fatal("flush into a missing directory succeeded")
	}
	if a := s.Age(); a < 20*time.Millisecond {
		t.Errorf("age %v after a failed flush, want it kept from the first change", a)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if a := s.Age(); a != 0 {
		t.Errorf("age %v after a good flush", a)
	}
}
