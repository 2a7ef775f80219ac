package parse_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
)

// benchLines are realistic lines of each format, ~150-250 bytes.
var benchLines = map[string][]string{
	"json": {
		`{"ts":"2026-11-22T10:00:00.123Z","level":"info","msg":"order processed","order_id":1000,"amount":12.5,"ok":true,"user":{"id":7,"tier":"gold"},"path":"/api/orders"}`,
		`{"ts":"2026-11-22T10:00:01.456Z","level":"error","msg":"payment \"declined\"","order_id":1001,"amount":99.99,"ok":false,"user":{"id":8,"tier":"free"},"path":"/api/pay"}`,
	},
	"logfmt": {
		`ts=2026-11-22T10:00:00.123Z level=info msg="order processed" order_id=1000 amount=12.5 ok=true user_id=7 tier=gold path=/api/orders`,
		`ts=2026-11-22T10:00:01.456Z level=error msg="payment \"declined\"" order_id=1001 amount=99.99 ok=false user_id=8 tier=free path=/api/pay`,
	},
	"regex": {
		`10.0.0.1 - - [22/Nov/2026:10:00:00 +0000] "GET /api/orders HTTP/1.1" 200 3334 "-" "curl/8.5.0"`,
		`10.0.2.2 - - [22/Nov/2026:10:00:02 +0000] "POST /api/pay HTTP/1.1" 402 48 "https://shop/" "Mozilla/5.0"`,
	},
	"cri": {
		`2026-11-22T10:00:00.123456789Z stdout F {"level":"info","msg":"order processed","order_id":1000,"amount":12.5,"path":"/api/orders"}`,
		`2026-11-22T10:00:01.123456789Z stderr F panic: runtime error: index out of range [3] with length 3 goroutine 1 [running]`,
	},
	"docker": {
		`{"log":"{\"level\":\"info\",\"msg\":\"order processed\",\"order_id\":1000,\"path\":\"/api/orders\"}\n","stream":"stdout","time":"2026-11-22T10:00:00.123456789Z"}`,
		`{"log":"panic: runtime error: index out of range [3] with length 3\n","stream":"stderr","time":"2026-11-22T10:00:01.123456789Z"}`,
	},
	"syslog": {
		`<165>1 2026-11-22T10:00:00.003Z web-1.example.com orders 1234 ID47 [meta@32473 region="eu" zone="b"] order 1000 processed in 12ms`,
		`<34>Nov 22 10:00:01 web-1 sshd[4242]: Accepted publickey for deploy from 10.0.0.9 port 52311 ssh2`,
	},
}

var benchPattern = `^(?P<ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+)[^"]*" (?P<status>\d+) (?P<bytes>\d+)`

// BenchmarkParse runs each parser the way a worker does: one parser, lines
// of a 1000-line chunk parsed into one arena that is reset per chunk (the
// pool recycles arenas with chunks). Reports ns/line, MB/s and
// allocs/line (b.N counts lines).
func BenchmarkParse(b *testing.B) {
	cases := []struct {
		name, parser string
		mod          func(s *pipeline.InputSettings)
	}{
		{"json", "json", nil},
		{"json+timestamp", "json", func(s *pipeline.InputSettings) {
			s.Parse.Timestamp = pipeline.TimestampSettings{Field: "ts", Layout: time.RFC3339Nano}
		}},
		{"logfmt", "logfmt", nil},
		{"regex", "regex", func(s *pipeline.InputSettings) { s.Parse.Pattern = benchPattern }},
		{"cri", "cri", nil},
		{"docker", "docker", nil},
		{"syslog", "syslog", nil},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			p := spec(b, bc.parser, bc.mod).New()
			lines := benchLines[bc.parser]
			evs := make([]pipeline.Event, 1000)
			size := 0
			for i := range evs {
				evs[i].Raw = []byte(lines[i%len(lines)])
				size += len(evs[i].Raw) + 1
			}
			a := new(pipeline.Arena)
			b.SetBytes(int64(size / len(evs)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % len(evs)
				if k == 0 {
					a.Reset()
				}
				ev := &evs[k]
				a.Begin()
				if err := p.Parse(ev, a); err != nil {
					b.Fatal(err)
				}
				ev.Fields = a.Fields()
			}
		})
	}
}

// BenchmarkJoin: the ordered stage's cost is covered by the pool benchmark
// in pipeline; this one checks a parser's allocations with partial lines.
func BenchmarkParsePartialCRI(b *testing.B) {
	p := spec(b, "cri", nil).New()
	a := new(pipeline.Arena)
	ev := pipeline.Event{Raw: []byte(fmt.Sprintf("2026-11-22T10:00:00.123456789Z stdout P %0100d", 7))}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i%1000 == 0 {
			a.Reset()
		}
		a.Begin()
		if err := p.Parse(&ev, a); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseAllocs holds the parsers to their allocation budget on the hot
// path: none per line, except regex, whose FindSubmatchIndex allocates its
// result (one per line). A warmed-up arena stands for the pooled ones.
func TestParseAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	budget := map[string]float64{"json": 0, "logfmt": 0, "regex": 1, "cri": 0, "docker": 0, "syslog": 0}
	for name, max := range budget {
		var mod func(s *pipeline.InputSettings)
		if name == "regex" {
			mod = func(s *pipeline.InputSettings) { s.Parse.Pattern = benchPattern }
		}
		p := spec(t, name, mod).New()
		a := new(pipeline.Arena)
		evs := make([]pipeline.Event, len(benchLines[name]))
		for i, l := range benchLines[name] {
			evs[i].Raw = []byte(l)
		}
		run := func() {
			a.Reset()
			for i := range evs {
				a.Begin()
				if err := p.Parse(&evs[i], a); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		}
		run() // warm the arena, key cache and parser buffers
		lines := float64(len(benchLines[name]))
		if got := testing.AllocsPerRun(100, run) / lines; got > max {
			t.Errorf("%s: %.2f allocs/line, budget %.0f", name, got, max)
		}
	}
}

// multilineBenchLines is a Java service's log: mostly one-line records,
// every fifth record an 8-line trace (so ~40% of lines are trace lines).
func multilineBenchLines() []string {
	var lines []string
	for i := 0; len(lines) < 1000; i++ {
		lines = append(lines, fmt.Sprintf("2026-11-22 10:00:00.%03d INFO  [http-nio-8080-exec-%d] c.e.OrderController : order %d processed in 12ms", i%1000, i%8, i))
		if i%5 == 4 {
			lines = append(lines,
				"java.lang.IllegalStateException: payment declined for order",
				"\tat com.example.shop.PaymentService.charge(PaymentService.java:88)",
				"\tat com.example.shop.OrderController.create(OrderController.java:41)",
				"\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)",
				"Caused by: java.net.SocketTimeoutException: Read timed out",
				"\tat java.base/java.net.SocketInputStream.socketRead0(Native Method)",
				"\t... 42 more")
		}
	}
	return lines[:1000]
}

// BenchmarkMultiline runs the multiline stage as the pool's ordered stage
// does, on 1000-line chunks: with parser = "none" (the stage alone, on
// the raw line), and with parser = "cri" (parse, partial-line join and
// multiline, on the parsed message). Reports ns/line, MB/s and
// allocs/line (b.N counts lines; allocations per chunk are spread over
// its lines).
func BenchmarkMultiline(b *testing.B) {
	raw := multilineBenchLines()
	cases := []struct {
		name, parser string
		mod          func(m *pipeline.MultilineSettings)
	}{
		{"java/none", "none", func(m *pipeline.MultilineSettings) { m.Preset = "java" }},
		{"start_pattern/none", "none", func(m *pipeline.MultilineSettings) { m.StartPattern = `^\d{4}-\d{2}-\d{2} ` }},
		{"java/cri", "cri", func(m *pipeline.MultilineSettings) { m.Preset = "java" }},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			ps := spec(b, bc.parser, func(s *pipeline.InputSettings) { bc.mod(&s.Multiline) })
			lines := raw
			if bc.parser == "cri" {
				lines = make([]string, len(raw))
				for i, l := range raw {
					lines[i] = "2026-11-22T10:00:00.123456789Z stderr F " + l
				}
			}
			size := 0
			bs := make([][]byte, len(lines))
			for i, l := range lines {
				size += len(l) + 1
				bs[i] = []byte(l)
			}
			stage := ps.NewOrdered(&pipeline.Stats{})
			var p pipeline.Parser
			if ps.New != nil {
				p = ps.New()
			}
			src := &pipeline.Source{}
			b.SetBytes(int64(size / len(lines)))
			b.ReportAllocs()
			b.ResetTimer()
			var off int64
			for n := 0; n < b.N; n += len(lines) {
				c := &pipeline.Chunk{Source: src, Events: make([]pipeline.Event, len(lines))}
				a := c.Arena()
				for i, l := range bs {
					ev := &c.Events[i]
					ev.Raw = l
					if p != nil {
						a.Begin()
						if err := p.Parse(ev, a); err != nil {
							b.Fatal(err)
						}
						ev.Fields = a.Fields()
					}
				}
				off += int64(size)
				c.End = off
				stage.Process(c)
			}
			b.StopTimer()
			if cl, ok := stage.(interface{ Close() }); ok {
				cl.Close()
			}
		})
	}
}
