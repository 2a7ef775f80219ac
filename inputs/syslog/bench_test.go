package syslog

import (
	"bufio"
	"fmt"
	"net"
	"testing"

	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// BenchmarkTCP: RFC 5424 messages over one TCP connection, parsed by the
// syslog parser on a real pipeline (2 workers) into a capturing output;
// the time runs until every message arrived.
func BenchmarkTCP(b *testing.B) {
	for _, framing := range []string{"newline", "octet_counted"} {
		b.Run(framing, func(b *testing.B) {
			c := defaults()
			c.Mode, c.Address = "tcp", "127.0.0.1:0"
			rg := startRig(b, c, "syslog", false, func(*pipelinetest.Capture) {})
			conn, err := net.Dial("tcp", rg.Input.(*Input).Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			msg := rfc5424(1, "bench message with some text that looks like a log line GET /api/v1/items 200 12ms")
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			go func() {
				bw := bufio.NewWriterSize(conn, 64<<10)
				for range b.N {
					if framing == "newline" {
						bw.WriteString(msg + "\n")
					} else {
						fmt.Fprintf(bw, "%d %s", len(msg), msg)
					}
				}
				bw.Flush()
			}()
			waitFor(b, "messages", func() bool { return rg.Out.Len() >= b.N })
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			conn.Close()
			rg.Stop()
		})
	}
}
