//go:build unix && !linux

package wire

import (
	"errors"
	"net"
	"syscall"
)

// sysProcAttr puts the plugin in a process group of its own. Only Linux
// kills a plugin whose gateway died (Pdeathsig).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// setLimits is supported on Linux only.
func setLimits(pid int, l Limits) error {
	if l != (Limits{}) {
		return errors.New("process limits are supported on Linux only")
	}
	return nil
}

// peerPID is not supported here: the host does not ask for frames.
func peerPID(*net.UnixConn) (int, error) { return 0, errors.New("peer credentials not supported") }
