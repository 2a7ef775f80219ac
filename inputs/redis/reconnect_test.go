package redis

import (
	"context"
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

func (p *proxy) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
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

// TestReconnectAfterBrokenConnection: the connection to Redis breaks twice
// while a stream is read and delivered slowly; the input retries with
// backoff (go-redis dials again) and every entry arrives at least once,
// in order, and none stays pending.
func TestReconnectAfterBrokenConnection(t *testing.T) {
	c := client(t)
	key := uniqueKey(t)
	t.Cleanup(func() { c.Del(context.Background(), key) })
	const n = 4000
	xaddLines(t, c, key, "s", 0, n)
	px := newProxy(t, addr)
	cfg := streamConfig(key)
	cfg.Address = px.ln.Addr().String()
	cfg.Count = 100
	out := &pipelinetest.Capture{Delay: 5 * time.Millisecond}
	start(t, cfg, out)
	for _, at := range []int{n / 4, n / 2} {
		eventually(t, "progress", func() bool { return out.Len() >= at })
		// The input may be ahead of the output with no connection open
		// yet since the last cut: go-redis dials on the next command.
		eventually(t, "a connection to cut", func() bool { return px.open() > 0 })
		px.cut()
	}
	eventually(t, "every entry", func() bool { return out.Len() >= n })
	eventually(t, "acknowledged", func() bool { return pendingCount(t, c, key, "g") == 0 })
	if err := pipelinetest.CheckSequences(out.Lines(), map[string]int{"s": n}); err != nil {
		t.Fatal(err)
	}
}
