package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// produceAs writes records from..from+n-1 to every partition of topic,
// valued "<prefix>p<partition> <seq>" so each topic's partitions are
// sequences of their own.
func produceAs(t *testing.T, addrs []string, topic, prefix string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range int32(partitions) {
		for i := from; i < from+n; i++ {
			v := strings.TrimSuffix(pipelinetest.Line(fmt.Sprintf("%sp%d", prefix, p), i), "\n")
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func lagOf(rg *rig, name, topic string) [partitions]int64 {
	var out [partitions]int64
	lags := rg.Stats.LagByKey()
	for p := range partitions {
		out[p] = -1
		if v, ok := lags[fmt.Sprintf("%s/%s/%d", name, topic, p)]; ok {
			out[p] = v
		}
	}
	return out
}

// TestLagCountsFromCommitted: the lag gauge (tailship_consumer_lag_messages)
// is high watermark minus the group's committed offset, as its help text
// says. With commits refused by the broker, records delivered to the
// output still count as lag, since a restart would read them again; it
// used to be counted from the delivered offset and showed 0.
func TestLagCountsFromCommitted(t *testing.T) {
	topic, group := fmt.Sprintf("lag-%d", time.Now().UnixNano()), "g"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var refuse atomic.Bool
	var refused atomic.Int64
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
				sp.Partition = rp.Partition
				// Not retriable and not about membership: the
				// commit fails and the member stays.
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		refused.Add(1)
		return resp, nil, true
	})
	addrs := c.ListenAddrs()

	const n, m = 200, 70
	produceAs(t, addrs, topic, "", 0, n)
	rg := startRig(t, testConfig(addrs, topic, group), "k", false)
	// Until the first delivery the group may not exist yet to be asked.
	waitFor(t, "first records delivered", func() bool { return rg.Out.Len() >= partitions*n })
	waitFor(t, "first records committed", func() bool { return committed(t, addrs, group, topic) == [partitions]int64{n, n, n} })
	waitFor(t, "lag 0", func() bool { return lagOf(rg, "k", topic) == [partitions]int64{} })

	refuse.Store(true)
	produceAs(t, addrs, topic, "", n, m)
	waitFor(t, "every record delivered", func() bool { return rg.Out.Len() >= partitions*(n+m) })
	// A few refused commits after delivery: each updated the gauge.
	base := refused.Load()
	waitFor(t, "commits refused", func() bool { return refused.Load() >= base+3 })
	if got := lagOf(rg, "k", topic); got != [partitions]int64{m, m, m} {
		t.Fatalf("lag %v with %d records delivered but not committed per partition, want %d each", got, m, m)
	}
	if got := committed(t, addrs, group, topic); got != [partitions]int64{n, n, n} {
		t.Fatalf("broker holds %v, want the refused commits to leave %d", got, n)
	}

	refuse.Store(false)
	waitFor(t, "commits through", func() bool { return committed(t, addrs, group, topic) == [partitions]int64{n + m, n + m, n + m} })
	waitFor(t, "lag 0 again", func() bool { return lagOf(rg, "k", topic) == [partitions]int64{} })
	if err := pipelinetest.CheckSequences(rg.Out.Lines(), want(n+m)); err != nil {
		t.Fatal(err)
	}
}

// TestTopicsRegexConsumes: with topics_regex the input consumes every
// topic matching, and only those.
func TestTopicsRegexConsumes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, "app-a", "app-b", "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addrs := c.ListenAddrs()
	const n = 100
	for _, topic := range []string{"app-a", "app-b", "other"} {
		produceAs(t, addrs, topic, topic+"-", 0, n)
	}
	cfg := testConfig(addrs, "", "g")
	cfg.Topics, cfg.TopicsRegex = []string{`^app-`}, true
	rg := startRig(t, cfg, "k", false)
	wantSeq := map[string]int{}
	for _, topic := range []string{"app-a", "app-b"} {
		for p := range partitions {
			wantSeq[fmt.Sprintf("%s-p%d", topic, p)] = n
		}
	}
	waitFor(t, "both app topics", func() bool { return rg.Out.Len() >= 2*partitions*n })
	// The other topic had as long to be read (its records were there
	// first); a little more and the group has committed what it read.
	waitFor(t, "offsets committed", func() bool {
		return committed(t, addrs, "g", "app-a") == [partitions]int64{n, n, n} && committed(t, addrs, "g", "app-b") == [partitions]int64{n, n, n}
	})
	for _, l := range rg.Out.Lines() {
		if strings.HasPrefix(l, "other-") {
			t.Fatalf("read %q from a topic the regex does not match", l)
		}
	}
	if err := pipelinetest.CheckSequences(rg.Out.Lines(), wantSeq); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addrs, "g", "other"); got != [partitions]int64{-1, -1, -1} {
		t.Fatalf("group committed %v on the unmatched topic", got)
	}
}

// TestStartOffsetLatest: a new group with start_offset = "latest" skips
// what the topic held before it joined and reads everything after. When
// the consumer has positioned itself is not observable from outside, so
// new records are produced in rounds until some arrive; from then on
// every record of every partition must arrive, and no old one ever.
func TestStartOffsetLatest(t *testing.T) {
	topic := fmt.Sprintf("latest-%d", time.Now().UnixNano())
	addrs := newCluster(t, topic)
	const old = 300
	produce(t, addrs, topic, 0, old)
	cfg := testConfig(addrs, topic, "fresh")
	cfg.StartOffset = "latest"
	rg := startRig(t, cfg, "k", false)

	next := old
	deadline := time.Now().Add(20 * time.Second)
	for rg.Out.Len() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing read after 20 s of producing new records")
		}
		produce(t, addrs, topic, next, 10)
		next += 10
		time.Sleep(100 * time.Millisecond)
	}
	const more = 200
	produce(t, addrs, topic, next, more)
	next += more
	waitFor(t, "the last records", func() bool {
		for _, l := range rg.Out.Lines() {
			if _, seq, _ := pipelinetest.ParseLine(l); seq == next-1 {
				return true
			}
		}
		return false
	})
	waitFor(t, "the last records of every partition", func() bool {
		last := map[string]int{}
		for _, l := range rg.Out.Lines() {
			src, seq, _ := pipelinetest.ParseLine(l)
			last[src] = max(last[src], seq)
		}
		return len(last) == partitions && last["p0"] == next-1 && last["p1"] == next-1 && last["p2"] == next-1
	})
	firstSeen := map[string]int{}
	count := map[string]int{}
	for _, l := range rg.Out.Lines() {
		src, seq, err := pipelinetest.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		if seq < old {
			t.Fatalf("read %q, produced before the group joined", l)
		}
		if _, ok := firstSeen[src]; !ok {
			firstSeen[src] = seq
		}
		if want := firstSeen[src] + count[src]; seq != want {
			t.Fatalf("%s: record %d after %d in a row from %d: a gap", src, seq, count[src], firstSeen[src])
		}
		count[src]++
	}
	t.Logf("first read per partition %v (old records end at %d); %d rounds of 10 before the first arrived", firstSeen, old-1, (next-more-old)/10)
}
