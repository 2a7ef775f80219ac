package kafka

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkConsume: records of ~200 bytes from 3 kfake partitions through
// the input and a real pipeline (2 workers, parser none) into a capturing
// output; the time runs from the input's start until every record arrived.
func BenchmarkConsume(b *testing.B) {
	topic := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	addrs := newCluster(b, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("x", 180)
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("bench %08d %s", i, pad))}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	b.SetBytes(int64(len(recs[0].Value)))
	b.ResetTimer()
	rg := startRig(b, testConfig(addrs, topic, "bench"), "kafka", false)
	waitFor(b, "records", func() bool { return rg.Out.Len() >= b.N })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	rg.Stop()
}
