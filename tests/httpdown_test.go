package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lineSink is an HTTP receiver of raw newline-delimited bodies that keeps
// every line in the order accepted, after an optional delay per request
// (a receiver slower than the agent).
type lineSink struct {
	delay time.Duration
	mu    sync.Mutex
	lines []string
}

func (s *lineSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(s.delay)
	var got []string
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	if err := sc.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.lines = append(s.lines, got...)
	s.mu.Unlock()
}

func (s *lineSink) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

var plain struct {
	once sync.Once
	path string
	err  error
}

// plainBinary builds tailship without the race detector, for tests that
// measure the agent's memory: the detector's shadow memory grows with every
// page the heap touches, so a race build's resident size says little.
func plainBinary(t *testing.T) string {
	t.Helper()
	plain.once.Do(func() {
		plain.path = binary + "-plain"
		out, err := exec.Command("go", "build", "-o", plain.path, "../cmd/tailship").CombinedOutput()
		if err != nil {
			plain.err = fmt.Errorf("build tailship without -race: %v\n%s", err, out)
		}
	})
	if plain.err != nil {
		t.Fatal(plain.err)
	}
	return plain.path
}

// startPlainAgent is startAgent with the binary plainBinary builds.
func startPlainAgent(t *testing.T, configPath string) *agentProc {
	t.Helper()
	return startBinary(t, plainBinary(t), configPath)
}

// committedOffsets reads the agent's checkpoint file: last path -> offset.
func committedOffsets(t *testing.T, dataDir string) map[string]int64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dataDir, "checkpoints.json"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Entries map[string]struct {
			Offset int64  `json:"offset"`
			Path   string `json:"path"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("checkpoints.json: %v", err)
	}
	out := map[string]int64{}
	for _, e := range f.Entries {
		out[e.Path] = e.Offset
	}
	return out
}

// deliveredPrefix is the byte length of the longest prefix of file's lines
// (seq 0, 1, ...) that the receiver holds, whatever the order it got them in.
func deliveredPrefix(lines []string, file string) int64 {
	seen := map[string]bool{}
	for _, l := range lines {
		seen[l] = true
	}
	var n int64
	for seq := 0; ; seq++ {
		l := seqLine(file, seq)
		if !seen[strings.TrimSuffix(l, "\n")] {
			return n
		}
		n += int64(len(l))
	}
}

const httpDownConfig = `
[agent]
data_dir = "%[1]s/data"
log_format = "console"
shutdown_timeout = "30s"
checkpoint_interval = "50ms"

[api]
listen = "APIADDR"

[inputs.logs]
type = "file"
include = ["%[1]s/logs/*.log"]
scan_interval = "200ms"
poll_interval = "20ms"

[outputs.web]
type = "http"
inputs = ["logs"]
url = "http://HTTPADDR/ingest"
format = "raw"
compression = "none"
batch = { max_events = 2000, timeout = "100ms" }
retry = { initial = "20ms", max = "200ms" }
`

// TestHTTPReceiverDownSlowAndSIGKILL ships a 100 MB backlog to an HTTP
// receiver that is down for the first 5 s (the checkpoint must stay at 0
// and the agent must not buffer the backlog in memory), then up but slow
// (backpressure); the agent is SIGKILLed midway (the checkpoint must not
// be past what the receiver holds), restarted, and every line must arrive
// at least once, in order apart from the redelivery after the kill.
func TestHTTPReceiverDownSlowAndSIGKILL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused until the receiver starts

	dir := t.TempDir()
	apiAddr := freePort(t)
	cfg := writeConfig(t, dir, strings.NewReplacer("HTTPADDR", addr, "APIADDR", apiAddr).Replace(httpDownConfig))
	const total = 2_000_000 // 54 bytes a line: 108 MB
	logPath := filepath.Join(dir, "logs", "d.log")
	fileSize := int64(total * len(seqLine("d", 0)))

	// The agent's resident size before the backlog is its baseline.
	a := startPlainAgent(t, cfg)
	time.Sleep(time.Second)
	baseline := peakRSS(a.cmd.Process.Pid)
	appendSeq(t, logPath, "d", 0, total)
	downUntil := time.Now().Add(5 * time.Second)
	for time.Now().Before(downUntil) {
		if off := committedOffsets(t, filepath.Join(dir, "data"))[logPath]; off != 0 {
			t.Fatalf("checkpoint at %d while the receiver is down", off)
		}
		if a.cmd.ProcessState != nil {
			t.Fatalf("agent exited; log:\n%s", a.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	peakDown := peakRSS(a.cmd.Process.Pid)
	if baseline == 0 || peakDown-baseline > 32<<20 {
		t.Fatalf("peak RSS grew from %d to %d MiB with the receiver down and a %d MiB backlog: memory not bounded (or not measured)", baseline>>20, peakDown>>20, fileSize>>20)
	}
	// The tailer is the one that waits: it spent most of the outage
	// paused by backpressure, and the output's queue is within its bounds.
	st := getDownStatus(t, apiAddr)
	if len(st.Inputs) != 1 || st.Inputs[0].BackpressureSeconds < 2 {
		t.Fatalf("the tailer was not held back while the receiver was down: %+v", st.Inputs)
	}
	if len(st.Outputs) != 1 || st.Outputs[0].QueueEvents > st.Outputs[0].QueueMaxEvents || int64(st.Outputs[0].QueueBytes) > st.Outputs[0].QueueMaxBytes {
		t.Fatalf("output queue past its bounds: %+v", st.Outputs)
	}

	sink := &lineSink{delay: 5 * time.Millisecond}
	srv := httptest.NewUnstartedServer(sink)
	for i := 0; ; i++ {
		if srv.Listener, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i > 200 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Start()
	defer srv.Close()

	// Kill once about a third has arrived.
	deadline := time.Now().Add(120 * time.Second)
	for len(sink.snapshot()) < total/3 {
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d lines after 120 s; log:\n%s", len(sink.snapshot()), a.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.stop(syscall.SIGKILL)
	atKill := sink.snapshot()
	committed := committedOffsets(t, filepath.Join(dir, "data"))[logPath]
	delivered := deliveredPrefix(atKill, "d")
	if committed > delivered {
		t.Fatalf("checkpoint %d is past the %d bytes the receiver holds", committed, delivered)
	}
	if committed == 0 {
		t.Fatalf("nothing committed after %d lines were delivered", len(atKill))
	}

	a = startAgent(t, cfg)
	deadline = time.Now().Add(180 * time.Second)
	for deliveredPrefix(sink.snapshot(), "d") < fileSize {
		if time.Now().After(deadline) {
			t.Fatalf("receiver has %d lines after restart; log:\n%s", len(sink.snapshot()), a.log)
		}
		if a.cmd.ProcessState != nil {
			t.Fatalf("agent exited; log:\n%s", a.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	if code := a.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit code %d; log:\n%s", code, a.log)
	}
	lines := sink.snapshot()
	lost, dup, err := tally(lines, map[string]int{"d": total}, restartsOK)
	if err != nil || lost != 0 {
		t.Fatalf("lost %d, duplicated %d, err %v", lost, dup, err)
	}
	if final := committedOffsets(t, filepath.Join(dir, "data"))[logPath]; final != fileSize {
		t.Fatalf("final checkpoint %d, file is %d bytes", final, fileSize)
	}
	t.Logf("%s", fmt.Sprintf("down 5 s with peak RSS %d MiB from %d before the backlog (backlog %d MiB); killed at %d lines delivered, checkpoint %d of %d delivered bytes; after restart: lost %d, duplicated %d (in flight at the kill)",
		peakDown>>20, baseline>>20, fileSize>>20, len(atKill), committed, delivered, lost, dup))
}

// downStatus is the part of /status the receiver-down test reads.
type downStatus struct {
	Inputs []struct {
		BackpressureSeconds float64 `json:"backpressure_seconds"`
	} `json:"inputs"`
	Outputs []struct {
		QueueEvents    int   `json:"queue_events"`
		QueueBytes     int   `json:"queue_bytes"`
		QueueMaxEvents int   `json:"queue_max_events"`
		QueueMaxBytes  int64 `json:"queue_max_bytes"`
	} `json:"outputs"`
}

func getDownStatus(t *testing.T, apiAddr string) downStatus {
	t.Helper()
	var st downStatus
	resp, err := http.Get("http://" + apiAddr + "/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}
