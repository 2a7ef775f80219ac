package file

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/bmatcuk/doublestar/v4"
	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// watcher turns inotify events into hints: a created, renamed or removed
// entry asks for a rescan now, a write wakes the reader of that file. Events
// are never trusted to be complete (they overflow, and NFS has none); the
// periodic rescan and the readers' poll are what guarantee progress.
//
// Every file input of the process shares one inotify instance (the hub):
// instances are a per-user kernel limit (often 128), and an agent with many
// inputs, next to other programs, must not use them up.
type watcher struct {
	log     *zap.Logger
	globs   []watchGlob
	watched map[string]bool
	ev      chan fsnotify.Event
	errs    chan error
	// detached: a watcher of tests that feed ev and errs themselves; it
	// watches nothing.
	detached bool
}

// hub owns the process's one fsnotify watcher and the goroutine that hands
// its events to the inputs' watchers. It starts with the first subscriber
// and stops, waiting for its goroutine, when the last one leaves.
type hub struct {
	mu   sync.Mutex
	w    *fsnotify.Watcher
	subs map[*watcher]bool
	dirs map[string]int // watched directory -> subscribers that want it
	done chan struct{}
}

var events hub

// watchGlob is what one include glob needs watched: its static base and the
// directories below it that can hold a match, level by level, so that a new
// subdirectory matching /var/log/*/app.log's "*" is watched as it appears
// rather than found at the next scan_interval.
type watchGlob struct {
	base string
	// levels are the glob's directory part cut after each component
	// below base ("base/*", "base/*/x", ...), as patterns.
	levels []string
	// deep: the directory part has ** (or a component that cannot be
	// globbed on its own, such as {a,b/c}), so every directory under base
	// is watched.
	deep bool
}

func newWatchGlob(pat string) watchGlob {
	base, rest := doublestar.SplitPattern(pat)
	g := watchGlob{base: filepath.FromSlash(base)}
	dir := path.Dir(rest)
	if dir == "." {
		return g
	}
	level := base
	for _, c := range strings.Split(dir, "/") {
		if strings.Contains(c, "**") {
			g.deep = true
			break
		}
		level += "/" + c
		if !doublestar.ValidatePattern(level) {
			g.deep = true // a brace group with a slash in it: cut, it means nothing
			break
		}
		g.levels = append(g.levels, level)
	}
	return g
}

var errOverflow = errors.New("file events dropped: a subscriber fell behind")

func newWatcher(include []string, log *zap.Logger) *watcher {
	wa := &watcher{log: log, watched: map[string]bool{}, ev: make(chan fsnotify.Event, 1024), errs: make(chan error, 1)}
	for _, pat := range include {
		wa.globs = append(wa.globs, newWatchGlob(pat))
	}
	if err := events.subscribe(wa); err != nil {
		log.Warn("file events unavailable; relying on scan_interval and poll_interval", zap.Error(err))
		return nil
	}
	return wa
}

func (h *hub) subscribe(wa *watcher) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.w == nil {
		w, err := fsnotify.NewWatcher()
		if err != nil {
			return err
		}
		h.w, h.subs, h.dirs, h.done = w, map[*watcher]bool{}, map[string]int{}, make(chan struct{})
		go h.dispatch(w, h.done)
	}
	h.subs[wa] = true
	return nil
}

func (h *hub) unsubscribe(wa *watcher) {
	h.mu.Lock()
	delete(h.subs, wa)
	for dir := range wa.watched {
		if h.dirs[dir]--; h.dirs[dir] <= 0 {
			delete(h.dirs, dir)
			_ = h.w.Remove(dir) // may be gone already
		}
	}
	var w *fsnotify.Watcher
	var done chan struct{}
	if len(h.subs) == 0 {
		w, done = h.w, h.done
		h.w = nil
	}
	h.mu.Unlock()
	if w != nil {
		w.Close() // ends dispatch
		<-done
	}
}

// dispatch hands each event to the watchers of its directory. A watcher
// whose buffer is full gets an overflow error instead, which makes its input
// rescan: the hub never blocks on one slow input.
func (h *hub) dispatch(w *fsnotify.Watcher, done chan struct{}) {
	defer close(done)
	for {
		select {
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			dir := filepath.Dir(ev.Name)
			h.mu.Lock()
			if h.dirs[ev.Name] > 0 && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// The kernel dropped the watch with the directory; forget
				// it so that the next sync watches a new one by that name.
				delete(h.dirs, ev.Name)
				for wa := range h.subs {
					delete(wa.watched, ev.Name)
				}
			}
			for wa := range h.subs {
				if !wa.watched[dir] && !wa.watched[ev.Name] {
					continue
				}
				select {
				case wa.ev <- ev:
				default:
					wa.fail(errOverflow)
				}
			}
			h.mu.Unlock()
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			h.mu.Lock()
			for wa := range h.subs {
				wa.fail(err)
			}
			h.mu.Unlock()
		}
	}
}

func (wa *watcher) fail(err error) {
	select {
	case wa.errs <- err:
	default:
	}
}

// sync adds watches for every directory that can hold a match and exists
// now: each base, the directories matching each level of the glob's
// directory part, and under ** every subdirectory. A directory created later
// is announced by an event in its watched parent, which makes the scan (and
// so this) run soon. Levels are watched parent first, then listed: a child
// created after its parent's watch is announced, one created before it is
// listed, so none falls between the two.
func (wa *watcher) sync() {
	if wa == nil || wa.detached {
		return
	}
	for _, g := range wa.globs {
		wa.addBase(g.base)
		for _, level := range g.levels {
			dirs, err := doublestar.FilepathGlob(level)
			if err != nil {
				break // the scan's own glob reports a bad pattern
			}
			for _, d := range dirs {
				wa.add(d)
			}
		}
		if !g.deep {
			continue
		}
		filepath.WalkDir(g.base, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				wa.add(p)
			}
			return nil
		})
	}
}

// addBase watches base or, while base does not exist, the directories on
// the way to it from its nearest existing ancestor, so that its appearing
// (mkdir -p of an app's log directory) is announced rather than found at
// the next scan_interval. Each is watched before the next one down is
// looked for, so one created in between is announced or found.
func (wa *watcher) addBase(base string) {
	if wa.add(base) {
		return
	}
	var up []string
	for d := base; ; {
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		up = append(up, parent)
		if fi, err := os.Stat(parent); err == nil && fi.IsDir() {
			break
		}
		d = parent
	}
	for i := len(up) - 1; i >= 0; i-- {
		if !wa.add(up[i]) {
			return
		}
	}
	wa.add(base)
}

// add watches dir if it is a directory; it reports whether dir is watched.
func (wa *watcher) add(dir string) bool {
	events.mu.Lock()
	defer events.mu.Unlock()
	if wa.watched[dir] {
		return true
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return false
	}
	if events.dirs[dir] == 0 {
		if err := events.w.Add(dir); err != nil {
			wa.log.Debug("cannot watch directory", zap.String("dir", dir), zap.Error(err))
			return false
		}
	}
	events.dirs[dir]++
	wa.watched[dir] = true
	return true
}

func (wa *watcher) events() <-chan fsnotify.Event {
	if wa == nil {
		return nil
	}
	return wa.ev
}

func (wa *watcher) errors() <-chan error {
	if wa == nil {
		return nil
	}
	return wa.errs
}

func (wa *watcher) close() {
	if wa != nil && !wa.detached {
		events.unsubscribe(wa)
	}
}
