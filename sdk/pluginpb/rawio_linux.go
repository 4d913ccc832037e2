//go:build linux

package pluginpb

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a Unix socket (non-blocking, in the Go
// netpoller) with raw system calls: a read or write of a non-blocking
// socket never blocks, so it can skip the runtime's entersyscall and
// exitsyscall, whose wake-up of the sysmon thread (asleep whenever the
// process waits for the other end, i.e. on every call) costs a futex
// wake-up and a thread switch per system call, which on a VM is a good
// part of a call's CPU. Waiting (for data, or for room to write) is the
// netpoller's, as for net.Conn, read deadlines included.
type rawConn struct {
	c  *net.UnixConn
	rc syscall.RawConn
	// The system calls, made once (a closure per call would be allocated),
	// with their arguments and results: Read is called by one goroutine at
	// a time (bufio.Reader's), Write too (the stream serialises sends).
	readFn, writeFn func(fd uintptr) bool
	rp, wp          []byte
	rn, wn          int
	rerr, werr      syscall.Errno
}

// NewRawConn returns the reader and writer of a framed call socket: a
// rawConn, or c itself. The gateway and the plugin both use it.
func NewRawConn(c *net.UnixConn) io.ReadWriter {
	rc, err := c.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{c: c, rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
}

func (r *rawConn) read(fd uintptr) bool {
	for {
		k, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&r.rp[0])), uintptr(len(r.rp)))
		switch e {
		case 0:
			r.rn = int(k)
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait in the netpoller
		}
		r.rerr = e
		return true
	}
}

func (r *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rp, r.rn, r.rerr = p, 0, 0
	err := r.rc.Read(r.readFn)
	n, errno := r.rn, r.rerr
	r.rp = nil
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, os.NewSyscallError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawConn) write(fd uintptr) bool {
	for r.wn < len(r.wp) {
		b := r.wp[r.wn:]
		k, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			r.wn += int(k)
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait for room in the netpoller
		}
		r.werr = e
		return true
	}
	return true
}

func (r *rawConn) Write(p []byte) (int, error) {
	r.wp, r.wn, r.werr = p, 0, 0
	err := r.rc.Write(r.writeFn)
	n, errno := r.wn, r.werr
	r.wp = nil
	switch {
	case err != nil:
		return n, err
	case errno != 0:
		return n, os.NewSyscallError("write", errno)
	}
	return n, nil
}
