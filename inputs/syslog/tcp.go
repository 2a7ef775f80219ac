package syslog

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
)

// Run implements pipeline.Input.
func (in *Input) Run(ctx context.Context, e pipeline.Emitter) error {
	if in.cfg.Mode == "udp" {
		return in.runUDP(ctx, e)
	}
	return in.runTCP(ctx, e)
}

func (in *Input) runTCP(ctx context.Context, e pipeline.Emitter) error {
	lc := net.ListenConfig{}
	ln, err := lc.Listen(ctx, "tcp", in.cfg.Address)
	if err != nil {
		return fmt.Errorf("syslog listen on tcp %s: %w", in.cfg.Address, err)
	}
	if in.tls != nil {
		ln = tls.NewListener(ln, in.tls)
	}
	in.addr = ln.Addr()
	close(in.ready)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
		stop  = make(chan struct{})
	)
	// Closing the listener and the connections is what unblocks Accept and
	// the readers when the input stops.
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	defer wg.Wait()
	defer close(stop)

	slots := make(chan struct{}, in.cfg.MaxConnections)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		conn, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			in.log.Warn("syslog accept failed", zap.Error(err))
			select {
			case <-time.After(100 * time.Millisecond):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		mu.Lock()
		conns[conn] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			in.serve(ctx, e, conn)
			mu.Lock()
			delete(conns, conn)
			mu.Unlock()
			conn.Close()
		}()
	}
}

const handshakeTimeout = 10 * time.Second

// errFraming is a stream that is not syslog framing; the connection is
// closed since its message boundaries are lost.
var errFraming = errors.New("bad octet-counted frame")

// serve reads one connection. It reads no further while a chunk waits for
// the pipeline, which is the backpressure TCP senders see.
func (in *Input) serve(ctx context.Context, e pipeline.Emitter, conn net.Conn) {
	peer := conn.RemoteAddr().String()
	if tc, ok := conn.(*tls.Conn); ok {
		// A client that never completes the handshake must not hold one
		// of max_connections for good.
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			in.log.Warn("syslog TLS handshake failed", zap.String("peer", peer), zap.Error(err))
			return
		}
	}
	if rb := int(in.cfg.ReceiveBuffer); rb > 0 {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(rb)
		}
	}
	src := e.NewSource("tcp:"+peer, nil)
	if in.cfg.Metadata {
		src.Fields = append(src.Fields[:len(src.Fields):len(src.Fields)], pipeline.Field{Key: "metadata",
			Value: []pipeline.Field{{Key: "peer", Value: peer}, {Key: "protocol", Value: "tcp"}}})
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	maxLine := int(in.cfg.MaxLineBytes)
	var (
		buf       []byte
		ends      []int
		truncated int
		off       int64
	)
	emit := func() bool {
		if len(ends) == 0 {
			return true
		}
		c, err := e.NewChunk(ctx, src, len(buf))
		if err != nil {
			return false
		}
		c.Buf = append(c.Buf, buf...)
		c.Ends, c.Truncated = ends, truncated
		off += int64(len(buf))
		c.End = off
		buf, ends, truncated = buf[:0], nil, 0
		return e.Emit(ctx, c) == nil
	}
	for {
		if in.cfg.IdleTimeout.D() > 0 && br.Buffered() == 0 {
			_ = conn.SetReadDeadline(time.Now().Add(in.cfg.IdleTimeout.D()))
		}
		start := len(buf)
		var cut bool
		var err error
		buf, cut, err = readFrame(br, in.cfg.Framing, maxLine, buf)
		if len(buf) > start {
			ends = append(ends, len(buf))
			if cut {
				truncated++
			}
		}
		if err != nil {
			emit()
			switch {
			case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), ctx.Err() != nil:
			case errors.Is(err, errFraming):
				in.log.Warn("syslog connection closed: not syslog framing", zap.String("peer", peer), zap.Error(err))
			default:
				in.log.Info("syslog connection ended", zap.String("peer", peer), zap.Error(err))
			}
			return
		}
		if br.Buffered() == 0 || len(buf) >= chunkBytes {
			if !emit() {
				return
			}
		}
	}
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// readFrame appends the next message to buf, cut to maxLine bytes (cut
// reports it), without its newline terminator. An empty line adds nothing.
func readFrame(br *bufio.Reader, framing string, maxLine int, buf []byte) ([]byte, bool, error) {
	if framing != "newline" {
		// Octet-counted senders may put newlines between frames.
		for {
			b, err := br.Peek(1)
			if err != nil {
				return buf, false, err
			}
			if b[0] != '\n' && b[0] != '\r' {
				break
			}
			_, _ = br.ReadByte()
		}
		b, _ := br.Peek(1)
		if isDigit(b[0]) {
			return readOctets(br, maxLine, buf)
		}
		if framing == "octet_counted" {
			return buf, false, fmt.Errorf("%w: %q is not a length", errFraming, b[0])
		}
	}
	start, seen := len(buf), 0
	for {
		piece, err := br.ReadSlice('\n')
		if keep := min(len(piece), maxLine+1-seen); keep > 0 {
			buf = append(buf, piece[:keep]...)
		}
		seen += len(piece)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		msg := buf[start:]
		if n := len(msg); n > 0 && msg[n-1] == '\n' {
			msg = msg[:n-1]
			seen--
		}
		if n := len(msg); n > 0 && msg[n-1] == '\r' {
			msg = msg[:n-1]
			seen--
		}
		// seen is the message's length, or more when it was cut before
		// its terminator: either way above maxLine means cut.
		cut := seen > maxLine
		msg = msg[:min(len(msg), maxLine)]
		buf = buf[:start+len(msg)]
		if err != nil && len(msg) > 0 && errors.Is(err, io.EOF) {
			return buf, cut, nil // a last message without its newline
		}
		return buf, cut, err
	}
}

// maxFrame bounds an octet count; a larger one is not syslog.
const maxFrame = 64 << 20

func readOctets(br *bufio.Reader, maxLine int, buf []byte) ([]byte, bool, error) {
	n, digits := 0, 0
	for {
		b, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) && digits > 0 {
				err = fmt.Errorf("%w: stream ended inside a length", errFraming)
			}
			return buf, false, err
		}
		if b == ' ' && digits > 0 {
			break
		}
		if !isDigit(b) || digits >= 9 {
			return buf, false, fmt.Errorf("%w: byte %q in a length", errFraming, b)
		}
		n = n*10 + int(b-'0')
		digits++
	}
	if n > maxFrame {
		return buf, false, fmt.Errorf("%w: length %d above %d", errFraming, n, maxFrame)
	}
	keep := min(n, maxLine)
	start := len(buf)
	buf = append(buf, make([]byte, keep)...)
	if _, err := io.ReadFull(br, buf[start:]); err != nil {
		return buf[:start], false, fmt.Errorf("%w: stream ended inside a %d-byte message", errFraming, n)
	}
	if _, err := br.Discard(n - keep); err != nil {
		return buf[:start], false, fmt.Errorf("%w: stream ended inside a %d-byte message", errFraming, n)
	}
	if l := len(buf); l > start && buf[l-1] == '\n' {
		buf = buf[:l-1]
	}
	return buf, n > maxLine, nil
}
