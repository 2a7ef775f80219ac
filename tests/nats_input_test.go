package tests

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSInputThroughSIGKILL: see consumerKill, on a JetStream stream of
// the local server. Held is the durable consumer's ack floor staying at the
// first half with the whole second half still in the server (delivered
// and unacknowledged, or not yet delivered); settled is the ack floor at
// the last message with nothing pending. The server redelivers a message
// not acknowledged within ack_wait after later ones, so order is not
// checked at the far end.
func TestNATSInputThroughSIGKILL(t *testing.T) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	needService(t, "NATS with JetStream at 127.0.0.1:4222", err, "nats-server -js")
	c.Close()
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d_%d", os.Getpid(), time.Now().UnixNano())
	stream, subject, consumer := "TAILSHIP_IN_E2E_"+id, "tailship.in.e2e."+id, "tailship-e2e"
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: stream, Subjects: []string{subject}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), stream)
	// info is the durable consumer's state; the input creates the
	// consumer, so it may not exist yet.
	info := func() *jetstream.ConsumerInfo {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cons, err := js.Consumer(ctx, stream, consumer)
		if err != nil {
			return nil
		}
		ci, err := cons.Info(ctx)
		if err != nil {
			return nil
		}
		return ci
	}
	input := fmt.Sprintf(`type = "nats"
servers = ["nats://127.0.0.1:4222"]
stream = %q
consumer = %q
ack_wait = "3s"                # what the killed agent held is redelivered after this
metadata = false`, stream, consumer)
	consumerKill(t, consumerCase{input: input, order: orderElsewhere,
		publish: func(from, to int) {
			for i := from; i < to; i++ {
				if _, err := js.PublishAsync(subject, []byte(seqBody(i))); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("JetStream publish acks did not arrive")
			}
		},
		// Stream sequences start at 1, so the first half ends at killN/2.
		held: func() bool {
			ci := info()
			ok := ci != nil && ci.AckFloor.Stream == killN/2 && ci.NumAckPending > 0 &&
				uint64(ci.NumAckPending)+ci.NumPending == killN/2
			if ok {
				t.Logf("while down: ack floor %d of %d, %d delivered unacknowledged, %d undelivered", ci.AckFloor.Stream, killN, ci.NumAckPending, ci.NumPending)
			}
			return ok
		},
		settled: func() bool {
			ci := info()
			return ci != nil && ci.AckFloor.Stream == killN && ci.NumAckPending == 0 && ci.NumPending == 0
		},
	})
}
