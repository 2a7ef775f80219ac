package syslog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tailship/tailship/pipeline"
)

func (in *Input) runUDP(ctx context.Context, e pipeline.Emitter) error {
	laddr, err := net.ResolveUDPAddr("udp", in.cfg.Address)
	if err != nil {
		return fmt.Errorf("syslog resolve udp %s: %w", in.cfg.Address, err)
	}
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return fmt.Errorf("syslog listen on udp %s: %w", in.cfg.Address, err)
	}
	if rb := int(in.cfg.ReceiveBuffer); rb > 0 {
		if err := pc.SetReadBuffer(rb); err != nil {
			in.log.Warn("syslog receive_buffer not set", zap.Error(err))
		}
	}
	overflow := watchDrops(pc)
	in.addr = pc.LocalAddr()
	close(in.ready)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		pc.Close()
	}()
	defer wg.Wait()
	defer close(stop)

	src := e.NewSource("udp:"+in.addr.String(), nil)
	dropped := in.stats.Dropped("udp_receive_overflow")
	maxLine := int(in.cfg.MaxLineBytes)
	pkt := make([]byte, 64<<10)
	oob := make([]byte, 128)
	var (
		buf       []byte
		ends      []int
		meta      [][]pipeline.Field
		truncated int
		off       int64
		kernel    uint32 // the socket's drop count as the kernel last told it
	)
	emit := func() error {
		_ = pc.SetReadDeadline(time.Time{})
		if len(ends) == 0 {
			return nil
		}
		c, err := e.NewChunk(ctx, src, len(buf))
		if err != nil {
			return err
		}
		c.Buf = append(c.Buf, buf...)
		c.Ends, c.Meta, c.Truncated = ends, meta, truncated
		off += int64(len(buf))
		c.End = off
		buf, ends, meta, truncated = buf[:0], nil, nil, 0
		return e.Emit(ctx, c)
	}
	for {
		n, oobn, _, raddr, err := pc.ReadMsgUDP(pkt, oob)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// No further datagram within flushAfter: ship what came.
				if emit() != nil {
					return nil
				}
				continue
			}
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			in.log.Warn("syslog udp read failed", zap.Error(err))
			continue
		}
		if d, ok := overflow(oob[:oobn]); ok && d != kernel {
			dropped.Add(int64(d - kernel))
			kernel = d
		}
		msg := pkt[:n]
		for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r' || msg[len(msg)-1] == 0) {
			msg = msg[:len(msg)-1]
		}
		if len(msg) == 0 {
			continue
		}
		if len(msg) > maxLine {
			msg = msg[:maxLine]
			truncated++
		}
		if len(ends) == 0 {
			_ = pc.SetReadDeadline(time.Now().Add(flushAfter))
		}
		buf = append(buf, msg...)
		ends = append(ends, len(buf))
		if in.cfg.Metadata {
			meta = append(meta, []pipeline.Field{{Key: "metadata", Value: []pipeline.Field{
				{Key: "peer", Value: raddr.String()}, {Key: "protocol", Value: "udp"}}}})
		}
		if len(buf) >= chunkBytes {
			if emit() != nil {
				return nil
			}
		}
	}
}
