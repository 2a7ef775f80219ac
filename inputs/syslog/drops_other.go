//go:build !linux

package syslog

import "net"

// watchDrops: only Linux reports the datagrams it dropped.
func watchDrops(*net.UDPConn) func(oob []byte) (uint32, bool) { return noDrops }
