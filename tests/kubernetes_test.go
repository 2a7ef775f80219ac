package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const kubeConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.pods]
type = "file"
include = ["%[1]s/var/log/pods/**/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"
parser = "cri"
kubernetes = true
multiline = { preset = "java", timeout = "300ms" }

[outputs.json]
type = "file"
inputs = ["pods"]
path = "%[1]s/out/pods.ndjson"
format = "json"
compression = "none"
batch = { max_events = 500, timeout = "50ms" }
`

// kubePod is one container's log file under the fake /var/log/pods.
type kubePod struct {
	ns, pod, uid, container string
	restart                 int
}

func (p kubePod) path(root string) string {
	return filepath.Join(root, "var/log/pods", p.ns+"_"+p.pod+"_"+p.uid, p.container, fmt.Sprintf("%d.log", p.restart))
}

const criTime = "2024-05-01T12:00:00.000000001Z"

// kubeRecord returns record seq of file tag: the CRI lines the runtime
// writes for it, its stream, and the message tailship must ship. Every
// third record is a Java trace on stderr (Caused by, ... N more), one
// frame of every ninth split by the runtime into P pieces; the others are
// single stdout lines and stderr warnings.
func kubeRecord(tag string, seq int) (lines []string, stream, message string) {
	cri := func(stream, tagP, msg string) string { return criTime + " " + stream + " " + tagP + " " + msg }
	switch seq % 3 {
	case 0:
		msgs := []string{
			fmt.Sprintf("2024-05-01 12:00:00.000 ERROR [main] %s %09d request failed", tag, seq),
			fmt.Sprintf("java.lang.IllegalStateException: boom %d", seq),
			fmt.Sprintf("\tat com.example.Service%d.handle(Service.java:%d)", seq, seq%100),
			"\tat com.example.Server.run(Server.java:42)",
			"Caused by: java.io.IOException: connection reset",
			"\tat java.base/sun.nio.ch.SocketDispatcher.read0(Native Method)",
			"\t... 4 more",
		}
		for i, m := range msgs {
			if i == 3 && seq%9 == 0 {
				// A frame longer than the runtime's line limit: P pieces.
				long := "\tat com.example.Generated" + strings.Repeat("Proxy", 40) + fmt.Sprintf(".invoke%d(Unknown Source)", seq)
				msgs[i] = long
				lines = append(lines, cri("stderr", "P", long[:60]), cri("stderr", "P", long[60:130]), cri("stderr", "F", long[130:]))
				continue
			}
			lines = append(lines, cri("stderr", "F", m))
		}
		return lines, "stderr", strings.Join(msgs, "\n")
	case 1:
		m := fmt.Sprintf("%s %09d GET /api/items 200", tag, seq)
		return []string{cri("stdout", "F", m)}, "stdout", m
	default:
		m := fmt.Sprintf("2024-05-01 12:00:00.000 WARN [pool-1] %s %09d slow query", tag, seq)
		return []string{cri("stderr", "F", m)}, "stderr", m
	}
}

func writeKubeRecords(t *testing.T, path, tag string, from, to int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for seq := from; seq < to; seq++ {
		lines, _, _ := kubeRecord(tag, seq)
		for _, l := range lines {
			w.WriteString(l + "\n")
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestKubernetesCRIMultiline: CRI logs of two containers under a fake
// /var/log/pods, parsed as cri with kubernetes = true and the java
// multiline preset, written before the start, while running and while
// stopped, reach a json file output with every record exactly once and
// in order per stream: Java traces whole (their P-split frames
// reassembled first), single lines alone, and on every event the pod
// metadata read from the path.
func TestKubernetesCRIMultiline(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, kubeConfig)
	pods := map[string]kubePod{
		"web": {ns: "shop", pod: "web-7d4b9c-x2x9z", uid: "3c1b2a9e-5f6d-4e7a-8b9c-0d1e2f3a4b5c", container: "app", restart: 0},
		"job": {ns: "batch", pod: "report-28519200-q8x7k", uid: "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", container: "worker", restart: 2},
	}
	write := func(from, to int) {
		for tag, p := range pods {
			writeKubeRecords(t, p.path(dir), tag, from, to)
		}
	}
	out := filepath.Join(dir, "out", "pods.ndjson*")

	write(0, 1500)
	a := startAgent(t, cfg)
	waitOutput(t, a, out, "none", 2*1000)
	write(1500, 2400) // while running
	waitOutput(t, a, out, "none", 2*2400)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, a.log)
	}
	write(2400, 3000) // while stopped
	a = startAgent(t, cfg)
	waitOutput(t, a, out, "none", 2*3000)
	time.Sleep(700 * time.Millisecond) // a duplicate would show up now
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}

	lines, err := readOutput(out, "none")
	if err != nil {
		t.Fatal(err)
	}
	type key struct{ tag, stream string }
	last := map[key]int{}
	seen := map[string][]int{"web": make([]int, 3000), "job": make([]int, 3000)}
	for i, l := range lines {
		var ev struct {
			Message    string `json:"message"`
			Stream     string `json:"stream"`
			Time       string `json:"time"`
			Kubernetes struct {
				Namespace string `json:"pod_namespace"`
				Pod       string `json:"pod_name"`
				UID       string `json:"pod_uid"`
				Container string `json:"container_name"`
				Restart   *int   `json:"restart_count"`
			} `json:"kubernetes"`
			Partial *bool `json:"partial"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("line %d is not JSON (%v): %s", i, err, l)
		}
		var tag string
		seq := -1
		f := strings.Fields(strings.SplitN(ev.Message, "\n", 2)[0])
		if len(f) > 5 && strings.HasPrefix(f[0], "2024-") {
			f = f[4:] // date time level [thread] tag seq ...
		}
		if len(f) >= 2 {
			tag = f[0]
			if n, err := strconv.Atoi(f[1]); err == nil {
				seq = n
			}
		}
		p, ok := pods[tag]
		if !ok || seq < 0 || seq >= 3000 {
			t.Fatalf("line %d: unexpected record %q", i, l)
		}
		if _, stream, msg := kubeRecord(tag, seq); ev.Message != msg || ev.Stream != stream {
			t.Fatalf("line %d: record %s %d is not whole:\ngot  %q (%s)\nwant %q (%s)", i, tag, seq, ev.Message, ev.Stream, msg, stream)
		}
		k := ev.Kubernetes
		if k.Namespace != p.ns || k.Pod != p.pod || k.UID != p.uid || k.Container != p.container || k.Restart == nil || *k.Restart != p.restart {
			t.Fatalf("line %d: kubernetes fields %+v, want %+v: %s", i, k, p, l)
		}
		if ev.Time != criTime || ev.Partial != nil {
			t.Fatalf("line %d: time %q partial %v", i, ev.Time, ev.Partial)
		}
		kk := key{tag, ev.Stream}
		if prev, ok := last[kk]; ok && seq <= prev {
			t.Fatalf("line %d: %s %s record %d after %d: order broken", i, tag, ev.Stream, seq, prev)
		}
		last[kk] = seq
		seen[tag][seq]++
	}
	for tag, counts := range seen {
		for seq, n := range counts {
			if n != 1 {
				t.Errorf("%s record %d shipped %d times", tag, seq, n)
			}
		}
	}
}
