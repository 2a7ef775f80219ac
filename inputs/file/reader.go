package file

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/checkpoint"
	"github.com/tailship/tailship/pipeline"
)

const (
	// chunkBytes is how much one read takes at most: large enough that the
	// per-chunk costs (a syscall, a channel send, an ack) vanish per line,
	// small enough that many files in flight stay within the memory budget.
	chunkBytes = 256 << 10
	// fpBytes is how much of a file's head identifies it.
	fpBytes = 1024
)

// fingerprint is a hash of a file's first n bytes (n < fpBytes while the
// file is shorter than that, so a small file is readable at once).
type fingerprint struct {
	n    int
	hash uint64
}

func headFingerprint(f *os.File, n int) (fingerprint, error) {
	fp, _, err := readHead(f, n)
	return fp, err
}

// readHead returns the fingerprint of f's first n bytes and the bytes.
func readHead(f *os.File, n int) (fingerprint, []byte, error) {
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fingerprint{}, nil, err
	}
	h := fnv.New64a()
	h.Write(buf[:m])
	return fingerprint{n: m, hash: h.Sum64()}, buf[:m], nil
}

// reader follows one file (one identity) from its checkpoint to its end,
// and keeps following it while it may still grow.
type reader struct {
	in         *Input
	id         fileID
	startAtEnd bool
	log        *zap.Logger
	closeOnce  sync.Once // r.f is closed once, maybe before run returns
	// hold is the reader's context for waits on memory; the scan cancels
	// it with errGaveUp when the file has been deleted for max_hold.
	hold   context.Context
	giveUp context.CancelCauseFunc

	// shown is src for status, read from other goroutines (the API).
	shown atomic.Pointer[pipeline.Source]

	mu      sync.Mutex // guards what commit callbacks read: path, fp, gen
	path    string
	fp      fingerprint
	headRaw []byte // the bytes fp was taken of
	gen     int    // bumped when the file is truncated: late acks of the old content are ignored

	f        *os.File
	claim    int64  // where the scan decided reading starts (a copy of content already read); -1: checkpoint or start_at
	once     bool   // read to the end and stop: a copy outside the globs, read for what its original lost
	fresh    bool   // the file was empty when found: check, at its first bytes, that it is not a copy
	off      int64  // next byte to read
	consumed int64  // end of the last line emitted: where a checkpoint or a copy's reader may resume
	tail     []byte // the last bytes emitted (up to 1 KiB), ending at consumed
	tails    [tailMarks]tailMark
	tailsN   int
	carry    []byte // the unterminated tail of the last read (at most max_line_bytes)
	skipping bool   // discarding the rest of a line longer than max_line_bytes
	src      *pipeline.Source
	lastData time.Time
	wake     chan struct{} // a file event for this file; buffered, one pending is enough
	lastSize int64         // size at the last stat: what a truncation may have cut
	lastMod  int64         // modification time (Unix ns) at the last stat
	seenSize atomic.Int64  // lastSize, for status from other goroutines
	deleted  time.Time     // when the file was first seen unlinked
	headBuf  []byte
	// gone is set once the file is seen deleted: its inode may be reused by
	// a new file, which then gets its own reader, so this one stops writing
	// checkpoints under the shared identity.
	gone atomic.Bool
	// atEOF is set while the reader has read every complete line; evict
	// asks such a reader to close its file for one that waits (max_open_files).
	atEOF atomic.Bool
	evict atomic.Bool
	// pathLost: the scan saw the path stop leading to this file while the
	// file stayed (renamed out of the globs) and counted the rotation; the
	// file found again under a new name is the same rotation. Guarded by
	// in.mu.
	pathLost bool
	// heldSince is when a scan first found the file deleted (in.mu).
	heldSince time.Time
	idleFrom  atomic.Int64 // unix nanoseconds of the last data
}

// tailMarks is how many recent chunk ends a reader remembers. A copy made
// before the reader got to the truncation point is recognised by the mark
// at or before its end; 64 chunks cover what a writer adds between a copy
// and the truncation that follows it.
const tailMarks = 64

// tailMark is the hash of the bytes just before a chunk's end: a copy of
// the file holds the same bytes there, and the checkpoint at that offset
// carries it (see checkpoint.Entry.Tail).
type tailMark struct {
	at   int64
	hash uint64
	n    int
}

func (r *reader) markGone() {
	if !r.gone.Swap(true) {
		r.in.requestScan()
	}
}

var (
	errGaveUp = errors.New("deleted file held for max_hold; unread rest given up")
	errCopy   = errors.New("a copy of a file being read; the scan places it")
)

// nlink returns the file's link count (0 once it is deleted).
func nlink(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// deletedTooLong reports whether the file was deleted more than max_hold
// ago, counting the unread rest as lost.
func (r *reader) deletedTooLong(fi os.FileInfo, size int64) bool {
	if nlink(fi) > 0 {
		r.deleted = time.Time{}
		return false
	}
	r.markGone()
	if r.deleted.IsZero() {
		r.deleted = time.Now()
	}
	if time.Since(r.deleted) < r.in.cfg.MaxHold.D() || size <= r.off {
		return false
	}
	lost := size - r.off + int64(len(r.carry))
	r.in.stats.LostBytes("deleted").Add(lost)
	r.log.Warn("deleted file held open for max_hold; giving up its unread rest", zap.Int64("bytes", lost))
	return true
}

// headChanged reports whether the first bytes differ from the fingerprint
// taken earlier: the file was truncated and rewritten past the old offset
// between two looks, which the size alone cannot show.
func (r *reader) headChanged(size int64) bool {
	n := r.fp.n
	if n == 0 || size < int64(n) {
		return false
	}
	if cap(r.headBuf) < n {
		r.headBuf = make([]byte, fpBytes)
	}
	m, err := r.f.ReadAt(r.headBuf[:n], 0)
	if m < n || err != nil && !errors.Is(err, io.EOF) {
		return false
	}
	h := fnv.New64a()
	h.Write(r.headBuf[:n])
	return h.Sum64() != r.fp.hash
}

func (r *reader) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func newReader(in *Input, id fileID, path string, startAtEnd bool) *reader {
	return &reader{in: in, id: id, path: path, claim: -1, startAtEnd: startAtEnd && in.cfg.StartAt == "end", wake: make(chan struct{}, 1),
		log: in.log.With(zap.String("input", in.name), zap.String("path", path))}
}

func (r *reader) setPath(p string) {
	r.mu.Lock()
	r.path = p
	r.mu.Unlock()
}

func (r *reader) currentPath() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.path
}

// run follows f, opened by the scan, until the file is done or ctx ends.
func (r *reader) run(ctx context.Context, em pipeline.Emitter, f *os.File) {
	fi, err := f.Stat()
	if err != nil {
		r.log.Warn("cannot stat file", zap.Error(err))
		return
	}
	if err := r.resume(fi.Size()); err != nil {
		r.log.Warn("cannot read file head", zap.Error(err))
		return
	}
	r.newSource(em)
	r.touch()
	dormant := false
	for ctx.Err() == nil {
		progressed, err := r.readOnce(ctx, em)
		if err != nil {
			if errors.Is(err, errCopy) {
				r.in.requestScan()
			}
			if ctx.Err() == nil && !errors.Is(err, errGaveUp) && !errors.Is(err, errCopy) {
				r.log.Warn("read failed", zap.Error(err))
			}
			if errors.Is(err, errGaveUp) {
				// Nothing more is read from it: free the deleted file's
				// space now, not once the outputs took what was read.
				r.closeFile()
			}
			break
		}
		if progressed {
			r.atEOF.Store(false)
			continue
		}
		r.atEOF.Store(true)
		if r.once || r.idle() {
			r.flushCarry(ctx, em)
			break
		}
		if r.closeIdle() {
			dormant = true
			break
		}
		r.sleep(ctx, r.in.cfg.PollInterval.D())
	}
	r.waitAcked(ctx)
	if dormant && ctx.Err() == nil && r.src.InFlight() == 0 {
		r.rest()
	}
}

// closeFile closes the reader's descriptor once and gives its slot back.
func (r *reader) closeFile() {
	r.closeOnce.Do(func() {
		r.f.Close()
		r.in.open.Add(-1)
		r.in.stats.FilesOpen.Add(-1)
		r.in.requestScan() // a descriptor is free for a waiting file
	})
}

func (r *reader) touch() {
	r.lastData = time.Now()
	r.idleFrom.Store(r.lastData.UnixNano())
}

func (r *reader) idleSince() int64 { return r.idleFrom.Load() }

// closeIdle reports, at the end of a file that still has its name, whether
// to close it: it was quiet for close_inactive, or its descriptor is wanted
// by a file with unread data. It is reopened when it grows.
func (r *reader) closeIdle() bool {
	if r.gone.Load() || r.unlinked() {
		return false
	}
	if r.evict.Load() {
		return true
	}
	// A file that ends mid-line stays open (unless its descriptor is
	// wanted): closed, it would not be reopened until it grows, and if it
	// was rotated and is deleted without growing, its last line would
	// never be shipped.
	return len(r.carry) == 0 && time.Since(r.lastData) >= r.in.cfg.CloseInactive.D()
}

// rest records, as the reader closes an idle file, where it stopped and
// the size and modification time it saw, so the scan reopens the file only
// when it changes.
func (r *reader) rest() {
	r.mu.Lock()
	e := checkpoint.Entry{Offset: r.consumed, Path: r.path, Fingerprint: r.fp.hash, FPLen: r.fp.n, Size: r.lastSize, MTime: r.lastMod}
	r.tailAt(&e)
	r.mu.Unlock()
	r.in.store.Set(r.in.key(r.id), e)
}

func (r *reader) forgetMarks() {
	r.tail = r.tail[:0]
	r.mu.Lock()
	r.tails, r.tailsN = [tailMarks]tailMark{}, 0
	r.mu.Unlock()
}

// tailAt adds the tail hash for e.Offset when the reader still has it.
// Callers hold r.mu.
func (r *reader) tailAt(e *checkpoint.Entry) {
	for _, t := range r.tails {
		if t.n > 0 && t.at == e.Offset {
			e.Tail, e.TailLen = t.hash, t.n
			return
		}
	}
}

// remember records the hash of the 1 KiB before end, the end of chunk
// bytes b, keeping a rolling 1 KiB of what was emitted so that small chunks
// hash the same span as large ones.
func (r *reader) remember(b []byte, end int64) {
	if len(b) >= fpBytes {
		r.tail = append(r.tail[:0], b[len(b)-fpBytes:]...)
	} else {
		if keep := fpBytes - len(b); len(r.tail) > keep {
			r.tail = r.tail[:copy(r.tail, r.tail[len(r.tail)-keep:])]
		}
		r.tail = append(r.tail, b...)
	}
	h := hashBytes(r.tail)
	r.mu.Lock()
	r.tails[r.tailsN%len(r.tails)] = tailMark{at: end, hash: h, n: len(r.tail)}
	r.tailsN++
	r.mu.Unlock()
}

// marks returns the remembered chunk ends, newest first.
func (r *reader) marks() []tailMark {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]tailMark, 0, min(r.tailsN, len(r.tails)))
	for i := r.tailsN - 1; i >= 0 && i >= r.tailsN-len(r.tails); i-- {
		out = append(out, r.tails[i%len(r.tails)])
	}
	return out
}

func (r *reader) head() fingerprint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fp
}

func (r *reader) status() FileStatus {
	st := FileStatus{Path: r.currentPath(), Size: r.seenSize.Load(), Open: true}
	if src := r.shown.Load(); src != nil {
		st.Committed = src.Committed()
	}
	return st
}

// resume positions the reader from its checkpoint, if that checkpoint is for
// this content, else at the start (or the end for start_at = "end" files
// present at startup).
func (r *reader) resume(size int64) error {
	fp, raw, err := readHead(r.f, int(min(size, fpBytes)))
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.fp, r.headRaw = fp, raw
	r.mu.Unlock()
	defer func() { r.consumed = r.off }()
	key := r.in.key(r.id)
	if r.claim >= 0 {
		r.off = r.claim
		r.in.store.Set(key, checkpoint.Entry{Offset: r.off, Path: r.path, Fingerprint: fp.hash, FPLen: fp.n})
		return nil
	}
	e, ok := r.in.store.Get(key)
	switch {
	case ok && sameContent(r.f, r.fp, e, size):
		r.off = e.Offset
	case ok:
		r.log.Info("file identity reused by new content; reading from the start")
		r.off = 0
	case r.startAtEnd:
		r.off = r.alignEnd(size)
		r.in.store.Set(key, checkpoint.Entry{Offset: r.off, Path: r.path, Fingerprint: fp.hash, FPLen: fp.n})
	default:
		r.off = 0
	}
	return nil
}

// sameContent reports whether checkpoint e describes the content of f, whose
// head fingerprint is fp: the fingerprint still matches and e does not point
// past the end.
func sameContent(f *os.File, fp fingerprint, e checkpoint.Entry, size int64) bool {
	if e.Offset > size || int64(e.FPLen) > size {
		return false
	}
	if e.FPLen == fp.n {
		return e.Fingerprint == fp.hash
	}
	got, err := headFingerprint(f, e.FPLen)
	return err == nil && got.hash == e.Fingerprint
}

// alignEnd returns the offset just past the last newline before size, so
// start_at = "end" never starts in the middle of a line.
func (r *reader) alignEnd(size int64) int64 {
	const back = 64 << 10
	from := max(0, size-back)
	buf := make([]byte, size-from)
	n, _ := r.f.ReadAt(buf, from)
	if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
		return from + int64(i) + 1
	}
	return from
}

func (r *reader) newSource(em pipeline.Emitter) {
	r.mu.Lock()
	r.gen++
	gen := r.gen
	r.mu.Unlock()
	path := r.currentPath()
	r.src = em.NewSource(path, func(off int64) { r.commit(gen, off) })
	if r.in.cfg.Kubernetes {
		// Once per file, not per line: the fields are the source's.
		k := kubernetesFields(path)
		if k == nil {
			r.in.log.Warn("kubernetes = true, but the path is not a kubelet log path (/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log or /var/log/containers/<pod>_<ns>_<container>-<id>.log); no kubernetes fields", zap.String("path", path))
		}
		r.src.Fields = append(slices.Clip(r.src.Fields), k...)
	}
	r.shown.Store(r.src)
}

// commit runs on an output's goroutine when a prefix of this file is
// acknowledged everywhere.
func (r *reader) commit(gen int, off int64) {
	r.mu.Lock()
	if gen != r.gen || r.gone.Load() {
		r.mu.Unlock()
		return
	}
	e := checkpoint.Entry{Offset: off, Path: r.path, Fingerprint: r.fp.hash, FPLen: r.fp.n}
	r.tailAt(&e)
	r.mu.Unlock()
	r.in.store.Set(r.in.key(r.id), e)
}

// readOnce reads what is there (up to one chunk) and emits its complete
// lines. It reports whether it read anything.
func (r *reader) readOnce(ctx context.Context, em pipeline.Emitter) (bool, error) {
	fi, err := r.f.Stat()
	if err != nil {
		return false, err
	}
	size := fi.Size()
	r.lastMod = fi.ModTime().UnixNano()
	if size < r.off || r.headChanged(size) {
		r.truncated(em, size)
		r.setSize(size)
		return true, nil
	}
	r.setSize(size)
	if r.deletedTooLong(fi, size) {
		return false, errGaveUp
	}
	if size == r.off {
		return false, nil
	}
	// Unread data: no longer idle, even while the wait for memory below
	// lasts (a stalled output), so the scan does not evict this reader for
	// a waiting file.
	r.atEOF.Store(false)
	if r.fresh {
		r.fresh = false
		if r.off == 0 && r.in.looksLikeCopy(r, size) {
			return false, errCopy
		}
	}
	if r.fp.n < fpBytes && size > int64(r.fp.n) {
		r.refreshFingerprint(size)
	}
	maxLine := int(r.in.cfg.MaxLineBytes)
	// Fill one buffer class, carry included, rather than spill a carry into
	// the next class up (which would charge the budget four times over).
	want := max(int(min(int64(len(r.carry))+size-r.off, chunkBytes)), len(r.carry)+4096)
	// r.hold, not ctx: with the outputs down this wait lasts the whole
	// outage, and the scan ends it once a deleted file has been held for
	// max_hold (Input.holdDeleted).
	c, err := em.NewChunk(r.hold, r.src, want)
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(r.hold), errGaveUp) {
			lost := size - r.off + int64(len(r.carry))
			r.in.stats.LostBytes("deleted").Add(lost)
			r.log.Warn("deleted file held open for max_hold while the outputs were not taking data; giving up its unread rest", zap.Int64("bytes", lost))
			return false, errGaveUp
		}
		return false, err
	}
	buf := append(c.Buf, r.carry...)
	n, err := r.f.ReadAt(buf[len(buf):cap(buf)], r.off)
	if err != nil && !errors.Is(err, io.EOF) {
		em.Release(c)
		return false, err
	}
	if n == 0 {
		em.Release(c)
		return false, nil
	}
	// A truncation between the stat and the read may have let the writer
	// put new content where the old content was: then what was read is
	// not the old content's continuation. Writes land in order, so new
	// bytes at our offset mean a new head too.
	if r.headChanged(r.off + int64(n)) {
		em.Release(c)
		r.truncated(em, size)
		return true, nil
	}
	r.off += int64(n)
	r.touch()
	data := buf[:len(buf)+n]
	spliced := r.skipping
	if r.skipping {
		fresh := data[len(r.carry):]
		i := bytes.IndexByte(fresh, '\n')
		if i < 0 {
			em.Release(c) // still inside the over-long line: drop what was read
			return true, nil
		}
		// The over-long line ends here: keep its first max_line_bytes, then
		// whatever follows its newline.
		keep := len(r.carry)
		data = append(data[:keep], fresh[i:]...)
		r.skipping = false
		c.Truncated++
	}
	last := bytes.LastIndexByte(data, '\n')
	if last < 0 {
		if len(data) >= maxLine {
			r.carry = append(r.carry[:0], data[:maxLine]...)
			r.skipping = true
		} else {
			r.carry = append(r.carry[:0], data...)
		}
		em.Release(c)
		return true, nil
	}
	tail := data[last+1:]
	r.carry = append(r.carry[:0], tail...)
	c.Buf = data[:last+1]
	c.End = r.off - int64(len(tail))
	if spliced {
		r.forgetMarks() // the buffer is no longer the file's bytes
	} else {
		r.remember(c.Buf, c.End)
	}
	r.consumed = c.End
	if err := em.Emit(ctx, c); err != nil {
		return false, err
	}
	return true, nil
}

// flushCarry ships a last line that never got its newline, once the file
// is done: rotated away or deleted, and quiet for close_removed_after (or a
// copy read to its end). While the file keeps its name the line waits for
// its newline instead, since its writer may be in the middle of it; the
// checkpoint stays before it, so a restart reads it again rather than
// losing it.
func (r *reader) flushCarry(ctx context.Context, em pipeline.Emitter) {
	if len(r.carry) == 0 || r.src == nil {
		return
	}
	c, err := em.NewChunk(ctx, r.src, len(r.carry)+1)
	if err != nil {
		return
	}
	c.Buf = append(append(c.Buf, r.carry...), '\n')
	if r.skipping {
		c.Truncated++ // the kept head of an over-long line
	}
	c.End = r.off
	r.carry, r.skipping = r.carry[:0], false
	r.consumed = c.End
	r.forgetMarks() // the buffer's newline is not the file's
	r.in.stats.UnterminatedLines.Add(1)
	if err := em.Emit(ctx, c); err != nil {
		r.log.Warn("cannot ship the last, unterminated line", zap.Error(err))
	}
}

// unlinked reports whether the reader's file has no name left. Safe from
// another goroutine: os.File serialises Stat against Close.
func (r *reader) unlinked() bool {
	fi, err := r.f.Stat()
	return err == nil && nlink(fi) == 0
}

// sameHead reports whether f starts with the bytes this reader's
// fingerprint was taken of: the same content under another name.
func (r *reader) sameHead(f *os.File) bool {
	r.mu.Lock()
	fp := r.fp
	r.mu.Unlock()
	if fp.n == 0 {
		return true
	}
	got, err := headFingerprint(f, fp.n)
	return err == nil && got == fp
}

func (r *reader) refreshFingerprint(size int64) {
	fp, raw, err := readHead(r.f, int(min(size, fpBytes)))
	if err != nil {
		return
	}
	r.mu.Lock()
	r.fp, r.headRaw = fp, raw
	r.mu.Unlock()
}

// headHasPrefix reports whether the file's first bytes, as far as the
// reader has seen them, start with b and go on past it.
func (r *reader) headHasPrefix(b []byte) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.headRaw) > len(b) && bytes.HasPrefix(r.headRaw, b)
}

// setSize records the size seen by the last stat.
func (r *reader) setSize(size int64) {
	r.lastSize = size
	r.seenSize.Store(size)
}

// truncated restarts the file from its start after a copytruncate; chunks of
// the old content still in flight no longer move the checkpoint.
func (r *reader) truncated(em pipeline.Emitter, size int64) {
	// What the file held beyond our offset before it was cut is gone
	// unless a copy of it turns up; the input decides which, and counts.
	t := &truncation{head: r.head(), off: r.consumed, marks: r.marks(), lastSize: max(r.lastSize, r.off), at: time.Now(), path: r.currentPath()}
	if t.head.n < fpBytes {
		t.marks = nil // too short to recognise a copy by
	}
	r.forgetMarks()
	r.log.Info("file truncated; reading from the start", zap.Int64("old_offset", r.off), zap.Int64("size", size))
	r.off, r.consumed, r.carry, r.skipping = 0, 0, r.carry[:0], false
	// The new head first: a scan that still saw the old one would take
	// the copy for a copy of a live file and wait for it, not claim it.
	r.refreshFingerprint(size)
	r.newSource(em)
	r.in.store.Set(r.in.key(r.id), checkpoint.Entry{Offset: 0, Path: r.currentPath(), Fingerprint: r.fp.hash, FPLen: r.fp.n})
	r.in.noteTruncation(t)
	r.in.countRotation()
}

// idle reports, at the end of the file, whether the reader should stop: the
// file was renamed away from the globs or deleted and has not grown for
// close_removed_after.
func (r *reader) idle() bool {
	if time.Since(r.lastData) < r.in.cfg.CloseRemoved.D() {
		return false
	}
	if own, err := r.f.Stat(); err == nil && nlink(own) == 0 {
		r.markGone()
		return true // deleted and read to its end; the inode may already be reused
	}
	fi, err := os.Stat(r.currentPath())
	if err == nil {
		if id, ok := statID(fi); ok && id == r.id {
			return false
		}
	}
	// The path no longer leads to this file. A rename within the globs is
	// picked up by the scan (setPath); give it one scan to do so.
	return time.Since(r.lastData) >= r.in.cfg.CloseRemoved.D()+r.in.cfg.ScanInterval.D()
}

// waitAcked holds the reader (and so its identity's slot) until its chunks
// are acknowledged, so that a new reader of the same file cannot start from
// a checkpoint that is about to move.
func (r *reader) waitAcked(ctx context.Context) {
	for r.src != nil && r.src.InFlight() > 0 && ctx.Err() == nil {
		r.sleep(ctx, 10*time.Millisecond)
	}
}

// sleep waits for the poll interval or a file event, whichever is first.
func (r *reader) sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.wake:
	}
}
