package file

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// watcher turns inotify events into hints: a created, renamed or removed
// entry asks for a rescan now, a write wakes the reader of that file. Events
// are never trusted to be complete (they overflow, and NFS has none); the
// periodic rescan and the readers' poll are what guarantee progress.
type watcher struct {
	w       *fsnotify.Watcher
	log     *zap.Logger
	bases   []string // static directory prefix of each include glob
	deep    []bool   // whether that glob has ** (watch subdirectories too)
	watched map[string]bool
}

func newWatcher(include []string, log *zap.Logger) *watcher {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("file events unavailable; relying on scan_interval and poll_interval", zap.Error(err))
		return nil
	}
	wa := &watcher{w: fw, log: log, watched: map[string]bool{}}
	for _, pat := range include {
		base, rest := doublestar.SplitPattern(pat)
		wa.bases = append(wa.bases, filepath.FromSlash(base))
		wa.deep = append(wa.deep, strings.Contains(rest, "**"))
	}
	return wa
}

// sync adds watches for every base directory (and, under **, every
// subdirectory) that exists now; directories that appear later are added by
// the next sync, which the scan calls.
func (wa *watcher) sync() {
	if wa == nil {
		return
	}
	for i, base := range wa.bases {
		wa.add(base)
		if !wa.deep[i] {
			continue
		}
		filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				wa.add(p)
			}
			return nil
		})
	}
}

func (wa *watcher) add(dir string) {
	if wa.watched[dir] {
		return
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return
	}
	if err := wa.w.Add(dir); err != nil {
		wa.log.Debug("cannot watch directory", zap.String("dir", dir), zap.Error(err))
		return
	}
	wa.watched[dir] = true
}

func (wa *watcher) events() <-chan fsnotify.Event {
	if wa == nil {
		return nil
	}
	return wa.w.Events
}

func (wa *watcher) errors() <-chan error {
	if wa == nil {
		return nil
	}
	return wa.w.Errors
}

func (wa *watcher) close() {
	if wa != nil {
		wa.w.Close()
	}
}
