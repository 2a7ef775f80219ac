package redis

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/tailship/tailship/config"
	"github.com/tailship/tailship/config/configtest"
	"github.com/tailship/tailship/pipeline"
	"github.com/tailship/tailship/pipeline/pipelinetest"
)

// tlsFront terminates TLS with a certificate of ca and forwards to
// target, as a TLS-enabled Redis (or stunnel in front of one) would.
func tlsFront(t *testing.T, ca *configtest.CA, target string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{ca.Server()}})
	if err != nil {
		t.Fatal(err)
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
	return ln.Addr().String()
}

// TestTLS: with tls.enabled, the output verifies the server against
// tls.ca_file and ships through TLS; a server signed by another CA is
// refused with an error that says what to set.
func TestTLS(t *testing.T) {
	rc := server(t)
	ca := configtest.NewCA(t)
	front := tlsFront(t, ca, redisAddr)

	t.Run("verified", func(t *testing.T) {
		key := unique(t, rc)
		c := testConfig(key)
		c.Address = front
		c.TLS = config.TLS{Enabled: true, CAFile: ca.CAFile}
		in := &pipelinetest.StaticInput{Sources: []string{"a"}, Lines: 3000, ChunkLines: 100}
		ship(t, c, in, pipelinetest.ShipOptions{})
		if err := pipelinetest.CheckSequences(lrange(t, rc, key), in.Want()); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("unknown CA", func(t *testing.T) {
		c := testConfig(unique(t, rc))
		c.Address = front
		c.TLS = config.TLS{Enabled: true} // the system roots do not know the test CA
		out := build(t, c, "tls")
		defer out.Close(context.Background())
		err := out.Write(context.Background(), pipeline.NewTestBatch(nil, "x"))
		if err == nil || pipeline.IsPermanent(err) || !strings.Contains(err.Error(), "certificate signed by unknown authority") || !strings.Contains(err.Error(), "tls.ca_file") {
			t.Fatalf("error %v", err)
		}
	})
}
