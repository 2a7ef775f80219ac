package nats

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkConsume: ~200-byte messages from a real JetStream stream (memory
// storage) through the input (one ack per message) and a real pipeline
// into a capturing output; the time runs until every message arrived.
func BenchmarkConsume(b *testing.B) {
	js, stream, subject := newStream(b)
	pad := strings.Repeat("x", 180)
	var futs []jetstream.PubAckFuture
	for i := range b.N {
		f, err := js.PublishAsync(subject+".b", []byte(fmt.Sprintf("bench %08d %s", i, pad)))
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
	}
	<-js.PublishAsyncComplete()
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	b.SetBytes(200)
	b.ResetTimer()
	rg := startRig(b, testConfig(stream), "nats", false)
	waitFor(b, "messages", func() bool { return rg.Out.Len() >= b.N })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	rg.Stop()
}
