package redis

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// forward listens on addr (retrying while the port is taken) and forwards
// every connection to target, until the test ends.
func forward(t *testing.T, addr, target string) {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; ; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
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
			mu.Lock()
			conns = append(conns, c, up)
			mu.Unlock()
			wg.Go(func() { io.Copy(up, c); up.Close() })
			wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// TestServerDownThenUp: while nothing listens, attempts fail and are
// retried with the runner's backoff; once the server is reachable, the
// output connects and everything arrives once, in order.
func TestServerDownThenUp(t *testing.T) {
	rc := server(t)
	key := unique(t, rc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := testConfig(key)
	c.Address = addr
	out := build(t, c, "down")
	in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 3000, ChunkLines: 100}
	type result struct {
		r   *pipeline.Runner
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, _, err := pipelinetest.Ship(in, "redis", out, c.OutputSettings, pipelinetest.ShipOptions{})
		done <- result{r, err}
	}()
	time.Sleep(200 * time.Millisecond)
	forward(t, addr, redisAddr)
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if err := pipelinetest.CheckSequences(lrange(t, rc, key), in.Want()); err != nil {
		t.Fatal(err)
	}
	if res.r.Out.Failures.Load() == 0 || res.r.Out.Retries.Load() == 0 {
		t.Fatal("no failed and retried attempt while the server was down")
	}
	t.Logf("%d failed attempts while down", res.r.Out.Failures.Load())
}
