//go:build unix

package tcp

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
	"time"
)

// healthy reports whether the receiver has not closed or reset the
// connection. It peeks at the socket without blocking: EOF or a reset means
// the receiver is gone, and a write now would succeed into a dead socket's
// buffer and vanish. (A read with an expired deadline cannot tell: Go
// returns the timeout without looking at the socket.)
//
// Receivers do not send on these protocols, but a TLS server may (session
// tickets, a close_notify alert): pending bytes are read through the
// connection, so TLS processes them, and the check is made again.
func healthy(c net.Conn) bool {
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	sc, ok := raw.(syscall.Conn)
	if !ok {
		return true // cannot tell; the write will find out
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [512]byte
	for range 16 {
		var n int
		var perr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, perr = syscall.Recvfrom(int(fd), buf[:1], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			return true // one look, never wait
		}); err != nil {
			return false
		}
		switch {
		case errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK):
			return true
		case perr != nil, n == 0:
			return false // reset, or EOF
		}
		// Bytes are waiting: consume them the way the protocol would.
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, err := c.Read(buf[:])
		c.SetReadDeadline(time.Time{})
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return false
		}
	}
	return true // a receiver that keeps talking is at least alive
}
