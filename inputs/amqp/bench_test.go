package amqp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// BenchmarkConsume: messages of ~90 bytes consumed from a real RabbitMQ
// queue into a discarding output, acknowledged once delivered; the queue
// is filled before the timer starts.
func BenchmarkConsume(b *testing.B) {
	conn, err := amqp.Dial(url)
	if err != nil {
		b.Skipf("RabbitMQ unreachable: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	const n = 20000
	body := []byte(strings.Repeat("x", 90))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		q := fmt.Sprintf("tailship-bench-%d", time.Now().UnixNano())
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		var last *amqp.DeferredConfirmation
		for range n {
			if last, err = ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: body}); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := last.WaitContext(context.Background()); err != nil {
			b.Fatal(err)
		}
		cfg := queueConfig(q)
		cfg.Prefetch = 5000
		out := &pipelinetest.Discard{}
		b.StartTimer()
		stop := start(b, cfg, out)
		for {
			if ev, _, _ := out.Counts(); ev >= n {
				break
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		stop()
		ch.QueueDelete(q, false, false, false)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "msgs/s")
}
