package http

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
	"github.com/tailship/tailship/pipeline/template"
)

// serviceProc gives every event a "service" field, as a parser would:
// source "a" is "API", source "b" is "Web".
type serviceProc struct{}

func (serviceProc) Process(ev *pipeline.Event) (bool, error) {
	src, _, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	svc := map[string]string{"a": "API", "b": "Web"}[src]
	ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: svc})
	return true, nil
}

// TestElasticsearchBulk: documents reach the index the template names
// (lowercased, dated), with the ingest pipeline; items that fail with 429
// or 503 are re-sent alone; items rejected as invalid are dead-lettered and
// counted, never retried; every other line is indexed exactly once, in
// order apart from the retried ones.
func TestElasticsearchBulk(t *testing.T) {
	for _, comp := range []string{"gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			retryable := func(seq int) bool { return seq%7 == 3 }
			invalid := func(seq int) bool { return seq%50 == 49 }
			s, srv := newESServer(t, nil, func(line string, attempt int) (int, string) {
				_, seq, _ := pipelinetest.ParseLine(line)
				switch {
				case invalid(seq):
					return 400, "mapper_parsing_exception"
				case retryable(seq) && attempt == 0:
					if seq%2 == 0 {
						return 429, "es_rejected_execution_exception"
					}
					return 503, "unavailable_shards_exception"
				}
				return 0, ""
			})
			dl := filepath.Join(t.TempDir(), "dead.jsonl")
			c := testConfig(srv.URL)
			c.Format = FormatElasticsearch
			c.Compression = comp
			c.Index = "logs-%{service}-%Y.%m.%d"
			c.Pipeline = "parse-access"
			c.DeadLetterPath = dl
			c.Batch.MaxEvents = 300
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 2000, ChunkLines: 100}
			r, stats := ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{serviceProc{}}})

			day := time.Now().UTC().Format("2006.01.02")
			s.mu.Lock()
			defer s.mu.Unlock()
			for src, svc := range map[string]string{"a": "api", "b": "web"} {
				index := "logs-" + svc + "-" + day
				got := s.indexed[index]
				var want, wantLate []string
				for seq := range 2000 {
					line := fmt.Sprintf("%s %08d", src, seq)
					switch {
					case invalid(seq):
					case retryable(seq):
						wantLate = append(wantLate, line)
					default:
						want = append(want, line)
					}
					if n := s.attempts[line]; n != 1+b2i(retryable(seq) && !invalid(seq)) {
						t.Errorf("%s sent %d times", line, n)
					}
				}
				// Lines never retried keep their order; retried ones
				// come once each, later.
				var first, late []string
				for _, l := range got {
					_, seq, _ := pipelinetest.ParseLine(l)
					if retryable(seq) {
						late = append(late, l)
					} else {
						first = append(first, l)
					}
				}
				if !slices.Equal(first, want) {
					t.Errorf("index %s: %d lines in order, want %d", index, len(first), len(want))
				}
				slices.Sort(late)
				if !slices.Equal(late, wantLate) {
					t.Errorf("index %s: %d retried lines, want %d", index, len(late), len(wantLate))
				}
			}
			if len(s.indexed) != 2 {
				t.Errorf("indices %v", keys(s.indexed))
			}
			for _, q := range s.queries {
				if !strings.Contains(q, "pipeline=parse-access") || !strings.Contains(q, "filter_path=") {
					t.Errorf("query %q", q)
					break
				}
			}
			recs := readLines(t, dl)
			if len(recs) != 80 { // 40 per source
				t.Errorf("%d dead-lettered, want 80", len(recs))
			}
			for _, rec := range recs {
				_, seq, _ := pipelinetest.ParseLine(rec["line"])
				if !invalid(seq) || !strings.Contains(rec["error"], "status 400: mapper_parsing_exception") {
					t.Errorf("dead-letter record %v", rec)
				}
			}
			if r.Out.DeadLettered.Load() != 80 || r.Out.Rejected.Load() != 80 || r.Out.Delivered.Load() != 4000-80 {
				t.Errorf("dead-lettered %d rejected %d delivered %d", r.Out.DeadLettered.Load(), r.Out.Rejected.Load(), r.Out.Delivered.Load())
			}
			if len(stats.DroppedByReason()) != 0 {
				t.Errorf("drops %v", stats.DroppedByReason())
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func readLines(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]string
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// TestElasticsearchRequestFailures: whole-request failures (503, 429) are
// retried like any other output's, and nothing is indexed twice.
func TestElasticsearchRequestFailures(t *testing.T) {
	s, srv := newESServer(t, halfFail(3), nil)
	c := testConfig(srv.URL + "/")
	c.Format = FormatElasticsearch
	c.Index = "logs"
	c.Batch.MaxEvents = 250
	in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 3000, ChunkLines: 100}
	ship(t, c, in, pipelinetest.ShipOptions{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := pipelinetest.CheckSequences(s.indexed["logs"], in.Want()); err != nil {
		t.Fatal(err)
	}
	if s.failed == 0 {
		t.Fatal("no request failed")
	}
}

func TestIndexTemplate(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	src := &pipeline.Source{Fields: []pipeline.Field{{Key: "env", Value: "Prod"}, {Key: "service", Value: "static"}}}
	ev := &pipeline.Event{Fields: []pipeline.Field{{Key: "service", Value: "Check Out/V2"}, {Key: "n", Value: int64(7)}}}
	for _, tc := range []struct{ tmpl, want string }{
		{"logs", "logs"},
		{"logs-%{service}", "logs-check_out_v2"}, // event field wins, folded
		{"%{env}-%Y.%m.%d-%H", "prod-2026.03.04-05"},
		{"x-%{n}-%{missing}", "x-7-unknown"},
		{"100%%", "100%"},
	} {
		tm, err := template.Parse(tc.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := string(tm.Append(nil, src, ev, now, foldIndex)); got != tc.want {
			t.Errorf("%q expands to %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, bad := range []string{"", "x-%", "%{service", "%{}", "%q"} {
		if _, err := template.Parse(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// labelProc sets "service" from the source and "level" from the sequence
// number, so one batch holds several streams interleaved.
type labelProc struct{}

func (labelProc) Process(ev *pipeline.Event) (bool, error) {
	src, seq, err := pipelinetest.ParseLine(string(ev.Raw))
	if err != nil {
		return true, err
	}
	level := "info"
	if seq%3 == 0 {
		level = "error"
	}
	ev.Fields = append(ev.Fields, pipeline.Field{Key: "service", Value: src}, pipeline.Field{Key: "level", Value: level})
	return true, nil
}

// TestLoki: events are grouped into streams by the configured labels plus
// the static ones, each stream's entries arrive in order with increasing
// timestamps (the fake refuses anything else, as Loki does), with the
// tenant header, through a server failing half the requests.
func TestLoki(t *testing.T) {
	for _, comp := range []string{"gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			s, srv := newLokiServer(t, halfFail(4))
			c := testConfig(srv.URL + "/loki/api/v1/push")
			c.Format = FormatLoki
			c.Compression = comp
			c.Labels = []string{"service", "level", "absent"}
			c.StaticLabels = map[string]string{"job": "tailship", "service": "overridden"}
			c.TenantID = "team-a"
			c.Batch.MaxEvents = 400
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: 3000, ChunkLines: 100}
			r, _ := ship(t, c, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{labelProc{}}})

			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.streams) != 4 {
				t.Fatalf("streams %v", keys(s.streams))
			}
			for _, src := range []string{"a", "b"} {
				for _, level := range []string{"info", "error"} {
					key := fmt.Sprintf(`{job="tailship",level=%q,service=%q}`, level, src)
					var want []string
					for seq := range 3000 {
						if (seq%3 == 0) == (level == "error") {
							want = append(want, fmt.Sprintf("%s %08d", src, seq))
						}
					}
					if got := s.streams[key]; !slices.Equal(got, want) {
						t.Errorf("stream %s: %d entries, want %d in order", key, len(got), len(want))
					}
				}
			}
			if len(s.tenants) != 1 || s.tenants["team-a"] == 0 {
				t.Errorf("tenants %v", s.tenants)
			}
			if s.failed == 0 || r.Out.Rejected.Load() != 0 {
				t.Errorf("failed requests %d, rejected events %d", s.failed, r.Out.Rejected.Load())
			}
		})
	}
}

func TestLokiBody(t *testing.T) {
	o := &output{labels: []string{"app"}, static: sortedLabels(map[string]string{"job": "x"})}
	src := &pipeline.Source{Fields: []pipeline.Field{{Key: "app", Value: "web"}}}
	b := pipeline.NewTestBatch(src, `say "hi"`, "two")
	var st lokiState
	body := string(o.appendPush(nil, &st, b))
	var req struct {
		Streams []struct {
			Stream map[string]string
			Values [][2]string
		}
	}
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if len(req.Streams) != 1 || req.Streams[0].Stream["app"] != "web" || req.Streams[0].Stream["job"] != "x" ||
		len(req.Streams[0].Values) != 2 || req.Streams[0].Values[0][1] != `say "hi"` {
		t.Fatalf("body %s", body)
	}
	// A second batch reuses the state and still starts clean.
	body2 := string(o.appendPush(nil, &st, pipeline.NewTestBatch(nil, "three")))
	if !strings.Contains(body2, `{"stream":{"job":"x"},"values":[["`) || strings.Contains(body2, "web") {
		t.Fatalf("second body %s", body2)
	}
}

// TestLokiDefaultLabel: without labels or static_labels, every stream gets
// job="tailship", since Loki refuses a stream without labels.
func TestLokiDefaultLabel(t *testing.T) {
	s, srv := newLokiServer(t, nil)
	c := testConfig(srv.URL + "/loki/api/v1/push")
	c.Format = FormatLoki
	out := build(t, c)
	defer out.Close(t.Context())
	if err := out.Write(t.Context(), pipeline.NewTestBatch(nil, "one", "two")); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if got := s.streams[`{job="tailship"}`]; !slices.Equal(got, []string{"one", "two"}) {
		t.Fatalf("streams %v", s.streams)
	}
}
