package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/agent"
	"github.com/tailship/tailship/api"
)

// BenchmarkScrape measures one /metrics and one /status answer for an agent
// following 500 files into two outputs: what a Prometheus scrape or a
// `tailship top` poll costs the agent.
func BenchmarkScrape(b *testing.B) {
	dir := b.TempDir()
	const files = 500
	os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
	for i := range files {
		os.WriteFile(filepath.Join(dir, "logs", fmt.Sprintf("f%03d.log", i)), []byte(strings.Repeat(fmt.Sprintf("file %03d: a line of a log file\n", i), 50)), 0o644)
	}
	cfgPath := filepath.Join(dir, "t.toml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
[agent]
data_dir = %q
[api]
listen = "127.0.0.1:0"
[inputs.app]
type = "file"
include = [%q]
[outputs.a]
type = "file"
inputs = ["app"]
path = %q
compression = "none"
batch = { timeout = "10ms" }
[outputs.b]
type = "file"
inputs = ["app"]
path = %q
compression = "none"
batch = { timeout = "10ms" }
`, filepath.Join(dir, "data"), filepath.Join(dir, "logs", "*.log"), filepath.Join(dir, "a.out"), filepath.Join(dir, "b.out"))), 0o644)
	cfg, err := agent.LoadFile(cfgPath)
	if err != nil {
		b.Fatal(err)
	}
	srv := api.New(cfg.API, zap.NewNop())
	sup, err := agent.NewSupervisor(cfg, zap.NewNop(), agent.SupervisorOptions{ObserveLatency: srv.ObserveLatency})
	if err != nil {
		b.Fatal(err)
	}
	srv.Attach(sup)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := sup.Status()
		if len(st.Inputs) == 1 && len(st.Inputs[0].Files) == files && st.Outputs[0].Delivered == files*50 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("files not shipped: %d files, %+v", len(st.Inputs[0].Files), st.Outputs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	h := srv.Handler()
	for _, path := range []string{"/metrics", "/status"} {
		b.Run(strings.TrimPrefix(path, "/"), func(b *testing.B) {
			size := 0
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					b.Fatalf("%s: %d", path, rec.Code)
				}
				size = rec.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}
