package tests

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaInputThroughSIGKILL: see consumerKill, on a kfake cluster in
// this process with three partitions, each numbered on its own and kept
// in order (a restart repeats from the last commit). Held is the group's
// committed offset of every partition staying at the first half while the
// second half is produced up to the partition's end; settled is every
// committed offset at that end.
func TestKafkaInputThroughSIGKILL(t *testing.T) {
	const partitions = 3
	topic := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	addrs := cluster.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const group = "tailship-e2e"
	sources := make([]string, partitions)
	for p := range sources {
		sources[p] = fmt.Sprintf("p%d", p)
	}
	// committedAt reports whether every partition's end offset is end and
	// the group's committed offset is at.
	committedAt := func(at, end int64) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false
		}
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false
		}
		for p := range int32(partitions) {
			e, ok := ends.Lookup(topic, p)
			if !ok || e.Err != nil || e.Offset != end {
				return false
			}
			if o, ok := offs.Lookup(topic, p); !ok || o.Err != nil || o.At != at {
				return false
			}
		}
		return true
	}
	quoted := make([]string, len(addrs))
	for i, a := range addrs {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	input := fmt.Sprintf(`type = "kafka"
brokers = [%s]
topics = [%q]
group = %q
commit_interval = "100ms"
session_timeout = "6s"         # the killed member's partitions move after this`, strings.Join(quoted, ", "), topic, group)
	consumerKill(t, consumerCase{input: input, sources: sources, order: restartsOK,
		publish: func(from, to int) {
			var recs []*kgo.Record
			for p, name := range sources {
				for i := from; i < to; i++ {
					recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte(strings.TrimSuffix(seqLine(name, i), "\n"))})
				}
			}
			if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		},
		held: func() bool {
			ok := committedAt(killN/2, killN)
			if ok {
				t.Logf("while down: every partition committed at %d of %d produced", killN/2, killN)
			}
			return ok
		},
		settled: func() bool { return committedAt(killN, killN) },
	})
}
