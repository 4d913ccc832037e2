package wire

import (
	"net"
	"syscall"
)

// sysProcAttr puts the plugin in a process group of its own (a signal to
// the gateway's terminal group does not reach it; a kill of the group
// reaches the children it started) and asks the kernel to SIGKILL it when
// the gateway dies, so that a crashed gateway leaves no orphan. (Linux
// sends the signal when the thread that started the plugin exits; Go keeps
// its threads unless a goroutine locked to one exits, which the gateway
// does not do.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// peerPID returns the process ID of the other end of conn (SO_PEERCRED).
func peerPID(conn *net.UnixConn) (int, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return int(cred.Pid), nil
}
