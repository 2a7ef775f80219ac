package file

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/codec"
	"github.com/tailship/tailship/pipeline/template"
)

// parseFieldPath parses a path with %{field} templates and returns the
// directory every expansion must stay in: the literal text before the
// first token, up to its last separator. Field values come from the logs
// themselves, so they are never trusted to pick a directory of their own.
func parseFieldPath(s string) (template.Template, string, error) {
	t, err := template.Parse(s)
	if err != nil {
		return nil, "", err
	}
	// Callers pass paths with "%{", but a path without any token must
	// not panic here either: its prefix is all of it.
	prefix := s
	if i := strings.IndexByte(s, '%'); i >= 0 {
		prefix = s[:i]
	}
	i := strings.LastIndexByte(prefix, '/')
	if i < 0 {
		return nil, "", errors.New("a path with %{field} must begin with a directory (e.g. \"/var/log/out/%{service}.log\") that its files stay in")
	}
	base := filepath.Clean(prefix[:i+1])
	return t, base, nil
}

// errEscape marks a field value that would put a file outside the base
// directory: refused for good, so the event goes to the dead-letter file.
var errEscape = errors.New("would leave the output directory")

// checkValue refuses field values that could climb out of the base
// directory or name another one: separators, "." and "..", NUL.
func checkValue(v string) error {
	if v == "." || v == ".." || strings.ContainsAny(v, "/\\\x00") {
		return fmt.Errorf("field value %q %w", v, errEscape)
	}
	return nil
}

// expandPath fills the template for one event into scratch, or says why
// it may not: a field value that could leave the base directory.
func (o *output) expandPath(src *pipeline.Source, ev *pipeline.Event, scratch []byte) ([]byte, error) {
	var bad error
	scratch = o.tmpl.Append(scratch[:0], src, ev, o.now(), func(dst []byte, v string) []byte {
		if err := checkValue(v); err != nil && bad == nil {
			bad = err
		}
		return append(dst, v...)
	})
	return scratch, bad
}

// cleanPath is the checked form of an expansion: a second guard, after
// checkValue, that the file is inside the base directory.
func (o *output) cleanPath(expanded []byte) (string, error) {
	p := filepath.Clean(string(expanded))
	// Rel rather than a prefix test: a base of "/" or "." (from
	// "/%{service}.log" or "./%{service}.log") is no prefix of its
	// cleaned files, and every event was refused.
	rel, err := filepath.Rel(o.base, p)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("path %q %w %s", p, errEscape, o.base)
	}
	return p, nil
}

// writeFields writes each event to the file its fields name. Events go to
// their files in batch order, one encoded unit per file per batch. An event
// whose path would escape the base directory is rejected (dead-letter);
// when a file fails, the events of that file and of the files after it are
// retried, and those already written are not written again.
func (o *output) writeFields(b *pipeline.Batch) error {
	type group struct {
		path  string
		plain []byte
		idx   []int
	}
	var (
		groups  []*group
		byPath  = map[string]*group{}
		pe      pipeline.PartialError
		scratch []byte
	)
	i := -1
	for src, ev := range b.All() {
		i++
		s, err := o.expandPath(src, ev, scratch)
		scratch = s
		if err != nil {
			pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i, Reason: err.Error()})
			continue
		}
		// Keyed by the expansion as is: the lookup costs no allocation,
		// and the path is cleaned and checked once per file and batch.
		g := byPath[string(scratch)]
		if g == nil {
			path, err := o.cleanPath(scratch)
			if err != nil {
				pe.Rejected = append(pe.Rejected, pipeline.Rejection{Index: i, Reason: err.Error()})
				continue
			}
			g = &group{path: path}
			byPath[string(scratch)] = g
			groups = append(groups, g)
		}
		if o.json {
			g.plain = codec.AppendJSON(g.plain, src, ev)
		} else {
			g.plain = append(g.plain, ev.Raw...)
		}
		g.plain = append(g.plain, '\n')
		g.idx = append(g.idx, i)
	}
	for k, g := range groups {
		payload, err := o.enc.Compress(g.plain)
		if err == nil {
			err = o.put(g.path, payload)
		}
		if err != nil {
			if k == 0 && len(pe.Rejected) == 0 {
				return err // nothing written: the runner retries the batch as is
			}
			for _, g := range groups[k:] {
				pe.Retry = append(pe.Retry, g.idx...)
			}
			pe.Err = err
			break
		}
	}
	if len(pe.Rejected) == 0 && len(pe.Retry) == 0 {
		return nil
	}
	slices.Sort(pe.Retry)
	if pe.Err == nil {
		pe.Err = errors.New("events with paths outside the output directory")
	}
	return &pe
}
