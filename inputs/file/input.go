// Package file is the file input: it finds files by glob, follows each one
// with its own block reader (no per-line syscalls, only complete lines leave
// it), and resumes from checkpoints that advance only past lines every output
// acknowledged.
//
// A file is known by its identity, device+inode plus a fingerprint of its
// first bytes, not by its path: a renamed file keeps its reader and its
// checkpoint, and an inode reused for new content is read from the start.
package file

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/bmatcuk/doublestar/v4"
	"go.uber.org/zap"

	"github.com/tailship/tailship/checkpoint"
	"github.com/tailship/tailship/pipeline"
)

// Input tails the files matched by its globs.
type Input struct {
	cfg              Config
	name             string
	include, exclude []string
	store            *checkpoint.Store
	log              *zap.Logger
	stats            *pipeline.Stats

	mu      sync.Mutex
	readers map[fileID]*reader
	wg      sync.WaitGroup
	first   bool // the first scan: start_at applies only to files found then
}

type fileID struct{ dev, ino uint64 }

func (id fileID) String() string { return fmt.Sprintf("%d:%d", id.dev, id.ino) }

func statID(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// Run scans for files every scan_interval and runs one reader per file until
// ctx ends; it returns after every reader has stopped.
func (in *Input) Run(ctx context.Context, em pipeline.Emitter) error {
	if in.log == nil {
		in.log = zap.NewNop()
	}
	if in.stats == nil {
		in.stats = &pipeline.Stats{}
	}
	in.readers = make(map[fileID]*reader)
	in.first = true
	defer in.wg.Wait()
	t := time.NewTicker(in.cfg.ScanInterval.D())
	defer t.Stop()
	for {
		in.scan(ctx, em)
		in.first = false
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// match returns the files the globs select now, sorted, by identity.
func (in *Input) match() map[fileID]string {
	found := make(map[fileID]string)
	var paths []string
	for _, pat := range in.include {
		ms, err := doublestar.FilepathGlob(pat, doublestar.WithFilesOnly())
		if err != nil {
			in.log.Warn("glob failed", zap.String("input", in.name), zap.String("pattern", pat), zap.Error(err))
			continue
		}
		paths = append(paths, ms...)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if in.excluded(p) {
			continue
		}
		fi, err := os.Stat(p) // follows symlinks: one file reached twice is read once
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		id, ok := statID(fi)
		if !ok {
			continue
		}
		if _, dup := found[id]; !dup {
			found[id] = p
		}
	}
	return found
}

func (in *Input) excluded(p string) bool {
	sp := filepath.ToSlash(p)
	for _, pat := range in.exclude {
		if ok, _ := doublestar.Match(pat, sp); ok {
			return true
		}
	}
	return false
}

func (in *Input) scan(ctx context.Context, em pipeline.Emitter) {
	found := in.match()
	in.mu.Lock()
	defer in.mu.Unlock()
	for id, path := range found {
		if r, ok := in.readers[id]; ok {
			r.setPath(path)
			continue
		}
		r := newReader(in, id, path, in.first)
		in.readers[id] = r
		in.wg.Add(1)
		go func() {
			defer in.wg.Done()
			r.run(ctx, em)
			in.mu.Lock()
			delete(in.readers, id)
			in.mu.Unlock()
		}()
	}
}

func (in *Input) key(id fileID) string { return in.name + "/" + id.String() }
