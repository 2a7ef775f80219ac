package kafka

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// TestBatchMaxBytesBoundsRecordBatches pins how batch.max_bytes reaches
// the producer (see Build): not through ProducerBatchMaxBytes, which in
// franz-go also refuses any single record above it, but through the
// runner, which closes a batch at max_bytes, and the output, which
// flushes one batch per Write. So a record batch sent to the broker holds
// at most max_bytes of events (the one event that alone passes it aside),
// and that event, above batch.max_bytes but within max_message_bytes, is
// delivered rather than dead-lettered.
func TestBatchMaxBytesBoundsRecordBatches(t *testing.T) {
	const line = len("a 00000000") // events are the lines without newline
	for _, tc := range []struct {
		maxBytes   int
		wantAtMost int // records in one record batch
	}{
		{4 << 10, (4 << 10) / line},
		{1 << 20, -1}, // the contrast: far larger batches form without the bound
	} {
		t.Run(fmt.Sprint(tc.maxBytes), func(t *testing.T) {
			tp := topic(t)
			c := cluster(t, []string{tp})
			var (
				mu         sync.Mutex
				most, sent int
			)
			c.ControlKey(int16(kmsg.Produce), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				c.KeepControl()
				for _, rt := range kr.(*kmsg.ProduceRequest).Topics {
					for _, rp := range rt.Partitions {
						var rb kmsg.RecordBatch
						if err := rb.ReadFrom(rp.Records); err != nil {
							t.Errorf("record batch does not decode: %v", err)
							continue
						}
						n := int(rb.NumRecords)
						if n == 1 && len(rp.Records) > 100<<10 {
							continue // the big line, alone
						}
						mu.Lock()
						most, sent = max(most, n), sent+n
						mu.Unlock()
					}
				}
				return nil, nil, false
			})
			cfg := testConfig(c, tp)
			cfg.Compression = "none"
			cfg.Batch.MaxEvents = 50000
			cfg.Batch.MaxBytes = config.Size(tc.maxBytes)
			cfg.Batch.Timeout = config.Dur(200 * time.Millisecond)
			cfg.DeadLetterPath = filepath.Join(t.TempDir(), "dead.jsonl")
			const n = 20000
			in := &pipelinetest.StaticInput{Sources: []string{"a", "b"}, Lines: n, ChunkLines: 1000}
			big := newBigLine()
			r := ship(t, cfg, in, pipelinetest.ShipOptions{Procs: []pipeline.Processor{big}})
			recs := consume(t, c.ListenAddrs(), 2*n, tp)
			var lines []string
			gotBig := false
			for _, l := range byPartition(t, recs) {
				if l == string(big.line) {
					gotBig, l = true, "b 00000700"
				}
				lines = append(lines, l)
			}
			if err := pipelinetest.CheckSequences(lines, in.Want()); err != nil {
				t.Fatal(err)
			}
			if !gotBig || r.Out.DeadLettered.Load() != 0 {
				t.Fatalf("the %d-byte line above batch.max_bytes: delivered %v, dead-lettered %d", len(big.line), gotBig, r.Out.DeadLettered.Load())
			}
			mu.Lock()
			defer mu.Unlock()
			t.Logf("batch.max_bytes %d: at most %d records in one record batch (%d records sent)", tc.maxBytes, most, sent)
			if tc.wantAtMost > 0 && most > tc.wantAtMost {
				t.Fatalf("a record batch of %d records (%d bytes of events or more) with batch.max_bytes = %d", most, most*line, tc.maxBytes)
			}
			if tc.wantAtMost < 0 && most <= (4<<10)/line {
				t.Fatalf("at most %d records per record batch with batch.max_bytes = %d: the small bound above proves nothing", most, tc.maxBytes)
			}
		})
	}
}
