package file

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tailship/tailship/config"
)

// Two rename rotations whose rotated names (app.log.1, app.log.2) are
// outside the globs count two rotations for the input, once each, though no
// scan ever sees the renamed files; a third rotated to a name inside the
// globs counts once more.
func TestRotationsCountedWhenRenamedOutOfGlobs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, "g0", 0, 1000)
	h := newHarness(t, dir, func(c *Config) {
		c.Include = []string{path, filepath.Join(dir, "*.old")}
		c.CloseRemoved = config.Dur(time.Second) // the old readers stay while the scans look
	})
	h.start()
	h.waitLines(1000)
	rotations := func() int64 { return h.stats.RotationsOf("app").Load() }
	for g := 1; g <= 2; g++ {
		must(0, os.Rename(path, fmt.Sprintf("%s.%d", path, g)))
		appendLines(t, path, fmt.Sprintf("g%d", g), 0, 1000)
		h.waitLines(1000 * (g + 1))
		waitFor(t, func() bool { return rotations() >= int64(g) })
	}
	time.Sleep(5 * h.cfg.ScanInterval.D()) // more scans miss the rotated files
	if n := rotations(); n != 2 {
		t.Fatalf("%d rotations counted after two renames out of the globs", n)
	}
	must(0, os.Rename(path, filepath.Join(dir, "app.log.3.old")))
	appendLines(t, path, "g3", 0, 1000)
	h.waitLines(4000)
	waitFor(t, func() bool { return rotations() >= 3 })
	time.Sleep(5 * h.cfg.ScanInterval.D())
	h.stop()
	if n := rotations(); n != 3 {
		t.Fatalf("%d rotations counted after three renames", n)
	}
	checkAll(t, h.out.Lines(), map[string]int{"g0": 1000, "g1": 1000, "g2": 1000, "g3": 1000})
}
