package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/api"
	_ "github.com/tailship/tailship/inputs/file"
	_ "github.com/tailship/tailship/outputs/file"
	_ "github.com/tailship/tailship/outputs/http"
	_ "github.com/tailship/tailship/parse"
	_ "github.com/tailship/tailship/processors"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stack is a real agent (file input, real outputs) with its API on a free
// loopback port, as `tailship run` wires them.
type stack struct {
	t    *testing.T
	srv  *api.Server
	sup  *agent.Supervisor
	base string
	stop func()
}

func startStack(t *testing.T, cfgPath string) *stack {
	t.Helper()
	cfg, err := agent.LoadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	srv := api.New(cfg.API, log)
	sup, err := agent.NewSupervisor(cfg, log, agent.SupervisorOptions{ObserveLatency: srv.ObserveLatency})
	if err != nil {
		t.Fatal(err)
	}
	srv.Attach(sup)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	s := &stack{t: t, srv: srv, sup: sup, base: "http://" + srv.Addr()}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
			// The test's own keep-alive connections to the API.
			http.DefaultClient.CloseIdleConnections()
			srv.Close(context.Background())
		})
	}
	t.Cleanup(s.stop)
	return s
}

func (s *stack) get(path string) (int, string) {
	s.t.Helper()
	resp, err := http.Get(s.base + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *stack) status() api.StatusDoc {
	s.t.Helper()
	code, body := s.get("/status")
	if code != 200 {
		s.t.Fatalf("/status: %d %s", code, body)
	}
	var doc api.StatusDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		s.t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	return doc
}

func (s *stack) metrics() map[string]*dto.MetricFamily {
	s.t.Helper()
	code, body := s.get("/metrics")
	if code != 200 {
		s.t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		s.t.Fatalf("/metrics does not parse as Prometheus text: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric family %s missing", name)
	}
next:
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s has no series with labels %v", name, want)
	return 0
}

func seqLines(name string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %06d %s\n", name, i, strings.Repeat("x", 30))
	}
	return b.String()
}

// countSeqs checks lines "<name> <seq> ..." of name: every seq in [0, n)
// exactly once and in order.
func countSeqs(t *testing.T, lines []string, name string, n int) {
	t.Helper()
	next := 0
	for _, l := range lines {
		fs := strings.Fields(l)
		if len(fs) < 2 || fs[0] != name {
			continue
		}
		seq, err := strconv.Atoi(fs[1])
		if err != nil {
			t.Fatalf("malformed line %q", l)
		}
		if seq != next {
			t.Fatalf("%s: seq %d where %d was due (lost, duplicated or reordered)", name, seq, next)
		}
		next++
	}
	if next != n {
		t.Fatalf("%s: %d of %d lines arrived", name, next, n)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMetricsAfterShippingKnownFile: a file of known lines and bytes goes
// through a real file input and file output; /metrics then has every
// family of DESIGN.md §7 with the values that file implies (lines, bytes,
// delivered events, lag 0 once caught up), and /status shows the file.
func TestMetricsAfterShippingKnownFile(t *testing.T) {
	dir := t.TempDir()
	const n = 5000
	content := seqLines("m", 0, n)
	logPath := filepath.Join(dir, "app.log")
	writeFile(t, logPath, content)
	out := filepath.Join(dir, "out.log")
	cfgPath := filepath.Join(dir, "t.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`
[agent]
data_dir = %q
memory_limit = "4MiB"
checkpoint_interval = "20ms"
[api]
listen = "127.0.0.1:0"
[inputs.app]
type = "file"
include = [%q]
poll_interval = "20ms"
[outputs.out]
type = "file"
inputs = ["app"]
path = %q
compression = "none"
batch = { max_events = 1000, timeout = "20ms" }
`, filepath.Join(dir, "data"), filepath.Join(dir, "app*.log"), out))
	s := startStack(t, cfgPath)

	waitFor(t, "all lines in the output", func() bool { return len(readLines(t, out)) >= n })
	waitFor(t, "lag 0 and checkpoints current", func() bool {
		st := s.status()
		return len(st.Inputs) == 1 && len(st.Inputs[0].Files) == 1 && st.Inputs[0].Files[0].Lag == 0 && st.CheckpointAge == 0
	})
	countSeqs(t, readLines(t, out), "m", n)

	fams := s.metrics()
	for _, name := range []string{
		"input_lines_total", "input_bytes_total", "files_open", "file_lag_bytes", "events_dropped_total",
		"lines_truncated_total", "queue_events", "queue_bytes", "output_events_total", "output_batches_total",
		"output_retries_total", "output_latency_seconds", "checkpoint_age_seconds", "backpressure_seconds_total",
		"input_lost_bytes_total", "memory_used_bytes", "memory_limit_bytes",
	} {
		if _, ok := fams["tailship_"+name]; !ok && name != "events_dropped_total" && name != "input_lost_bytes_total" {
			t.Errorf("metric tailship_%s missing", name)
		}
	}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tailship_input_lines_total", nil, n},
		{"tailship_input_bytes_total", nil, float64(len(content))},
		{"tailship_files_open", nil, 1},
		{"tailship_file_lag_bytes", map[string]string{"input": "app", "path": logPath}, 0},
		{"tailship_file_rotations_total", map[string]string{"input": "app"}, 0},
		{"tailship_lines_truncated_total", nil, 0},
		{"tailship_queue_events", map[string]string{"output": "out"}, 0},
		{"tailship_queue_bytes", map[string]string{"output": "out"}, 0},
		{"tailship_output_events_total", map[string]string{"output": "out", "status": "delivered"}, n},
		{"tailship_output_events_total", map[string]string{"output": "out", "status": "rejected"}, 0},
		{"tailship_output_events_total", map[string]string{"output": "out", "status": "dropped"}, 0},
		{"tailship_output_batches_total", map[string]string{"output": "out", "status": "failed"}, 0},
		{"tailship_output_retries_total", map[string]string{"output": "out"}, 0},
		{"tailship_checkpoint_age_seconds", nil, 0},
		{"tailship_memory_limit_bytes", nil, 4 << 20},
		{"tailship_ready", nil, 1},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Batches close at 1000 events, so at least n/1000 writes, each timed.
	batches := value(t, fams, "tailship_output_batches_total", map[string]string{"output": "out", "status": "delivered"})
	if batches < n/1000 {
		t.Errorf("delivered batches = %v, want at least %d", batches, n/1000)
	}
	h := fams["tailship_output_latency_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("output_latency_seconds is %v, want a histogram", h.GetType())
	}
	hist := h.Metric[0].Histogram
	if float64(hist.GetSampleCount()) != batches {
		t.Errorf("latency histogram counted %d writes, batches_total says %v", hist.GetSampleCount(), batches)
	}
	if len(hist.Bucket) < 5 || hist.Bucket[len(hist.Bucket)-1].GetCumulativeCount() != hist.GetSampleCount() {
		t.Errorf("latency histogram buckets %v do not cover its %d samples", hist.Bucket, hist.GetSampleCount())
	}
	if bp := value(t, fams, "tailship_backpressure_seconds_total", map[string]string{"input": "app"}); bp < 0 {
		t.Errorf("backpressure_seconds_total = %v", bp)
	}

	st := s.status()
	f := st.Inputs[0].Files[0]
	if f.Path != logPath || f.Size != int64(len(content)) || f.Offset != f.Size {
		t.Errorf("/status file = %+v, want %s at %d of %d", f, logPath, len(content), len(content))
	}
	if o := st.Outputs[0]; o.Name != "out" || o.Delivered != n || o.QueueMaxEvents != 20000 {
		t.Errorf("/status output = %+v", o)
	}
	if code, body := s.get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}

	// Lines appended later show as lag until shipped, then the lag is 0
	// again and the counters moved by exactly what was appended.
	more := seqLines("m", n, n+1000)
	fh, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString(more)
	fh.Close()
	waitFor(t, "appended lines shipped", func() bool { return len(readLines(t, out)) >= n+1000 })
	waitFor(t, "lag 0 after append", func() bool {
		return value(t, s.metrics(), "tailship_file_lag_bytes", map[string]string{"path": logPath}) == 0
	})
	fams = s.metrics()
	if got := value(t, fams, "tailship_input_lines_total", nil); got != n+1000 {
		t.Errorf("input_lines_total = %v after append, want %d", got, n+1000)
	}
	if got := value(t, fams, "tailship_input_bytes_total", nil); got != float64(len(content)+len(more)) {
		t.Errorf("input_bytes_total = %v after append, want %d", got, len(content)+len(more))
	}
	countSeqs(t, readLines(t, out), "m", n+1000)

	// Two rename rotations to names outside the glob: two rotations, and
	// every line of every generation shipped once, in order.
	for g := 1; g <= 2; g++ {
		if err := os.Rename(logPath, filepath.Join(dir, fmt.Sprintf("rotated.%d", g))); err != nil {
			t.Fatal(err)
		}
		writeFile(t, logPath, seqLines("m", n+1000*g, n+1000*(g+1)))
		waitFor(t, "the new generation shipped", func() bool { return len(readLines(t, out)) >= n+1000*(g+1) })
	}
	waitFor(t, "two rotations counted", func() bool {
		return value(t, s.metrics(), "tailship_file_rotations_total", map[string]string{"input": "app"}) >= 2
	})
	if got := value(t, s.metrics(), "tailship_file_rotations_total", map[string]string{"input": "app"}); got != 2 {
		t.Errorf("file_rotations_total = %v after two rename rotations, want 2", got)
	}
	if got := s.status().Inputs[0].Rotations; got != 2 {
		t.Errorf("/status rotations = %d, want 2", got)
	}
	countSeqs(t, readLines(t, out), "m", n+3000)
}

// flakySink is an HTTP receiver that refuses every request with 503 while
// failing is set, and records the lines of the requests it accepts.
type flakySink struct {
	failing atomic.Bool
	mu      sync.Mutex
	lines   []string
}

func (f *flakySink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if f.failing.Load() {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	f.mu.Lock()
	for _, l := range strings.Split(strings.TrimRight(string(body), "\n"), "\n") {
		if l != "" {
			f.lines = append(f.lines, l)
		}
	}
	f.mu.Unlock()
}

func (f *flakySink) snapshot() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// TestReadyzFollowsFailingOutput: an output whose receiver fails turns
// /readyz unready once it has failed for api.unready_after, with the
// output and its error in the answer; when the receiver recovers, the
// queued lines are delivered (each once, in order) and /readyz is ready
// again.
func TestReadyzFollowsFailingOutput(t *testing.T) {
	sink := &flakySink{}
	sink.failing.Store(true)
	hs := httptest.NewServer(sink)
	defer hs.Close()

	dir := t.TempDir()
	const n = 3000
	writeFile(t, filepath.Join(dir, "app.log"), seqLines("r", 0, n))
	cfgPath := filepath.Join(dir, "t.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`
[agent]
data_dir = %q
[api]
listen = "127.0.0.1:0"
unready_after = "300ms"
[inputs.app]
type = "file"
include = [%q]
poll_interval = "20ms"
[outputs.sink]
type = "http"
inputs = ["app"]
url = %q
format = "raw"
compression = "none"
batch = { max_events = 500, timeout = "20ms" }
retry = { initial = "10ms", max = "50ms" }
`, filepath.Join(dir, "data"), filepath.Join(dir, "app*.log"), hs.URL+"/ingest"))
	s := startStack(t, cfgPath)

	var body string
	waitFor(t, "/readyz to report unready", func() bool {
		var code int
		code, body = s.get("/readyz")
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "output sink failing") || !strings.Contains(body, "503") {
		t.Errorf("/readyz body does not name the failing output and its error:\n%s", body)
	}
	st := s.status()
	o := st.Outputs[0]
	if st.Readiness.Ready || o.FailingSince == nil || o.LastError == "" || o.Failures == 0 || o.Retries == 0 {
		t.Errorf("/status while failing: readiness %+v, output %+v", st.Readiness, o)
	}
	if time.Since(*o.FailingSince) < 300*time.Millisecond {
		t.Errorf("unready although failing only since %v", *o.FailingSince)
	}
	fams := s.metrics()
	if v := value(t, fams, "tailship_ready", nil); v != 0 {
		t.Errorf("tailship_ready = %v while unready", v)
	}
	if v := value(t, fams, "tailship_output_batches_total", map[string]string{"output": "sink", "status": "failed"}); v < 1 {
		t.Errorf("failed batches = %v", v)
	}
	if len(sink.snapshot()) != 0 {
		t.Fatalf("the sink accepted lines while failing")
	}

	sink.failing.Store(false)
	waitFor(t, "/readyz to report ready again", func() bool {
		code, _ := s.get("/readyz")
		return code == http.StatusOK
	})
	waitFor(t, "every line delivered", func() bool { return len(sink.snapshot()) >= n })
	countSeqs(t, sink.snapshot(), "r", n)
	st = s.status()
	if o := st.Outputs[0]; o.FailingSince != nil || o.Delivered != n || !st.Readiness.Ready {
		t.Errorf("/status after recovery: readiness %+v, output %+v", st.Readiness, o)
	}
}

// TestReloadEndpoint: POST /reload is refused unless api.enable_reload is
// set; with it, an invalid file is refused with its problems (400) and the
// running config keeps shipping; a valid one is applied.
func TestReloadEndpoint(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.log")
	cfgPath := filepath.Join(dir, "t.toml")
	tmpl := `
[agent]
data_dir = %q
[api]
listen = "127.0.0.1:0"
enable_reload = %v
[inputs.app]
type = "file"
include = [%q]
poll_interval = "20ms"
[outputs.out]
type = "file"
inputs = ["app"]
path = %q
compression = "none"
batch = { timeout = "20ms" }
`
	write := func(enable bool, extra string) {
		writeFile(t, cfgPath, fmt.Sprintf(tmpl, filepath.Join(dir, "data"), enable, filepath.Join(dir, "app*.log"), out)+extra)
	}
	logPath := filepath.Join(dir, "app.log")
	writeFile(t, logPath, seqLines("h", 0, 100))

	t.Run("disabled", func(t *testing.T) {
		write(false, "")
		s := startStack(t, cfgPath)
		resp, err := http.Post(s.base+"/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /reload with enable_reload = false: %d, want 403", resp.StatusCode)
		}
		s.stop()
	})
	t.Run("enabled", func(t *testing.T) {
		write(true, "")
		s := startStack(t, cfgPath)
		waitFor(t, "first lines", func() bool { return len(readLines(t, out)) >= 100 })
		if code, _ := s.get("/reload"); code != http.StatusMethodNotAllowed {
			t.Errorf("GET /reload: %d, want 405", code)
		}
		write(true, "[outputs.out2]\ntype = \"file\"\ninputs = [\"app\"]\npathh = \"x\"\n")
		resp, err := http.Post(s.base+"/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "outputs.out2.pathh: unknown key") {
			t.Errorf("invalid reload: %d %q, want 400 naming outputs.out2.pathh", resp.StatusCode, b)
		}
		// The old config still ships.
		fh, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		fh.WriteString(seqLines("h", 100, 200))
		fh.Close()
		waitFor(t, "lines after the refused reload", func() bool { return len(readLines(t, out)) >= 200 })
		if st := s.status(); st.ReloadFailures != 1 || st.Reloads != 0 || !strings.Contains(st.LastReloadErr, "pathh") {
			t.Errorf("status after a refused reload: reloads %d, failures %d, last %q", st.Reloads, st.ReloadFailures, st.LastReloadErr)
		}

		write(true, "")
		resp, err = http.Post(s.base+"/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("valid reload: %d", resp.StatusCode)
		}
		fh, _ = os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
		fh.WriteString(seqLines("h", 200, 300))
		fh.Close()
		waitFor(t, "lines after the reload", func() bool { return len(readLines(t, out)) >= 300 })
		s.stop()
		countSeqs(t, readLines(t, out), "h", 300)
		if st := s.sup.Status(); st.Reloads != 1 {
			t.Errorf("reloads = %d, want 1", st.Reloads)
		}
	})
}

// TestStatusMasksSecrets: an error text holding credentials reaches
// /status masked.
func TestStatusMasksSecrets(t *testing.T) {
	for in, leak := range map[string]string{
		`Post "https://shipper:hunter2@logs.example.com/x": dial tcp: connection refused`: "hunter2",
		`401 Unauthorized: {"error":"bad token=abc123def456"}`:                            "abc123def456",
		`header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig rejected`:          "eyJhbGciOiJIUzI1NiJ9",
		`password = "s3cr3t-value" is wrong`:                                              "s3cr3t-value",
	} {
		got := agent.MaskSecrets(in)
		if strings.Contains(got, leak) {
			t.Errorf("MaskSecrets(%q) = %q still holds %q", in, got, leak)
		}
		if !strings.Contains(got, "xxxxx") {
			t.Errorf("MaskSecrets(%q) = %q shows no mask", in, got)
		}
	}
	if got := agent.MaskSecrets("dial tcp 127.0.0.1:9: connection refused"); got != "dial tcp 127.0.0.1:9: connection refused" {
		t.Errorf("an error without secrets changed: %q", got)
	}
}

// TestAggregateGauges: an aggregate processor's last closed window is on
// /metrics as tailship_aggregate_<name>_<stat>{group_by labels}. The lines
// are written in one go, so one chunk, parsed in one pass, falls into one
// window.
func TestAggregateGauges(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.log")
	cfgPath := filepath.Join(dir, "t.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`
[agent]
data_dir = %q
[api]
listen = "127.0.0.1:0"
[inputs.app]
type = "file"
include = [%q]
poll_interval = "20ms"
parser = "logfmt"
[[inputs.app.processors]]
type = "aggregate"
name = "req"
group_by = ["status"]
field = "ms"
width = "500ms"
drop_events = true
[outputs.out]
type = "file"
inputs = ["app"]
path = %q
batch = { timeout = "20ms" }
`, filepath.Join(dir, "data"), filepath.Join(dir, "app*.log"), out))
	s := startStack(t, cfgPath)
	var b strings.Builder
	want := map[string]map[string]float64{
		"200": {"count": 0, "sum": 0, "min": 1e9, "max": -1e9},
		"500": {"count": 0, "sum": 0, "min": 1e9, "max": -1e9},
	}
	for i := range 300 {
		status, ms := "200", float64(i%10)
		if i%3 == 0 {
			status, ms = "500", 100+float64(i%7)
		}
		w := want[status]
		w["count"]++
		w["sum"] += ms
		w["min"], w["max"] = min(w["min"], ms), max(w["max"], ms)
		fmt.Fprintf(&b, "seq=%d status=%s ms=%g\n", i, status, ms)
	}
	writeFile(t, filepath.Join(dir, "app.log"), b.String())
	var fams map[string]*dto.MetricFamily
	waitFor(t, "the window to close", func() bool {
		fams = s.metrics()
		f := fams["tailship_aggregate_req_count"]
		return f != nil && len(f.Metric) == 2
	})
	for status, stats := range want {
		for stat, v := range stats {
			if got := value(t, fams, "tailship_aggregate_req_"+stat, map[string]string{"status": status}); got != v {
				t.Errorf("tailship_aggregate_req_%s{status=%q} = %v, want %v", stat, status, got, v)
			}
		}
		if got := value(t, fams, "tailship_aggregate_req_avg", map[string]string{"status": status}); got != stats["sum"]/stats["count"] {
			t.Errorf("avg{status=%q} = %v, want %v", status, got, stats["sum"]/stats["count"])
		}
	}
}
