package plugins

import (
	"fmt"
	"os"
	"syscall"
)

// stNoexec is ST_NOEXEC of statfs(2): programs on the file system cannot
// be executed.
const stNoexec = 0x8

// checkExec fails when programs in dir cannot run: the private copies of
// the plugin binaries are executed from there.
func checkExec(dir string) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // the copy or its start says what is wrong
	}
	if st.Flags&stNoexec != 0 {
		return fmt.Errorf("the plugin directory %s is on a file system mounted noexec, where the private copy of the binary cannot run: "+
			"point TMPDIR (Options.SocketDir) at a directory where programs may run", dir)
	}
	return nil
}

// fileID returns the device and inode of fi and its change time (Unix ns).
func fileID(fi os.FileInfo) (dev, ino uint64, ctime int64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino), st.Ctim.Nano()
	}
	return 0, 0, 0
}
