// Package file is the file input: it finds files by glob, follows each one
// with its own block reader (no per-line syscalls, only complete lines leave
// it), and resumes from checkpoints that advance only past lines every output
// acknowledged.
//
// A file is known by its identity, device+inode plus a fingerprint of its
// first bytes, not by its path: a renamed file keeps its reader and its
// checkpoint, and an inode reused for new content is read from the start. A
// copy of a file being read (copytruncate) is recognised by its content and
// read only from where the original's reader stopped.
//
// Descriptors are bounded by max_open_files: files with unread data wait for
// a slot, and readers idle at the end of their file give theirs up first.
package file

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	maxOpen          int

	mu       sync.Mutex
	readers  map[fileID]*reader
	waiting  map[fileID]waitState // files with unread data waiting for a descriptor
	deferred map[fileID]time.Time // files that look like a copy of a file being read
	truncs   []*truncation        // recent truncations whose copy may still turn up
	// unopenable holds the files that could not be opened (permission
	// denied), so each is logged once; every scan tries them again.
	unopenable map[fileID]bool
	lastGC     time.Time
	// missing holds, per checkpoint key, when a scan first did not find
	// its file. Only memory: after a restart the wait starts over, which
	// keeps checkpoints longer, never shorter.
	missing map[string]time.Time
	wg      sync.WaitGroup
	first   bool          // the first scan: start_at applies only to files found then
	resumed bool          // rebuilt by a live reload: no scan is the first
	rescan  chan struct{} // readers ask for a scan when their file disappears or they close
	open    atomic.Int64  // descriptors held by readers, including readers winding down
	// testWatcher, when set, replaces the file-event watcher: tests use it
	// to run without events (as on NFS) or to inject watcher errors.
	testWatcher func() *watcher
}

type waitState struct {
	since   time.Time
	initial bool // found by the first scan, so start_at applies
	// path and size are what the last scan saw, for the count when the
	// file goes away before it was ever opened.
	lastPath string
	lastSize int64
}

func (in *Input) requestScan() {
	select {
	case in.rescan <- struct{}{}:
	default:
	}
}

type fileID struct{ dev, ino uint64 }

func (id fileID) String() string { return fmt.Sprintf("%d:%d", id.dev, id.ino) }

func parseID(s string) (fileID, bool) {
	var id fileID
	_, err := fmt.Sscanf(s, "%d:%d", &id.dev, &id.ino)
	return id, err == nil
}

func statID(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// FileStatus is one followed file as the API shows it.
type FileStatus struct {
	Path      string
	Size      int64 // at the reader's last look
	Committed int64 // acknowledged by every output
	Open      bool
}

// Files returns the files being read now, for status and lag metrics.
func (in *Input) Files() []FileStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]FileStatus, 0, len(in.readers))
	for _, r := range in.readers {
		out = append(out, r.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
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
	in.mu.Lock() // Files may be called (by the API) while Run starts
	in.readers = make(map[fileID]*reader)
	in.mu.Unlock()
	in.waiting = make(map[fileID]waitState)
	in.deferred = make(map[fileID]time.Time)
	in.unopenable = make(map[fileID]bool)
	in.missing = make(map[string]time.Time)
	in.rescan = make(chan struct{}, 1)
	in.first = !in.resumed
	defer in.wg.Wait()
	var wa *watcher
	if in.testWatcher != nil {
		wa = in.testWatcher()
	} else {
		wa = newWatcher(in.include, in.log)
	}
	defer wa.close()
	t := time.NewTicker(in.cfg.ScanInterval.D())
	defer t.Stop()
	// A burst of create/rename events (a rotation) asks for one scan soon,
	// not one scan per event.
	var soon <-chan time.Time
	scanSoon := func(d time.Duration) {
		if soon == nil {
			soon = time.After(d)
		}
	}
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
					// A closed file that grows is reopened by a scan;
					// a poll interval of writes make one scan.
					if !in.wake(ev.Name) && in.matches(ev.Name) {
						scanSoon(in.cfg.PollInterval.D())
					}
					continue
				}
				scanSoon(20 * time.Millisecond)
			case err := <-wa.errors():
				// Typically an inotify queue overflow: events were lost,
				// so look at everything again.
				in.log.Debug("file event error; rescanning", zap.Error(err))
				scanSoon(20 * time.Millisecond)
			}
		}
	}
}

// wake tells the reader of path that the file changed, so it reads now
// instead of at its next poll. It reports whether a reader has that path.
func (in *Input) wake(path string) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	woke := false
	for _, r := range in.readers {
		if r.currentPath() == path {
			r.wakeUp()
			woke = true
		}
	}
	return woke
}

// matches reports whether path is selected by the globs.
func (in *Input) matches(path string) bool {
	sp := filepath.ToSlash(path)
	for _, pat := range in.include {
		if ok, _ := doublestar.Match(pat, sp); ok {
			return !in.excluded(path)
		}
	}
	return false
}

// seen is a file a scan found: the first path that led to it, and its stat.
type seen struct {
	path string
	fi   fs.FileInfo
}

// match returns the files the globs select now, by identity.
func (in *Input) match() map[fileID]seen {
	found := make(map[fileID]seen)
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
			found[id] = seen{p, fi}
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

type candidate struct {
	id fileID
	seen
	waitState
}

func (in *Input) scan(ctx context.Context, em pipeline.Emitter) {
	started := time.Now()
	found := in.match()
	in.mu.Lock()
	defer in.mu.Unlock()
	var cands []candidate
	for id, s := range found {
		r, tracked := in.readers[id]
		if tracked && !r.gone.Load() {
			if r.currentPath() != s.path && in.followRename(r, s.path) {
				continue
			}
			if !r.gone.Load() {
				continue
			}
		}
		if !in.wants(id, s.fi) {
			delete(in.waiting, id)
			continue
		}
		w, ok := in.waiting[id]
		if !ok {
			w = waitState{since: started, initial: in.first}
		}
		w.lastPath, w.lastSize = s.path, s.fi.Size()
		in.waiting[id] = w
		cands = append(cands, candidate{id, s, w})
	}
	// Longest waiting first, so that under max_open_files every file gets
	// its turn.
	sort.Slice(cands, func(i, j int) bool {
		if !cands[i].since.Equal(cands[j].since) {
			return cands[i].since.Before(cands[j].since)
		}
		return cands[i].path < cands[j].path
	})
	blocked := 0
	for _, c := range cands {
		if ctx.Err() != nil {
			return
		}
		if int(in.open.Load()) >= in.maxOpen {
			blocked++
			continue
		}
		if in.openCandidate(ctx, em, c) {
			delete(in.waiting, c.id)
		}
	}
	for id, r := range in.readers {
		if _, ok := found[id]; !ok {
			in.checkAway(r, started)
		}
	}
	for id, w := range in.waiting {
		if _, ok := found[id]; !ok {
			in.lostWaiting(id, w)
			delete(in.waiting, id)
		}
	}
	for id := range in.deferred {
		if _, ok := found[id]; !ok {
			delete(in.deferred, id)
		}
	}
	for id := range in.unopenable {
		if _, ok := found[id]; !ok {
			delete(in.unopenable, id)
		}
	}
	if blocked > 0 {
		in.evictIdle(blocked)
	}
	in.settleTruncations(ctx, em, started)
	if time.Since(in.lastGC) >= in.cfg.ScanInterval.D() {
		in.lastGC = time.Now()
		in.collectCheckpoints(found)
	}
}

// followRename handles a tracked file found under another path: a rename
// (app.log -> app.log.1) keeps its reader. It reports false when the path
// holds other content under the same identity, which needs a reader of its
// own; the old reader is then marked gone.
func (in *Input) followRename(r *reader, path string) bool {
	// While the reader holds its descriptor the inode cannot be reused, so
	// a file that still has a name is the same file, renamed.
	if !r.unlinked() {
		r.setPath(path)
		if !r.pathLost {
			in.countRotation()
		}
		r.pathLost = false
		return true
	}
	f, err := os.Open(path)
	if err != nil {
		return true // gone again; the next scan looks anew
	}
	defer f.Close()
	if r.sameHead(f) {
		r.setPath(path)
		return true
	}
	// Same inode number, other content (file systems that recycle inode
	// numbers of open files): the old reader finishes its handle on its own.
	r.markGone()
	return false
}

func (in *Input) countRotation() { in.stats.RotationsOf(in.name).Add(1) }

// checkAway looks at a followed file the scan did not find: deleted, or
// renamed out of the globs. Callers hold in.mu.
func (in *Input) checkAway(r *reader, now time.Time) {
	own, err := r.f.Stat()
	if err != nil {
		return // closed: the reader is ending
	}
	if nlink(own) == 0 {
		in.holdDeleted(r, now)
		return
	}
	r.heldSince = time.Time{}
	in.noteRenamedAway(r)
}

// holdDeleted gives up a deleted file once it has been held for max_hold.
// The reader checks this itself between reads (deletedTooLong); this is
// for a reader held in a wait for memory, which, with the outputs down,
// would otherwise keep the file (and its disk space) for the whole outage.
func (in *Input) holdDeleted(r *reader, now time.Time) {
	if r.heldSince.IsZero() {
		r.heldSince = now
		return
	}
	if now.Sub(r.heldSince) >= in.cfg.MaxHold.D() {
		r.giveUp(errGaveUp)
	}
}

// noteRenamedAway counts a rotation for a followed file that still has a
// name but that its path no longer leads to: renamed out of the globs
// (app.log -> app.log.1 with include app.log), which followRename never
// sees. Callers hold in.mu.
func (in *Input) noteRenamedAway(r *reader) {
	if r.pathLost || r.gone.Load() {
		return
	}
	if fi, err := os.Stat(r.currentPath()); err == nil {
		if id, ok := statID(fi); ok && id == r.id {
			return // still there; the glob missed it for another reason
		}
	}
	r.pathLost = true
	in.countRotation()
}

// wants reports whether a file without a reader has something to read.
func (in *Input) wants(id fileID, fi fs.FileInfo) bool {
	e, ok := in.store.Get(in.key(id))
	if !ok {
		if ia := in.cfg.IgnoreOlder.D(); ia > 0 && time.Since(fi.ModTime()) > ia {
			return false
		}
		return true
	}
	if e.Size > 0 {
		// Closed at this size and time: reopen when either changes. The
		// size alone misses new content of the same length (an inode
		// reused by another file, a file rewritten in place); reopened,
		// its head fingerprint decides whether it is read from the start.
		return fi.Size() != e.Size || e.MTime != 0 && fi.ModTime().UnixNano() != e.MTime
	}
	return fi.Size() != e.Offset
}

// lostWaiting counts the unread data of a file that was deleted or renamed
// out of the globs while it waited for a descriptor (max_open_files with
// every descriptor on a file with unread data): without a handle it cannot
// be read any more.
func (in *Input) lostWaiting(id fileID, w waitState) {
	var from int64
	if e, ok := in.store.Get(in.key(id)); ok {
		from = e.Offset
	} else if w.initial && in.cfg.StartAt == "end" {
		return // would have started at its end
	}
	lost := w.lastSize - from
	if lost <= 0 {
		return
	}
	in.stats.LostBytes("unopened").Add(lost)
	in.log.Warn("file went away while waiting for a descriptor (max_open_files); its unread data is lost",
		zap.String("input", in.name), zap.String("path", w.lastPath), zap.Int64("bytes", lost))
}

// openCandidate opens a file that has no reader and starts one, unless the
// file is a copy of a file still being read. It reports whether the file
// no longer waits.
func (in *Input) openCandidate(ctx context.Context, em pipeline.Emitter, c candidate) bool {
	// Open now, not in the reader: in a rotation storm a file may be
	// renamed or deleted milliseconds after it appears, and an open handle
	// keeps it readable to its end.
	f, err := os.Open(c.path)
	if err != nil {
		if !in.unopenable[c.id] {
			in.unopenable[c.id] = true
			in.log.Warn("cannot open file; trying again every scan_interval", zap.String("input", in.name), zap.String("path", c.path), zap.Error(err))
		}
		return true
	}
	if in.unopenable[c.id] {
		delete(in.unopenable, c.id)
		in.log.Info("file can be opened now", zap.String("input", in.name), zap.String("path", c.path))
	}
	in.open.Add(1)
	closeF := func() {
		f.Close()
		in.open.Add(-1)
	}
	fi, err := f.Stat()
	if now, ok := statID(fi); err != nil || !ok || now != c.id {
		closeF()
		in.requestScan() // replaced since the glob ran
		return true
	}
	at, deferred := in.place(c.id, f, fi.Size())
	if deferred {
		closeF()
		return true
	}
	delete(in.deferred, c.id)
	if old, ok := in.readers[c.id]; ok && !old.gone.Load() {
		old.markGone()
	}
	r := newReader(in, c.id, c.path, c.initial)
	r.claim = at
	r.fresh = fi.Size() == 0
	in.startReader(ctx, em, r, f)
	return true
}

// startReader runs r on f, already opened and counted in in.open. Callers
// hold in.mu.
func (in *Input) startReader(ctx context.Context, em pipeline.Emitter, r *reader, f *os.File) {
	r.f = f
	r.hold, r.giveUp = context.WithCancelCause(ctx)
	in.readers[r.id] = r
	in.stats.FilesOpen.Add(1)
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		r.run(ctx, em, f)
		r.giveUp(nil)
		r.closeFile()
		in.mu.Lock()
		if in.readers[r.id] == r {
			delete(in.readers, r.id)
		}
		in.mu.Unlock()
		in.requestScan() // a descriptor is free for a waiting file
	}()
}

// evictIdle asks up to n readers that sit at the end of their file to close
// it, so that files with unread data get descriptors. A file with unread
// data, or a deleted one, is never evicted.
func (in *Input) evictIdle(n int) {
	var idle []*reader
	for _, r := range in.readers {
		if r.atEOF.Load() && !r.evict.Load() && !r.gone.Load() {
			idle = append(idle, r)
		}
	}
	sort.Slice(idle, func(i, j int) bool { return idle[i].idleSince() < idle[j].idleSince() })
	for _, r := range idle[:min(n, len(idle))] {
		r.evict.Store(true)
		r.wakeUp()
	}
}

// collectCheckpoints forgets the checkpoints of files that have been gone
// for checkpoint_ttl. Gone is measured from the first scan that missed the
// file, not from the entry's last update: a file closed as inactive long
// ago that misses one scan (renamed out and back, a directory remounted)
// keeps its checkpoint, rather than being read again from its start.
func (in *Input) collectCheckpoints(found map[fileID]seen) {
	ttl := in.cfg.CheckpointTTL.D()
	now := time.Now()
	prefix := in.name + "/"
	for _, k := range in.store.Keys(prefix) {
		id, ok := parseID(strings.TrimPrefix(k, prefix))
		if !ok {
			continue
		}
		_, here := found[id]
		_, reading := in.readers[id]
		if here || reading {
			delete(in.missing, k)
			continue
		}
		since, ok := in.missing[k]
		if !ok {
			in.missing[k] = now
			continue
		}
		if now.Sub(since) >= ttl {
			in.store.Delete(k)
			delete(in.missing, k)
		}
	}
	for k := range in.missing {
		if _, ok := in.store.Get(k); !ok {
			delete(in.missing, k) // deleted elsewhere: nothing left to collect
		}
	}
}

func (in *Input) key(id fileID) string { return in.name + "/" + id.String() }
