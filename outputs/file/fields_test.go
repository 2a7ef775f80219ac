package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tailship/tailship/pipeline"
)

// fieldBatch builds a batch of "e <seq>" lines whose service field is
// services[seq % len]; "" leaves the field out.
func fieldBatch(from, n int, services []string) *pipeline.Batch {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("e %08d", from+i)
	}
	b := pipeline.NewTestBatch(&pipeline.Source{Name: "s"}, lines...)
	i := 0
	for _, ev := range b.All() {
		if v := services[(from+i)%len(services)]; v != "-" {
			ev.Fields = []pipeline.Field{{Key: "service", Value: v}}
		}
		i++
	}
	return b
}

func TestFieldPathRefusesEscapes(t *testing.T) {
	for _, comp := range []string{"none", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			root := t.TempDir()
			base := filepath.Join(root, "out")
			o := build(t, newConfig(base+"/%{service}/app.log", comp))
			defer closeOut(t, o)
			services := []string{"web", "api", "../../escape", "a/b", "..", ".", "", "-", `c\d`, "/abs"}
			bad := map[string]bool{"../../escape": true, "a/b": true, "..": true, ".": true, `c\d`: true, "/abs": true}
			const n = 200
			rejected := map[int]bool{}
			for from := 0; from < n; from += 50 {
				err := o.Write(context.Background(), fieldBatch(from, 50, services))
				var pe *pipeline.PartialError
				if !errors.As(err, &pe) {
					t.Fatalf("Write = %v, want a PartialError rejecting the escaping events", err)
				}
				if len(pe.Retry) != 0 {
					t.Fatalf("retry %v", pe.Retry)
				}
				for _, r := range pe.Rejected {
					seq := from + r.Index
					if !bad[services[seq%len(services)]] || !strings.Contains(r.Reason, "would leave the output directory") {
						t.Fatalf("event %d (%q) rejected: %s", seq, services[seq%len(services)], r.Reason)
					}
					rejected[seq] = true
				}
			}
			closeOut(t, o)
			// Every file is under base; each holds its own service's lines
			// in order; every good event is in exactly one of them.
			got := map[int]int{}
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				if !strings.HasPrefix(p, base+"/") {
					t.Errorf("file outside the output directory: %s", p)
				}
				svc := filepath.Base(filepath.Dir(p))
				last := -1
				for _, l := range decodeFile(t, comp, p) {
					var seq int
					fmt.Sscanf(l, "e %d", &seq)
					want := services[seq%len(services)]
					if want == "" || want == "-" {
						want = "unknown"
					}
					if want != svc || seq <= last {
						t.Errorf("%s: line %q (service %q) out of place or order", p, l, want)
					}
					last = seq
					got[seq]++
				}
				return nil
			})
			lost, dup := 0, 0
			for seq := range n {
				switch {
				case rejected[seq]:
					if got[seq] != 0 {
						t.Errorf("rejected event %d was written", seq)
					}
				case got[seq] == 0:
					lost++
				case got[seq] > 1:
					dup += got[seq] - 1
				}
			}
			t.Logf("%d events: %d written, %d refused (dead-letter), lost %d, duplicated %d", n, len(got), len(rejected), lost, dup)
			if lost != 0 || dup != 0 || len(rejected) != n*6/len(services) {
				t.Fatalf("lost %d, duplicated %d, refused %d", lost, dup, len(rejected))
			}
			// Coming back to a compressed file appends to it: no rotation.
			if rot, _ := filepath.Glob(filepath.Join(base, "*", "app.log.*")); len(rot) != 0 {
				t.Fatalf("files rotated aside: %v", rot)
			}
		})
	}
}

// A file that fails mid-batch: the events already in earlier files are not
// retried, the failing file's and later files' are.
func TestFieldPathRetriesOnlyUnwritten(t *testing.T) {
	base := filepath.Join(t.TempDir(), "out")
	o := build(t, newConfig(base+"/%{service}.log", "gzip"))
	defer closeOut(t, o)
	o.open = func(path string) (file, error) {
		if strings.HasSuffix(path, "api.log") {
			return nil, errors.New("disk on fire")
		}
		return openFile(path)
	}
	b := fieldBatch(0, 9, []string{"web", "api", "db"})
	err := o.Write(context.Background(), b)
	var pe *pipeline.PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Write = %v", err)
	}
	// Groups in order of first appearance: web (0,3,6) written; api and
	// db retried.
	if want := []int{1, 2, 4, 5, 7, 8}; !slices.Equal(pe.Retry, want) {
		t.Fatalf("retry %v, want %v", pe.Retry, want)
	}
	if !strings.Contains(pe.Error(), "disk on fire") {
		t.Fatalf("error %v does not say why", pe)
	}
	closeOut(t, o)
	if got := decodeFile(t, "gzip", filepath.Join(base, "web.log")); !slices.Equal(got, []string{"e 00000000", "e 00000003", "e 00000006"}) {
		t.Fatalf("web.log = %q", got)
	}
	if _, err := os.Stat(filepath.Join(base, "db.log")); err == nil {
		t.Fatal("db.log written although it is to be retried")
	}
}

func TestFieldPathConfig(t *testing.T) {
	for path, want := range map[string]string{
		"%{service}.log":         "must begin with a directory",
		"out%{service}.log":      "must begin with a directory",
		"/var/log/%{service.log": "is not closed",
		"/var/log/%{}.log":       "names no field",
	} {
		err := newConfig(path, "none").Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("path %q: %v, want %q", path, err, want)
		}
	}
	if err := newConfig("/var/log/out/%Y/%{service}/x.log", "none").Validate(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkWriteFieldPath compares a batch of 2,000 events written to one
// static path with the same batch spread by %{service} over four files.
func BenchmarkWriteFieldPath(b *testing.B) {
	services := []string{"web", "api", "db", "auth"}
	for _, path := range []string{"static.log.zst", "%{service}/app.log.zst"} {
		b.Run(strings.SplitN(path, "/", 2)[0], func(b *testing.B) {
			o := build(b, newConfig(filepath.Join(b.TempDir(), path), "zstd"))
			defer o.Close(context.Background())
			batch := fieldBatch(0, 2000, services)
			b.SetBytes(int64(batch.Bytes()))
			b.ResetTimer()
			for range b.N {
				if err := o.Write(context.Background(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch.Len())/b.Elapsed().Seconds(), "events/s")
		})
	}
}
