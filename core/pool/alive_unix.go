//go:build unix

package pool

import (
	"net"
	"syscall"
)

// alive peeks at an idle connection without blocking: a connection the
// endpoint closed reads EOF, one it wrote to unasked has data, and a healthy
// idle one would block.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	cerr := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	})
	return cerr == nil && ok
}
