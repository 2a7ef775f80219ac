package syslog

import (
	"encoding/binary"
	"net"

	"golang.org/x/sys/unix"
)

// watchDrops asks the kernel to report, with every datagram, how many it
// dropped on this socket because its receive buffer was full; the returned
// function reads that count from a datagram's control message.
func watchDrops(pc *net.UDPConn) func(oob []byte) (uint32, bool) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return noDrops
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	}); err != nil || serr != nil {
		return noDrops
	}
	return func(oob []byte) (uint32, bool) {
		msgs, err := unix.ParseSocketControlMessage(oob)
		if err != nil {
			return 0, false
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4 {
				return binary.NativeEndian.Uint32(m.Data), true
			}
		}
		return 0, false
	}
}
