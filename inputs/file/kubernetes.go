package file

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/tailship/tailship/pipeline"
)

// Kubernetes metadata from kubelet's log paths, with no API call:
//
//	/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log
//	/var/log/containers/<pod>_<namespace>_<container>-<container id>.log
//
// The second is a symlink kubelet keeps to the first, so it is read too
// (os.Readlink, a local call) for the uid and restart count. Names are
// matched on the last path elements, not on /var/log, so a host mounted
// elsewhere (/host/var/log) works. Rotated files (0.log.20240101-120000)
// keep the restart count of their base name. Namespaces, pod names and
// uids cannot contain "_", which makes the split unambiguous.

// kubernetesFields returns the "kubernetes" field for path, or nil when
// path is neither form.
func kubernetesFields(path string) []pipeline.Field {
	var fs []pipeline.Field
	if m, ok := podsPath(path); ok {
		fs = m
	} else if m, ok := containersPath(path); ok {
		fs = m
		if t, err := os.Readlink(path); err == nil {
			if !filepath.IsAbs(t) {
				t = filepath.Join(filepath.Dir(path), t)
			}
			if pm, ok := podsPath(t); ok {
				fs = merge(pm, m)
			}
		}
	}
	if fs == nil {
		return nil
	}
	return []pipeline.Field{{Key: "kubernetes", Value: fs}}
}

// podsPath reads .../pods/<ns>_<pod>_<uid>/<container>/<n>.log[.rotated].
func podsPath(path string) ([]pipeline.Field, bool) {
	path = filepath.ToSlash(path)
	parts := strings.Split(path, "/")
	if len(parts) < 4 || parts[len(parts)-4] != "pods" {
		return nil, false
	}
	dir, container, file := parts[len(parts)-3], parts[len(parts)-2], parts[len(parts)-1]
	id := strings.Split(dir, "_")
	if len(id) != 3 || id[0] == "" || id[1] == "" || id[2] == "" || container == "" {
		return nil, false
	}
	n, rest, ok := strings.Cut(file, ".log")
	if !ok || (rest != "" && rest[0] != '.') {
		return nil, false
	}
	restarts, err := strconv.ParseInt(n, 10, 64)
	if err != nil || restarts < 0 {
		return nil, false
	}
	return []pipeline.Field{
		{Key: "pod_namespace", Value: id[0]},
		{Key: "pod_name", Value: id[1]},
		{Key: "pod_uid", Value: id[2]},
		{Key: "container_name", Value: container},
		{Key: "restart_count", Value: restarts},
	}, true
}

// containersPath reads .../containers/<pod>_<ns>_<container>-<id>.log.
func containersPath(path string) ([]pipeline.Field, bool) {
	path = filepath.ToSlash(path)
	parts := strings.Split(path, "/")
	if len(parts) < 2 || parts[len(parts)-2] != "containers" {
		return nil, false
	}
	name, ok := strings.CutSuffix(parts[len(parts)-1], ".log")
	if !ok {
		return nil, false
	}
	id := strings.SplitN(name, "_", 3)
	if len(id) != 3 || id[0] == "" || id[1] == "" {
		return nil, false
	}
	i := strings.LastIndexByte(id[2], '-')
	if i <= 0 || i == len(id[2])-1 {
		return nil, false
	}
	return []pipeline.Field{
		{Key: "pod_namespace", Value: id[1]},
		{Key: "pod_name", Value: id[0]},
		{Key: "container_name", Value: id[2][:i]},
		{Key: "container_id", Value: id[2][i+1:]},
	}, true
}

// merge adds to a the fields of b it lacks.
func merge(a, b []pipeline.Field) []pipeline.Field {
	out := append([]pipeline.Field(nil), a...)
	for _, f := range b {
		have := false
		for _, g := range a {
			have = have || g.Key == f.Key
		}
		if !have {
			out = append(out, f)
		}
	}
	return out
}
