// Package timerfd sleeps with microsecond precision without holding an OS
// thread: it arms a Linux timerfd and waits for it through Go's network
// poller.
//
// Go's own timers are precise while the process is busy, but an idle process
// waits in epoll with millisecond granularity, so time.Sleep(50*time.Microsecond)
// may take a millisecond. That would add up to a millisecond of the load
// generator's lag to every latency it measures, and make a backend's "1ms
// delay" anything from 1 to 2 ms. A timerfd becomes readable when its
// high-resolution timer fires, and the poller wakes for a readable descriptor
// at once.
package timerfd

import (
	"encoding/binary"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"
)

const (
	clockMonotonic = 1
	tfdNonblock    = syscall.O_NONBLOCK
	tfdCloexec     = syscall.O_CLOEXEC
)

// Timer is one timerfd. It is used by one goroutine at a time.
type Timer struct {
	f   *os.File
	buf [8]byte
}

// New creates a timer.
func New() (*Timer, error) {
	fd, _, errno := syscall.Syscall(syscall.SYS_TIMERFD_CREATE, clockMonotonic, tfdNonblock|tfdCloexec, 0)
	if errno != 0 {
		return nil, fmt.Errorf("timerfd_create: %w", errno)
	}
	// A non-blocking descriptor passed to os.NewFile is registered with the
	// runtime's poller, so Read parks the goroutine rather than the thread.
	return &Timer{f: os.NewFile(fd, "timerfd")}, nil
}

type itimerspec struct {
	interval syscall.Timespec
	value    syscall.Timespec
}

// Sleep returns after d. A d of zero or less returns at once.
func (t *Timer) Sleep(d time.Duration) error {
	if d <= 0 {
		return nil
	}
	spec := itimerspec{value: syscall.NsecToTimespec(int64(d))}
	raw, err := t.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall6(syscall.SYS_TIMERFD_SETTIME, fd, 0, uintptr(unsafe.Pointer(&spec)), 0, 0, 0)
	}); err != nil {
		return err
	}
	if errno != 0 {
		return fmt.Errorf("timerfd_settime: %w", errno)
	}
	if _, err := t.f.Read(t.buf[:]); err != nil {
		return fmt.Errorf("timerfd read: %w", err)
	}
	if binary.NativeEndian.Uint64(t.buf[:]) == 0 {
		return fmt.Errorf("timerfd read: no expiration")
	}
	return nil
}

// Close releases the descriptor.
func (t *Timer) Close() error { return t.f.Close() }
