package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// deadLetter appends permanently rejected events to a file as JSON lines:
//
//	{"time":"…","output":"es","reason":"rejected","error":"…","source":"/var/log/app.log","line":"…"}
//
// Rejections are rare, so it favours simplicity and durability over speed:
// the file is opened on first use (so a path that only matters on a bad day
// does not stop the agent from starting), and synced after each write before
// the events are acknowledged, since the dead-letter file is then their only
// copy.
type deadLetter struct {
	path   string
	output string

	mu sync.Mutex // batches in flight may reject at the same time
	f  *os.File
}

type deadLetterRecord struct {
	Time   string `json:"time"`
	Output string `json:"output"`
	Reason string `json:"reason"`
	Error  string `json:"error,omitempty"`
	Source string `json:"source,omitempty"`
	Line   string `json:"line"`
}

// rejected is one event on its way to the dead-letter file.
type rejected struct {
	src    *Source
	ev     *Event
	reason string
	err    string
}

// write appends every record and syncs. Either all of them are on disk or
// an error says none can be relied on.
func (d *deadLetter) write(recs []rejected) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		if err := os.MkdirAll(filepath.Dir(d.path), 0o755); err != nil {
			return fmt.Errorf("dead-letter %s: %w", d.path, err)
		}
		f, err := os.OpenFile(d.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("dead-letter: %w", err)
		}
		d.f = f
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var buf []byte
	for _, r := range recs {
		rec := deadLetterRecord{Time: now, Output: d.output, Reason: r.reason, Error: r.err, Line: string(r.ev.Raw)}
		if r.src != nil {
			rec.Source = r.src.Name
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("dead-letter: encode: %w", err)
		}
		buf = append(append(buf, line...), '\n')
	}
	if _, err := d.f.Write(buf); err != nil {
		return fmt.Errorf("dead-letter: write %s: %w", d.path, err)
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("dead-letter: sync %s: %w", d.path, err)
	}
	return nil
}

func (d *deadLetter) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
