package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tailship/tailship/config"
	_ "github.com/tailship/tailship/parse"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

const partitions = 3

func newCluster(t testing.TB, topic string) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// produce writes n sequence-numbered records to every partition: value
// "p<partition> <seq>", the form pipelinetest.CheckSequences reads.
func produce(t *testing.T, addrs []string, topic string, from, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for p := range int32(partitions) {
		for i := from; i < from+n; i++ {
			v := strings.TrimSuffix(pipelinetest.Line(fmt.Sprintf("p%d", p), i), "\n")
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(v)})
		}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// committed reads the group's committed offsets from the broker.
func committed(t *testing.T, addrs []string, group, topic string) [partitions]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	offs, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	var out [partitions]int64
	for p := range int32(partitions) {
		out[p] = -1
		if o, ok := offs.Lookup(topic, p); ok && o.Err == nil {
			out[p] = o.At
		}
	}
	return out
}

func testConfig(addrs []string, topic, group string) *Config {
	c := defaults()
	c.Brokers = addrs
	c.Topics = []string{topic}
	c.Group = group
	c.CommitInterval = config.Dur(50 * time.Millisecond)
	return c
}

func want(n int) map[string]int {
	w := map[string]int{}
	for p := range partitions {
		w[fmt.Sprintf("p%d", p)] = n
	}
	return w
}

// TestCommitsOnlyDelivered: while the output fails nothing is committed in
// the broker and the lag shows every record; once it recovers every record
// arrives once, in order per partition, with its metadata, and the group's
// offsets reach the end.
func TestCommitsOnlyDelivered(t *testing.T) {
	topic, group := fmt.Sprintf("t-%d", time.Now().UnixNano()), "g1"
	addrs := newCluster(t, topic)
	const n = 400
	produce(t, addrs, topic, 0, n)

	var badMeta atomic.Int64
	render := func(src *pipeline.Source, ev *pipeline.Event) string {
		p, _ := pipeline.Lookup(src, ev, "metadata.partition")
		tp, _ := pipeline.Lookup(src, ev, "metadata.topic")
		if tp != topic || !strings.HasPrefix(string(ev.Raw), fmt.Sprintf("p%v ", p)) {
			badMeta.Add(1)
		}
		return string(ev.Raw)
	}
	rg := startRig(t, testConfig(addrs, topic, group), "kafka", true, func(c *pipelinetest.Capture) { c.Render = render })
	waitFor(t, "failed attempts", func() bool { return rg.Out.Writes() >= 5 })
	waitFor(t, "lag of every record", func() bool {
		var sum int64
		for _, v := range rg.Stats.LagByKey() {
			sum += v
		}
		return sum == partitions*n
	})
	if got := committed(t, addrs, group, topic); got != [partitions]int64{-1, -1, -1} {
		t.Fatalf("offsets committed while the output was down: %v", got)
	}
	if rg.Out.Len() != 0 {
		t.Fatalf("%d records captured while down", rg.Out.Len())
	}

	rg.Down.Store(false)
	waitFor(t, "all records", func() bool { return rg.Out.Len() >= partitions*n })
	waitFor(t, "offsets committed", func() bool { return committed(t, addrs, group, topic) == [partitions]int64{n, n, n} })
	if err := pipelinetest.CheckSequences(rg.Out.Lines(), want(n)); err != nil {
		t.Fatal(err)
	}
	if badMeta.Load() != 0 {
		t.Fatalf("%d events with wrong metadata", badMeta.Load())
	}
	waitFor(t, "lag 0", func() bool {
		for _, v := range rg.Stats.LagByKey() {
			if v != 0 {
				return false
			}
		}
		return true
	})

	// A restarted consumer of the group resumes after the commit.
	rg.Stop()
	produce(t, addrs, topic, n, 50)
	rg2 := startRig(t, testConfig(addrs, topic, group), "kafka", false)
	waitFor(t, "new records", func() bool { return rg2.Out.Len() >= partitions*50 })
	waitFor(t, "offsets committed", func() bool { return committed(t, addrs, group, topic) == [partitions]int64{n + 50, n + 50, n + 50} })
	for _, l := range rg2.Out.Lines() {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil || seq < n {
			t.Fatalf("restarted consumer read %q again (err %v)", l, err)
		}
	}
}

// TestMessageWithNewlinesIsOneEvent: a record is one event whatever bytes it
// holds, and a JSON record is parsed.
func TestMessageWithNewlinesIsOneEvent(t *testing.T) {
	topic := fmt.Sprintf("nl-%d", time.Now().UnixNano())
	addrs := newCluster(t, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	vals := []string{"line one\nline two", `{"msg":"a\nb","n":1}`, "last"}
	for _, v := range vals {
		if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cl.Close()
	cfg := testConfig(addrs, topic, "g")
	cfg.Parser = "json"
	rg := startRig(t, cfg, "kafka", false)
	waitFor(t, "records", func() bool { return rg.Out.Len() >= 3 })
	got := rg.Out.Lines()
	if len(got) != 3 || got[0] != vals[0] || got[1] != vals[1] {
		t.Fatalf("events %q, want %q", got, vals)
	}
}

// TestRebalanceDeliversEverything: two consumers share a group; one leaves
// mid-stream with records still in its pipeline. Every record reaches one
// of the outputs at least once and the group ends committed at the end.
func TestRebalanceDeliversEverything(t *testing.T) {
	topic, group := fmt.Sprintf("rb-%d", time.Now().UnixNano()), "g"
	addrs := newCluster(t, topic)
	const n = 3000
	slow := func(c *pipelinetest.Capture) { c.Delay = 20 * time.Millisecond }
	a := startRig(t, testConfig(addrs, topic, group), "a", false, slow)
	cfgB := testConfig(addrs, topic, group)
	cfgB.DrainTimeout = config.Dur(0) // leave without waiting: B's in-flight records are repeated by A
	b := startRig(t, cfgB, "b", false, slow)
	// Both members hold partitions before the records come, so B has
	// some to give up.
	waitFor(t, "partitions shared", func() bool {
		na, nb := len(a.Stats.LagByKey()), len(b.Stats.LagByKey())
		return na > 0 && nb > 0 && na+nb == partitions
	})
	produce(t, addrs, topic, 0, n)
	waitFor(t, "both consuming", func() bool { return a.Out.Len() > 0 && b.Out.Len() > 0 })
	b.Stop()
	waitFor(t, "offsets committed", func() bool { return committed(t, addrs, group, topic) == [partitions]int64{n, n, n} })
	a.Stop()
	seen := map[string][]int{}
	for _, l := range append(a.Out.Lines(), b.Out.Lines()...) {
		src, seq, err := pipelinetest.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		if seen[src] == nil {
			seen[src] = make([]int, n)
		}
		seen[src][seq]++
	}
	dups := 0
	for p := range partitions {
		s := seen[fmt.Sprintf("p%d", p)]
		for i := range n {
			if s == nil || s[i] == 0 {
				t.Fatalf("p%d record %d lost", p, i)
			}
			dups += s[i] - 1
		}
	}
	t.Logf("a: %d, b: %d events, %d duplicates (at least once allows them)", a.Out.Len(), b.Out.Len(), dups)
}

func TestValidate(t *testing.T) {
	c := defaults()
	c.Parser = "cri"
	c.Multiline.Preset = "java"
	c.StartOffset = "middle"
	c.TopicsRegex = true
	c.Topics = []string{"("}
	c.SASL.Username = "u"
	err := c.Validate()
	for _, key := range []string{"multiline", "parser", "brokers", "group", "start_offset", "topics", "sasl.mechanism", "sasl.password"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v does not name %s", err, key)
		}
	}
	c = testConfig([]string{"x:1"}, "t", "g")
	c.SASL.Mechanism, c.SASL.Username, c.SASL.Password = "SCRAM-SHA-256", "u", "hunter2"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
