package api_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	_ "github.com/tailship/tailship/inputs/kafka"
)

// TestConsumerLagMetric: tailship_consumer_lag_messages, one series per
// input, topic and partition, is the high watermark minus the group's
// committed offset. The broker refuses commits at first, so every record
// is delivered to the output and none committed: the gauges show what was
// produced per partition (60 and 25), then 0 once commits go through.
func TestConsumerLagMetric(t *testing.T) {
	const topic = "orders"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refuse atomic.Bool
	refuse.Store(true)
	c.ControlKey(int16(kmsg.OffsetCommit), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		req := kr.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	perPartition := map[int32]int{0: 60, 1: 25}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p, n := range perPartition {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "p%d %08d", p, i)})
		}
	}
	err = cl.ProduceSync(context.Background(), recs...).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "out.log")
	cfgPath := filepath.Join(dir, "t.toml")
	writeFile(t, cfgPath, fmt.Sprintf(`
[agent]
data_dir = %q
[api]
listen = "127.0.0.1:0"
[inputs.bus]
type = "kafka"
brokers = [%q]
topics = [%q]
group = "agg"
commit_interval = "50ms"
[outputs.out]
type = "file"
inputs = ["bus"]
path = %q
compression = "none"
batch = { max_events = 100, timeout = "20ms" }
`, filepath.Join(dir, "data"), c.ListenAddrs()[0], topic, out))
	s := startStack(t, cfgPath)

	lag := func(p int32) float64 {
		fams := s.metrics()
		if _, ok := fams["tailship_consumer_lag_messages"]; !ok {
			return -1
		}
		return value(t, fams, "tailship_consumer_lag_messages", map[string]string{"input": "bus", "topic": topic, "partition": fmt.Sprint(p)})
	}
	waitFor(t, "every record in the output", func() bool { return len(readLines(t, out)) >= 85 })
	waitFor(t, "lag of every uncommitted record", func() bool { return lag(0) == 60 && lag(1) == 25 })
	if st := s.status(); st.ConsumerLag["bus/orders/0"] != 60 || st.ConsumerLag["bus/orders/1"] != 25 {
		t.Fatalf("/status consumer_lag %v, want 60 and 25", st.ConsumerLag)
	}
	refuse.Store(false)
	waitFor(t, "lag 0 once committed", func() bool { return lag(0) == 0 && lag(1) == 0 })
	seen := map[string]bool{}
	for _, l := range readLines(t, out) {
		seen[l] = true
	}
	for p, n := range perPartition {
		for i := range n {
			if l := fmt.Sprintf("p%d %08d", p, i); !seen[l] {
				t.Fatalf("%q missing from the output", l)
			}
		}
	}
}
