// Command bench measures tailship end to end on this machine: it writes
// sequence-numbered log files, starts local sinks, runs the real binary
// shipping the files from their beginning, and reports wall time, MB/s,
// lines/s, the agent's CPU seconds per GB, its peak RSS, and what was lost
// or duplicated at the far end. In the same run it measures the machine's
// ceiling, a plain copy of the file to the same sink with 1 MiB writes, and
// prints tailship's throughput as a share of it, so numbers from a noisy
// shared machine still compare.
//
//	go run ./tests/bench                       # every scenario, 2,000,000 lines
//	go run ./tests/bench -lines 6000000 -scenarios raw-tcp,json-http -workers 1,2
//
// The agent runs with default settings except: batch.timeout = "100ms"
// (the last, partial batch of a backlog otherwise waits the default 1s,
// which would dominate the wall time of a run that takes a second or two),
// checkpoint_interval = "100ms" (zstd-file is done when the checkpoint
// reaches the end), log_level = "warn", api.listen = "" and the -workers
// value under test. Memory settings are the defaults (memory_limit 8 MiB).
//
// -runs N repeats every scenario N times and prints the median of each
// column after the runs. The agent's resident size is sampled every 100 ms
// besides the peak (VmHWM): the note gives its mean over the first and the
// last quarter of the run, which shows whether memory stays flat.
//
// The agent binary is built from this checkout unless -binary is given.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
)

type options struct {
	lines     int
	workers   []int
	scenarios []string
	binary    string
	keep      bool
	runs      int
	memory    string // agent.memory_limit, "" for the default
}

func main() {
	var o options
	var workers, scenarios string
	flag.IntVar(&o.lines, "lines", 2000000, "lines per scenario (about 160 bytes each)")
	flag.StringVar(&workers, "workers", "2", "comma-separated agent.workers values to run each scenario with")
	flag.StringVar(&scenarios, "scenarios", "raw-tcp,json-http,zstd-file,many-files,slow-sink", "comma-separated scenarios")
	flag.StringVar(&o.binary, "binary", "", "tailship binary (default: build ./cmd/tailship)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.memory, "memory-limit", "", `agent.memory_limit for every run, e.g. "64MiB" (default: the agent's default)`)
	flag.IntVar(&o.runs, "runs", 1, "runs of each scenario; with more than one, a median row follows")
	flag.Parse()
	for _, w := range strings.Split(workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil {
			fatal("bad -workers: %v", err)
		}
		o.workers = append(o.workers, n)
	}
	o.scenarios = strings.Split(scenarios, ",")
	dir, err := os.MkdirTemp("", "tailship-bench-")
	if err != nil {
		fatal("%v", err)
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	if o.binary == "" {
		o.binary = filepath.Join(dir, "tailship")
		build := exec.Command("go", "build", "-o", o.binary, "./cmd/tailship")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatal("build: %v", err)
		}
	}
	fmt.Printf("tailship load benchmark: %d lines per scenario, work dir %s\n\n", o.lines, dir)
	fmt.Printf("%-15s %-7s %8s %9s %10s %9s %9s %8s %6s %9s\n",
		"scenario", "workers", "wall s", "MB/s", "lines/s", "CPU s/GB", "RSS MiB", "lost", "dup", "ceiling")
	failed := false
	for _, sc := range o.scenarios {
		run, ok := scenarioByName[sc]
		if !ok {
			fatal("unknown scenario %q", sc)
		}
		for _, w := range o.workers {
			var rs []result
			for i := range o.runs {
				wd := filepath.Join(dir, fmt.Sprintf("%s-w%d-%d", sc, w, i))
				r, err := run(o, wd, w)
				os.RemoveAll(filepath.Join(wd, "logs")) // the next run writes its own
				if err != nil {
					fmt.Printf("%-15s %-7d error: %v\n", sc, w, err)
					failed = true
					continue
				}
				r.print(sc, w)
				if r.lost != 0 || r.dup != 0 {
					failed = true
				}
				rs = append(rs, r)
			}
			if len(rs) > 1 {
				median(rs).print(sc+" med", w)
			}
		}
	}
	if failed {
		os.Exit(1)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(2)
}

// result is one measured run.
type result struct {
	wall       time.Duration
	bytes      int64
	lines      int
	cpu        time.Duration // agent user+system
	rss        int64         // agent peak
	lost, dup  int
	ceilingMBs float64 // 0 when the scenario has no ceiling
	note       string
}

func (r result) print(sc string, workers int) {
	mbs := float64(r.bytes) / 1e6 / r.wall.Seconds()
	cpuPerGB := r.cpu.Seconds() / (float64(r.bytes) / 1e9)
	ceiling := "-"
	if r.ceilingMBs > 0 {
		ceiling = fmt.Sprintf("%.0f%% of %.0f", 100*mbs/r.ceilingMBs, r.ceilingMBs)
	}
	fmt.Printf("%-15s %-7d %8.2f %9.1f %10.0f %9.2f %9.1f %8d %6d %9s %s\n",
		sc, workers, r.wall.Seconds(), mbs, float64(r.lines)/r.wall.Seconds(), cpuPerGB,
		float64(r.rss)/(1<<20), r.lost, r.dup, ceiling, r.note)
}

// median is the per-column median of rs (MB/s and lines/s follow from the
// median wall time, as all runs move the same bytes).
func median(rs []result) result {
	mid := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	m := rs[0]
	m.wall = time.Duration(mid(func(r result) float64 { return float64(r.wall) }))
	m.cpu = time.Duration(mid(func(r result) float64 { return float64(r.cpu) }))
	m.rss = int64(mid(func(r result) float64 { return float64(r.rss) }))
	m.ceilingMBs = mid(func(r result) float64 { return r.ceilingMBs })
	for _, r := range rs[1:] {
		m.lost, m.dup = max(m.lost, r.lost), max(m.dup, r.dup)
	}
	m.note = fmt.Sprintf("(median of %d; lost/dup: the worst run)", len(rs))
	return m
}

var scenarioByName = map[string]func(options, string, int) (result, error){
	"raw-tcp":    rawTCP,
	"json-http":  jsonHTTP,
	"zstd-file":  zstdFile,
	"many-files": manyFiles,
	"slow-sink":  slowSink,
}

// ---------------------------------------------------------------- data

// line appends line seq of the mixed kind (access log, JSON, logfmt in turn;
// about 160 bytes) or, with jsonOnly, always the JSON kind. Every kind
// carries "seq=<9 digits>" so the sinks can check each line.
func line(b []byte, seq int, jsonOnly bool) []byte {
	kind := seq % 3
	if jsonOnly {
		kind = 1
	}
	s := fmt.Sprintf("%09d", seq)
	switch kind {
	case 0:
		b = append(b, `10.0.`...)
		b = strconv.AppendInt(b, int64(seq%250), 10)
		b = append(b, `.7 - - [22/Nov/2026:10:00:00 +0000] "GET /api/v1/items/`...)
		b = strconv.AppendInt(b, int64(seq%100000), 10)
		b = append(b, `?seq=`...)
		b = append(b, s...)
		b = append(b, ` HTTP/1.1" 200 5123 "-" "Mozilla/5.0 (X11; Linux x86_64)"`...)
	case 1:
		b = append(b, `{"time":"2026-11-22T10:00:00.123Z","level":"info","msg":"request done seq=`...)
		b = append(b, s...)
		b = append(b, `","method":"GET","path":"/api/v1/items","status":200,"dur_ms":12.5,"user":"alice"}`...)
	default:
		b = append(b, `time=2026-11-22T10:00:00.123Z level=info msg="request done" seq=`...)
		b = append(b, s...)
		b = append(b, ` method=GET path=/api/v1/items status=200 dur_ms=12.5 user=alice`...)
	}
	return append(b, '\n')
}

// writeLines writes lines [from, to) to path and returns the bytes written.
func writeLines(path string, from, to int, jsonOnly bool) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var n int64
	var b []byte
	for i := from; i < to; i++ {
		b = line(b[:0], i, jsonOnly)
		w.Write(b)
		n += int64(len(b))
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	return n, f.Close()
}

// ---------------------------------------------------------------- sinks

// tally counts sequence numbers seen at a sink.
type tally struct {
	mu    sync.Mutex
	seen  []bool
	count int
	dup   int
	bad   int
	bytes atomic.Int64
	full  chan struct{} // closed when every line has arrived
	once  sync.Once
}

func newTally(n int) *tally { return &tally{seen: make([]bool, n), full: make(chan struct{})} }

var marker = []byte("seq=")

// add checks every line in b (complete lines only).
func (t *tally) add(b []byte) {
	t.bytes.Add(int64(len(b)))
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var l []byte
		if i < 0 {
			l, b = b, nil
		} else {
			l, b = b[:i], b[i+1:]
		}
		if len(l) == 0 {
			continue
		}
		j := bytes.Index(l, marker)
		if j < 0 || j+4+9 > len(l) {
			t.bad++
			continue
		}
		seq := 0
		for _, c := range l[j+4 : j+13] {
			seq = seq*10 + int(c-'0')
		}
		if seq < 0 || seq >= len(t.seen) {
			t.bad++
			continue
		}
		if t.seen[seq] {
			t.dup++
			continue
		}
		t.seen[seq] = true
		t.count++
	}
	if t.count == len(t.seen) {
		t.once.Do(func() { close(t.full) })
	}
}

func (t *tally) lostDup() (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen) - t.count, t.dup + t.bad
}

// tcpSink accepts newline-delimited connections; rate > 0 limits how fast
// it reads (bytes per second), a slow receiver.
func tcpSink(t *tally, rate int) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				readLines(c, t, rate)
			}()
		}
	}()
	return ln.Addr().String(), func() { ln.Close(); wg.Wait() }, nil
}

func readLines(r io.Reader, t *tally, rate int) {
	buf := make([]byte, 1<<20)
	carry := 0
	start := time.Now()
	var total int64
	for {
		want := len(buf)
		if rate > 0 {
			want = min(want, 64<<10)
		}
		n, err := r.Read(buf[carry:want])
		if n > 0 {
			data := buf[:carry+n]
			last := bytes.LastIndexByte(data, '\n')
			if last >= 0 {
				t.add(data[:last+1])
				carry = copy(buf, data[last+1:])
			} else {
				carry = len(data)
			}
			total += int64(n)
			if rate > 0 {
				if ahead := time.Duration(float64(total)/float64(rate)*float64(time.Second)) - time.Since(start); ahead > 0 {
					time.Sleep(ahead)
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// httpSink takes POSTed ndjson bodies, gzip or zstd encoded or plain.
func httpSink(t *tally) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		switch r.Header.Get("Content-Encoding") {
		case "gzip":
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		case "zstd":
			zr, err := zstd.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			defer zr.Close()
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		t.add(b)
		w.WriteHeader(http.StatusOK)
	})}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/ingest", func() { srv.Close() }, nil
}

// ---------------------------------------------------------------- agent

type agent struct {
	cmd *exec.Cmd
	log bytes.Buffer

	mu      sync.Mutex
	samples []int64 // VmRSS every 100 ms
	done    chan struct{}
}

// sample records the agent's resident size until stop.
func (a *agent) sample() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
		}
		if v := procStatus(a.cmd.Process.Pid, "VmRSS:"); v > 0 {
			a.mu.Lock()
			a.samples = append(a.samples, v)
			a.mu.Unlock()
		}
	}
}

// rssTrend is the mean resident size over the first and the last quarter of
// the samples, in MiB, or "" for a run too short to tell.
func (a *agent) rssTrend() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.samples) / 4
	if n < 2 {
		return ""
	}
	mean := func(v []int64) float64 {
		var s int64
		for _, x := range v {
			s += x
		}
		return float64(s) / float64(len(v)) / (1 << 20)
	}
	return fmt.Sprintf("RSS %.1f -> %.1f MiB (first -> last quarter)", mean(a.samples[:n]), mean(a.samples[len(a.samples)-n:]))
}

// selfCPU is this process's CPU time so far: during a run, the sink's
// work (reading, decompressing, decoding, counting), which shares the
// machine's cores with the agent.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus reads one size line of /proc/<pid>/status in bytes.
func procStatus(pid int, key string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, key) {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startAgent(o options, dir, config string) (*agent, error) {
	if o.memory != "" {
		config = strings.Replace(config, "[agent]\n", fmt.Sprintf("[agent]\nmemory_limit = %q\n", o.memory), 1)
	}
	path := filepath.Join(dir, "tailship.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		return nil, err
	}
	a := &agent{cmd: exec.Command(o.binary, "run", "--config", path), done: make(chan struct{})}
	a.cmd.Dir = dir
	a.cmd.Stdout, a.cmd.Stderr = &a.log, &a.log
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go a.sample()
	return a, nil
}

// usage reads the agent's CPU time and peak RSS from /proc while it runs.
func (a *agent) usage() (cpu time.Duration, rss int64) {
	pid := a.cmd.Process.Pid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// Fields after the command name (which may hold spaces): utime
		// and stime are the 12th and 13th of them, in clock ticks.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			cpu = time.Duration(ut+st) * (time.Second / 100) // USER_HZ is 100 on Linux
		}
	}
	return cpu, procStatus(pid, "VmHWM:")
}

func (a *agent) stop() error {
	close(a.done)
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- a.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("agent: %v; log:\n%s", err, a.log.String())
		}
		return nil
	case <-time.After(60 * time.Second):
		a.cmd.Process.Kill()
		<-done
		return errors.New("agent did not stop")
	}
}

const agentHeader = `
[agent]
data_dir = "%[1]s/data"
workers = %[2]d
log_format = "console"
log_level = "warn"
checkpoint_interval = "100ms"

[api]
listen = ""

[inputs.bench]
type = "file"
include = ["%[1]s/logs/*.log"]
`

// waitFull waits for the sink to hold every line, the agent to fail, or a
// deadline (a broken agent must not hang the benchmark).
func waitFull(a *agent, t *tally, limit time.Duration) error {
	exited := make(chan struct{})
	go func() {
		for a.cmd.ProcessState == nil {
			if err := a.cmd.Process.Signal(syscall.Signal(0)); err != nil {
				close(exited)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case <-t.full:
		return nil
	case <-exited:
		return fmt.Errorf("agent exited; log:\n%s", a.log.String())
	case <-time.After(limit):
		lost, _ := t.lostDup()
		return fmt.Errorf("timed out with %d lines missing; log:\n%s", lost, a.log.String())
	}
}

// shipToSink runs the agent on the files already in dir/logs until t is full.
func shipToSink(o options, dir, config string, t *tally, total int64) (result, error) {
	a, err := startAgent(o, dir, config)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	sink0 := selfCPU()
	if err := waitFull(a, t, 10*time.Minute); err != nil {
		a.stop()
		return result{}, err
	}
	wall := time.Since(start)
	sinkCPU := selfCPU() - sink0
	cpu, rss := a.usage()
	if err := a.stop(); err != nil {
		return result{}, err
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would be counted now
	lost, dup := t.lostDup()
	note := fmt.Sprintf("sink %.2f CPU s/GB", sinkCPU.Seconds()/(float64(total)/1e9))
	if tr := a.rssTrend(); tr != "" {
		note += "; " + tr
	}
	return result{wall: wall, bytes: total, lines: len(t.seen), cpu: cpu, rss: rss, lost: lost, dup: dup, note: note}, nil
}

// ceilingTCP copies the file to a fresh TCP sink with 1 MiB writes: what
// this machine moves with no agent work at all.
func ceilingTCP(path string, lines int) (float64, error) {
	t := newTally(lines)
	addr, stop, err := tcpSink(t, 0)
	if err != nil {
		return 0, err
	}
	defer stop()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		if k > 0 {
			if _, err := c.Write(buf[:k]); err != nil {
				return 0, err
			}
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	c.Close()
	select {
	case <-t.full:
	case <-time.After(5 * time.Minute):
		return 0, errors.New("ceiling copy timed out")
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// ---------------------------------------------------------------- scenarios

func rawTCP(o options, dir string, workers int) (result, error) {
	path := filepath.Join(dir, "logs", "app.log")
	total, err := writeLines(path, 0, o.lines, false)
	if err != nil {
		return result{}, err
	}
	ceiling, err := ceilingTCP(path, o.lines)
	if err != nil {
		return result{}, err
	}
	t := newTally(o.lines)
	addr, stop, err := tcpSink(t, 0)
	if err != nil {
		return result{}, err
	}
	defer stop()
	cfg := fmt.Sprintf(agentHeader, dir, workers) + fmt.Sprintf(`
[outputs.sink]
type = "tcp"
inputs = ["bench"]
address = %q
batch = { timeout = "100ms" }
`, addr)
	r, err := shipToSink(o, dir, cfg, t, total)
	r.ceilingMBs = ceiling
	return r, err
}

func jsonHTTP(o options, dir string, workers int) (result, error) {
	path := filepath.Join(dir, "logs", "app.log")
	total, err := writeLines(path, 0, o.lines, true)
	if err != nil {
		return result{}, err
	}
	t := newTally(o.lines)
	url, stop, err := httpSink(t)
	if err != nil {
		return result{}, err
	}
	defer stop()
	cfg := fmt.Sprintf(agentHeader, dir, workers) + jsonParser + fmt.Sprintf(`
[outputs.sink]
type = "http"
inputs = ["bench"]
url = %q
format = "ndjson"
compression = "gzip"
batch = { timeout = "100ms" }
`, url)
	r, err := shipToSink(o, dir, cfg, t, total)
	r.note = jsonNote + " " + r.note
	return r, err
}

func manyFiles(o options, dir string, workers int) (result, error) {
	const files = 1000
	per := o.lines / files
	var total int64
	for i := range files {
		n, err := writeLines(filepath.Join(dir, "logs", fmt.Sprintf("f%04d.log", i)), i*per, (i+1)*per, false)
		if err != nil {
			return result{}, err
		}
		total += n
	}
	t := newTally(per * files)
	addr, stop, err := tcpSink(t, 0)
	if err != nil {
		return result{}, err
	}
	defer stop()
	cfg := fmt.Sprintf(agentHeader, dir, workers) + fmt.Sprintf(`
[outputs.sink]
type = "tcp"
inputs = ["bench"]
address = %q
batch = { timeout = "100ms" }
`, addr)
	return shipToSink(o, dir, cfg, t, total)
}

// slowSink reads at 20 MB/s: the agent must hold memory flat while the
// backlog waits on disk.
func slowSink(o options, dir string, workers int) (result, error) {
	path := filepath.Join(dir, "logs", "app.log")
	total, err := writeLines(path, 0, o.lines, false)
	if err != nil {
		return result{}, err
	}
	t := newTally(o.lines)
	addr, stop, err := tcpSink(t, 20e6)
	if err != nil {
		return result{}, err
	}
	defer stop()
	cfg := fmt.Sprintf(agentHeader, dir, workers) + fmt.Sprintf(`
[outputs.sink]
type = "tcp"
inputs = ["bench"]
address = %q
batch = { timeout = "100ms" }
`, addr)
	r, err := shipToSink(o, dir, cfg, t, total)
	r.note = "(sink reads 20 MB/s; " + r.note + ")"
	return r, err
}

// zstdFile ships to a zstd-compressed file output; done when the agent's
// checkpoint reaches the end of the input, then the output is checked.
func zstdFile(o options, dir string, workers int) (result, error) {
	path := filepath.Join(dir, "logs", "app.log")
	total, err := writeLines(path, 0, o.lines, false)
	if err != nil {
		return result{}, err
	}
	cfg := fmt.Sprintf(agentHeader, dir, workers) + fmt.Sprintf(`
[outputs.sink]
type = "file"
inputs = ["bench"]
path = "%s/out/out.log.zst"
compression = "zstd"
batch = { timeout = "100ms" }
`, dir)
	a, err := startAgent(o, dir, cfg)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	deadline := start.Add(10 * time.Minute)
	for !checkpointAt(filepath.Join(dir, "data", "checkpoints.json"), total) {
		if time.Now().After(deadline) {
			a.stop()
			return result{}, errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(start)
	cpu, rss := a.usage()
	if err := a.stop(); err != nil {
		return result{}, err
	}
	t := newTally(o.lines)
	raw, err := os.ReadFile(filepath.Join(dir, "out", "out.log.zst"))
	if err != nil {
		return result{}, err
	}
	d, _ := zstd.NewReader(nil)
	plain, err := d.DecodeAll(raw, nil)
	d.Close()
	if err != nil {
		return result{}, err
	}
	t.add(plain)
	lost, dup := t.lostDup()
	return result{wall: wall, bytes: total, lines: o.lines, cpu: cpu, rss: rss, lost: lost, dup: dup,
		note: fmt.Sprintf("(%.1fx smaller; done = checkpoint at end, flushed every 1s)", float64(total)/float64(len(raw)))}, nil
}

// checkpointAt reports whether the checkpoint file records offset end.
func checkpointAt(path string, end int64) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte(fmt.Sprintf(`"offset": %d,`, end)))
}

// jsonParser is added to the input of the json-http scenario.
const (
	jsonParser = "parser = \"json\"\n"
	jsonNote   = "(parser = json)"
)
