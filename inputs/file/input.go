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
	"github.com/fsnotify/fsnotify"
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
	first   bool          // the first scan: start_at applies only to files found then
	rescan  chan struct{} // readers ask for a scan when their file disappears
}

func (in *Input) requestScan() {
	select {
	case in.rescan <- struct{}{}:
	default:
	}
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
	in.rescan = make(chan struct{}, 1)
	in.first = true
	defer in.wg.Wait()
	wa := newWatcher(in.include, in.log)
	defer wa.close()
	t := time.NewTicker(in.cfg.ScanInterval.D())
	defer t.Stop()
	// A burst of create/rename events (a rotation) asks for one scan soon,
	// not one scan per event.
	var soon <-chan time.Time
	for {
		wa.sync()
		in.scan(ctx, em)
		in.first = false
		soon = nil
	wait:
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				break wait
			case <-soon:
				break wait
			case <-in.rescan:
				break wait
			case ev := <-wa.events():
				if ev.Has(fsnotify.Write) && !ev.Has(fsnotify.Create) {
					in.wake(ev.Name)
					continue
				}
				if soon == nil {
					soon = time.After(20 * time.Millisecond)
				}
			case err := <-wa.errors():
				// Typically an inotify queue overflow: events were lost,
				// so look at everything again.
				in.log.Debug("file event error; rescanning", zap.Error(err))
				if soon == nil {
					soon = time.After(20 * time.Millisecond)
				}
			}
		}
	}
}

// wake tells the reader of path that the file changed, so it reads now
// instead of at its next poll.
func (in *Input) wake(path string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, r := range in.readers {
		if r.currentPath() == path {
			r.wakeUp()
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
		r, tracked := in.readers[id]
		if tracked && !r.gone.Load() && r.currentPath() == path {
			continue
		}
		// Open now, not in the reader: in a rotation storm a file may be
		// renamed or deleted milliseconds after it appears, and an open
		// handle keeps it readable to its end.
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		fi, err := f.Stat()
		if now, ok := statID(fi); err != nil || !ok || now != id {
			f.Close()
			in.requestScan() // replaced since the glob ran
			continue
		}
		if tracked && !r.gone.Load() {
			if r.sameHead(f) || !r.unlinked() {
				r.setPath(path) // renamed, e.g. app.log -> app.log.1
				f.Close()
				continue
			}
			// Same inode, other content: the old file was deleted and its
			// inode reused. The old reader finishes its handle on its own.
			r.markGone()
		}
		in.start(ctx, em, id, path, f)
	}
}

func (in *Input) start(ctx context.Context, em pipeline.Emitter, id fileID, path string, f *os.File) {
	r := newReader(in, id, path, in.first)
	r.f = f
	in.readers[id] = r
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		r.run(ctx, em, f)
		in.mu.Lock()
		if in.readers[id] == r {
			delete(in.readers, id)
		}
		in.mu.Unlock()
	}()
}

func (in *Input) key(id fileID) string { return in.name + "/" + id.String() }
