package file

import (
	"context"
	"errors"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
)

// copytruncate rotation copies app.log to app.log.1 and then truncates
// app.log. When the copy matches the globs too, reading it from its start
// would deliver again every line already read from the original, and not
// reading it would lose the lines the original's reader had not reached
// before the truncation. So a file whose head is the head of a file being
// read waits (deferred) until that file is truncated; then it is read from
// the offset where the original's reader stopped, after checking that it
// holds the same bytes just before that offset.

// copyWait bounds how long a file that looks like a copy of a file being
// read waits for that file to be truncated. A copy that outlives it (a plain
// cp, or another file that happens to start with the same 1 KiB) is read
// like any new file, resuming from a verified checkpoint of the same content
// when there is one.
const copyWait = 5 * time.Second

// truncation is what a reader knew of its file's content when it found the
// file truncated.
type truncation struct {
	head     fingerprint // of the content that was cut
	off      int64       // end of the last line read
	marks    []tailMark  // hashes before recent chunk ends, newest first
	lastSize int64       // the file's size at the last look before the cut
	at       time.Time
	path     string
	claimed  bool
}

func (in *Input) noteTruncation(t *truncation) {
	in.mu.Lock()
	in.truncs = append(in.truncs, t)
	in.mu.Unlock()
	in.requestScan()
}

// settleTruncations deals with truncations no copy in the globs took over,
// once a scan that started after the truncation has looked for one: a copy
// next to the file that the globs do not match is read from where the
// original's reader stopped; failing that, what the reader had seen on disk
// and not read is counted as lost.
func (in *Input) settleTruncations(ctx context.Context, em pipeline.Emitter, started time.Time) {
	kept := in.truncs[:0]
	for _, t := range in.truncs {
		switch {
		case t.claimed:
		case !t.at.Before(started):
			kept = append(kept, t)
		case in.cfg.DetectCopies && in.rescue(ctx, em, t):
		case int(in.open.Load()) >= in.maxOpen && time.Since(t.at) < copyWait:
			kept = append(kept, t) // no descriptor to look with yet
		default:
			if lost := t.lastSize - t.off; lost > 0 {
				in.stats.LostBytes("truncated").Add(lost)
				in.log.Warn("file truncated before it was read to its end; no copy of it was found",
					zap.String("input", in.name), zap.String("path", t.path), zap.Int64("bytes", lost))
			}
		}
	}
	clear(in.truncs[len(kept):])
	in.truncs = kept
}

// rescue looks for a copy of a truncated file in its directory among files
// the globs do not match (copytruncate with include = ["app.log"]), and
// reads from it, once, what the original's reader had not reached. It
// reports whether it found one.
func (in *Input) rescue(ctx context.Context, em pipeline.Emitter, t *truncation) bool {
	if t.head.n < fpBytes || len(t.marks) == 0 || int(in.open.Load()) >= in.maxOpen {
		return false
	}
	dir := filepath.Dir(t.path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if !e.Type().IsRegular() || p == t.path {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() < fpBytes {
			continue
		}
		id, ok := statID(fi)
		if _, tracked := in.readers[id]; !ok || tracked {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		fp, err := headFingerprint(f, fpBytes)
		at, ok := t.verify(f, fi.Size())
		if err != nil || fp != t.head || !ok {
			f.Close()
			continue
		}
		in.open.Add(1)
		t.claimed = true
		if lost := t.lastSize - max(fi.Size(), t.off); lost > 0 {
			in.stats.LostBytes("truncated").Add(lost)
		}
		in.log.Info("reading the rest of a truncated file from its copy outside the globs",
			zap.String("input", in.name), zap.String("original", t.path), zap.String("copy", p), zap.Int64("offset", at))
		r := newReader(in, id, p, false)
		r.claim, r.once = at, true
		in.startReader(ctx, em, r, f)
		return true
	}
	return false
}

// place decides where a new reader of f starts. It returns -1 to let the
// reader's own checkpoint (or start_at) decide, an offset for a copy of
// content already read, or deferred = true while f looks like a copy of a
// file that is still being read.
func (in *Input) place(id fileID, f *os.File, size int64) (at int64, deferred bool) {
	if size == 0 {
		// Open it now (it may be renamed away before the next scan); its
		// reader checks whether it is a copy once it has bytes (fresh).
		return -1, false
	}
	fp, raw, err := readHead(f, int(min(size, fpBytes)))
	if err != nil {
		return -1, false
	}
	if e, ok := in.store.Get(in.key(id)); ok && sameContent(f, fp, e, size) {
		return -1, false
	}
	if !in.cfg.DetectCopies {
		return -1, false
	}
	for _, t := range in.truncs {
		if t.claimed || t.head != fp {
			continue
		}
		if at, ok := t.verify(f, size); ok {
			t.claimed = true
			if lost := t.lastSize - max(size, t.off); lost > 0 {
				in.stats.LostBytes("truncated").Add(lost)
			}
			in.log.Info("reading a copy of a truncated file from where its original was read",
				zap.String("input", in.name), zap.String("original", t.path), zap.Int64("offset", at))
			return at, false
		}
	}
	for _, r := range in.readers {
		if r.id == id || r.gone.Load() {
			continue
		}
		// The same head, or a shorter file whose bytes begin the other
		// file's head: a copy of it, finished or still being written.
		if r.head() == fp || fp.n < fpBytes && r.headHasPrefix(raw) {
			first, ok := in.deferred[id]
			if !ok {
				first = time.Now()
				in.deferred[id] = first
			}
			if time.Since(first) < copyWait {
				return 0, true
			}
		}
	}
	if size < fpBytes {
		// Too short to tell a copy from another file with the same few
		// first bytes; reading it again duplicates at most 1 KiB.
		return -1, false
	}
	// A checkpoint of the same content under another identity: a copy made
	// while the agent was down or while its original was closed.
	prefix := in.name + "/"
	self := in.key(id)
	for _, k := range in.store.Keys(prefix) {
		e, ok := in.store.Get(k)
		if !ok || k == self || e.FPLen != fpBytes || e.Fingerprint != fp.hash || e.TailLen == 0 || e.Offset > size {
			continue
		}
		if h, err := hashAt(f, e.Offset-int64(e.TailLen), e.TailLen); err == nil && h == e.Tail {
			return e.Offset, false
		}
	}
	return -1, false
}

// looksLikeCopy reports whether r's file, empty when its reader started,
// begins like a file another reader follows: a copy being written. Its
// reader then stops, and the scan places it as a copy.
func (in *Input) looksLikeCopy(r *reader, size int64) bool {
	if !in.cfg.DetectCopies {
		return false
	}
	fp, raw, err := readHead(r.f, int(min(size, fpBytes)))
	if err != nil {
		return false
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, o := range in.readers {
		if o != r && !o.gone.Load() && (o.head() == fp && fp.n == fpBytes || fp.n < fpBytes && o.headHasPrefix(raw)) {
			return true
		}
	}
	return false
}

// verify checks that f holds the bytes the truncated file's reader last
// read, and returns where reading f resumes: at the reader's offset, or at
// f's end when f was copied before the reader got that far (everything in
// it was read from the original then). The check is the hash of the 1 KiB
// before the newest chunk end f reaches, on top of the equal head.
func (t *truncation) verify(f *os.File, size int64) (int64, bool) {
	if t.off == 0 {
		return 0, true
	}
	end := min(size, t.off)
	for _, m := range t.marks {
		if m.at > end {
			continue
		}
		if m.n == 0 || end-m.at > 256<<10 {
			return 0, false // no mark close enough to f's end to vouch for it
		}
		h, err := hashAt(f, m.at-int64(m.n), m.n)
		return end, err == nil && h == m.hash
	}
	return 0, false
}

// hashAt hashes n bytes of f at off.
func hashAt(f *os.File, off int64, n int) (uint64, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	buf := make([]byte, n)
	if k, err := f.ReadAt(buf, off); k < n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return hashBytes(buf), nil
}

func hashBytes(b []byte) uint64 {
	h := fnv.New64a()
	h.Write(b)
	return h.Sum64()
}
