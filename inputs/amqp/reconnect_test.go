package amqp

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// proxy forwards TCP connections to RabbitMQ until cut closes every one
// of them (a broken network path, as the input sees it).
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(up, c); up.Close() })
			p.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	return n
}

// TestReconnectAfterBrokenConnection: the connection breaks twice while
// messages are being consumed and delivered slowly; the input dials again
// and every message arrives, at least once, in order apart from the
// redeliveries of what was unacknowledged at the break, and the queue
// ends empty.
func TestReconnectAfterBrokenConnection(t *testing.T) {
	ch := broker(t)
	q := uniqueQueue(t)
	declare(t, ch, q)
	const n = 4000
	publish(t, ch, q, "m", 0, n)
	px := newProxy(t, "127.0.0.1:5672")
	cfg := queueConfig(q)
	cfg.URL = "amqp://guest:guest@" + px.ln.Addr().String() + "/"
	cfg.Prefetch = 200
	cfg.ChunkEvents = 50
	out := &pipelinetest.Capture{Delay: 5 * time.Millisecond}
	stop := start(t, cfg, out)
	for _, at := range []int{n / 4, n / 2} {
		eventually(t, "progress", func() bool { return out.Len() >= at })
		if px.cut() == 0 {
			t.Fatal("no connection to cut")
		}
	}
	eventually(t, "every message", func() bool {
		seen := map[string]bool{}
		for _, l := range out.Lines() {
			seen[l] = true
		}
		return len(seen) == n
	})
	eventually(t, "queue drained", func() bool { return ready(t, ch, q) == 0 })
	stop()
	if r := ready(t, ch, q); r != 0 {
		t.Fatalf("%d messages requeued after stop", r)
	}
	// Per message at least once; a repeat only restarts at an earlier
	// message (redelivery), never skips ahead.
	last := -1
	repeats := 0
	for _, l := range out.Lines() {
		_, seq, err := pipelinetest.ParseLine(l)
		if err != nil {
			t.Fatal(err)
		}
		if seq > last+1 {
			t.Fatalf("seq %d after %d: a message was skipped", seq, last)
		}
		if seq <= last {
			repeats++
		}
		last = max(last, seq)
	}
	t.Logf("%d messages, %d delivered again after the two breaks", n, repeats)
}
