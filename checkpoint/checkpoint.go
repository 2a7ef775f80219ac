// Package checkpoint keeps the agent's read positions on disk:
// <data_dir>/checkpoints.json, written whole to a temporary file, fsynced and
// renamed, so a crash leaves either the old or the new version and never a
// torn one. Inputs own what the keys and offsets mean.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const version = 1

// Entry is one source's position.
type Entry struct {
	Offset int64  `json:"offset"`
	Path   string `json:"path,omitempty"`
	// Fingerprint identifies the file's head: a hash of its first FPLen bytes.
	Fingerprint uint64 `json:"fp,omitempty"`
	FPLen       int    `json:"fp_len,omitempty"`
	// Tail is a hash of the TailLen bytes just before Offset: with the head
	// fingerprint it recognises a copy of this content under another
	// identity (copytruncate) and where in it reading may resume.
	Tail    uint64 `json:"tail,omitempty"`
	TailLen int    `json:"tail_len,omitempty"`
	// Size is the file's size when its reader closed it; a closed file is
	// reopened only when its size or MTime differs.
	Size int64 `json:"size,omitempty"`
	// MTime is the file's modification time (Unix nanoseconds) when its
	// reader closed it: a new file on the reused inode that happens to
	// have the old size has another. 0 in entries written before it was
	// kept: then the size alone decides, as it did.
	MTime   int64     `json:"mtime,omitempty"`
	Updated time.Time `json:"updated"`
}

type fileFormat struct {
	Version int              `json:"version"`
	Entries map[string]Entry `json:"entries"`
}

// Store is a set of entries that is flushed to one file.
type Store struct {
	path string

	mu      sync.Mutex
	entries map[string]Entry
	dirty   bool
	since   time.Time // when the store became dirty
	lastErr error
	flushed time.Time
}

// Open loads the store at path. A missing file is an empty store. A file
// that cannot be decoded is moved aside (path + ".corrupt-<unix time>") and
// the store starts empty, so inputs re-read rather than skip; the returned
// warning says so.
func Open(path string) (s *Store, warning error, err error) {
	s = &Store{path: path, entries: map[string]Entry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read checkpoints %s: %w", path, err)
	}
	entries, derr := decode(b)
	if derr != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if err := os.Rename(path, aside); err != nil {
			return nil, nil, fmt.Errorf("checkpoints %s are unreadable (%v) and could not be moved aside: %w", path, derr, err)
		}
		return s, fmt.Errorf("checkpoints %s are unreadable (%v); kept as %s, starting without them", path, derr, aside), nil
	}
	s.entries = entries
	return s, nil, nil
}

// decode reads a checkpoint file. Anything it cannot vouch for is an error,
// so that the caller starts from the safe side (re-read) instead of
// trusting a position that may skip data: a file cut short, bytes that are
// not JSON, a version this build does not know, or an entry no writer of
// this version produces (a negative offset or length).
func decode(b []byte) (map[string]Entry, error) {
	var f fileFormat
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, err
	}
	if f.Version != version {
		return nil, fmt.Errorf("unknown version %d", f.Version)
	}
	for k, e := range f.Entries {
		if e.Offset < 0 || e.FPLen < 0 || e.TailLen < 0 || e.Size < 0 {
			return nil, fmt.Errorf("entry %q: negative offset or length", k)
		}
	}
	if f.Entries == nil {
		f.Entries = map[string]Entry{}
	}
	return f.Entries, nil
}

// Get returns the entry for key.
func (s *Store) Get(key string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[key]
	return e, ok
}

// Set records e under key; it reaches disk at the next Flush.
func (s *Store) Set(key string, e Entry) {
	if e.Updated.IsZero() {
		e.Updated = time.Now()
	}
	s.mu.Lock()
	s.entries[key] = e
	s.markDirty()
	s.mu.Unlock()
}

// Delete forgets key.
func (s *Store) Delete(key string) {
	s.mu.Lock()
	if _, ok := s.entries[key]; ok {
		delete(s.entries, key)
		s.markDirty()
	}
	s.mu.Unlock()
}

// Keys returns the keys with the given prefix.
func (s *Store) Keys(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			out = append(out, k)
		}
	}
	return out
}

// Flush writes the store if it changed since the last flush.
func (s *Store) Flush() error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	b, err := json.MarshalIndent(fileFormat{Version: version, Entries: s.entries}, "", " ")
	since := s.since
	s.dirty = false
	s.mu.Unlock()
	if err == nil {
		err = writeAtomic(s.path, b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// Try again next time; the age counts from the oldest change.
		s.dirty, s.since = true, since
		s.lastErr = err
		return err
	}
	s.lastErr = nil
	s.flushed = time.Now()
	return nil
}

func (s *Store) markDirty() {
	if !s.dirty {
		s.dirty = true
		s.since = time.Now()
	}
}

// Age returns how long the oldest change not yet on disk has waited: 0 when
// the file is current. It grows without bound when writes keep failing.
func (s *Store) Age() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.dirty {
		return 0
	}
	return time.Since(s.since)
}

// LastFlush returns when the store last reached disk.
func (s *Store) LastFlush() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushed
}

// Run flushes every interval until ctx ends; report receives failures (a
// full disk is retried at the next tick, never fatal).
func (s *Store) Run(ctx context.Context, interval time.Duration, report func(error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Flush(); err != nil && report != nil {
				report(err)
			}
		}
	}
}

func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write checkpoints: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write checkpoints %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
