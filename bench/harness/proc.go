package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux reports them
// in USER_HZ, which is 100 on every architecture the kernel exports to user
// space, whatever the kernel's internal tick rate.
const userHZ = 100

// Role says where a process is placed.
type Role int

// Roles of the processes a run starts.
const (
	// RoleProxy is the system under test.
	RoleProxy Role = iota
	// RoleBackend is the backend; it shares the load CPU.
	RoleBackend
	// RoleGenerator is a load generator, on the load CPU.
	RoleGenerator
)

// Process is a child process started by the harness, in its own process group
// so that Stop also ends the children it forked (nginx's workers).
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	logf    *os.File
	done    chan struct{}
	waitErr error
}

// StartProcess starts argv placed by role, with extra environment variables,
// logging its stdout and stderr to a file in the work directory.
func (e *Env) StartProcess(name string, role Role, extraEnv []string, argv ...string) (*Process, error) {
	logPath := filepath.Join(e.WorkDir, "logs", name+".log")
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := e.Placement.command(context.Background(), role, argv)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = e.WorkDir
	fmt.Fprintf(logf, "# %s\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	e.Placement.started(cmd.Process.Pid)
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, logf: logf, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after two seconds.
func (p *Process) Stop() {
	if exited, _ := p.Exited(); exited {
		return
	}
	pgid := p.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived their parent would still be in the group.
	syscall.Kill(-pgid, syscall.SIGKILL)
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TreeUsage is the CPU time and peak resident memory of a process and all its
// descendants.
type TreeUsage struct {
	CPU       time.Duration
	PeakRSSKB int64
	Procs     int
}

// Usage reads the usage of the process's tree from /proc.
func (p *Process) Usage() (TreeUsage, error) { return treeUsage(p.PID()) }

type procStat struct {
	ppid         int
	utime, stime int64
}

// parseStat parses /proc/PID/stat; the command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return procStat{}, errors.New("short stat")
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStat{}, fmt.Errorf("malformed stat: %w", err)
	}
	return procStat{ppid: ppid, utime: ut, stime: st}, nil
}

func treeUsage(root int) (TreeUsage, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return TreeUsage{}, err
	}
	stats := map[int]procStat{}
	children := map[int][]int{}
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseStat(b)
		if err != nil {
			continue
		}
		stats[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	if _, ok := stats[root]; !ok {
		return TreeUsage{}, fmt.Errorf("process %d not found", root)
	}
	var u TreeUsage
	var ticks int64
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		st := stats[pid]
		ticks += st.utime + st.stime
		u.PeakRSSKB += vmHWM(pid)
		u.Procs++
		queue = append(queue, children[pid]...)
	}
	u.CPU = time.Duration(ticks) * time.Second / userHZ
	return u, nil
}

// vmHWM returns a process's peak resident set size in KiB, or 0.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// selfCPU returns the CPU time of this process (all threads).
func selfCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	st, err := parseStat(b)
	if err != nil {
		return 0
	}
	return time.Duration(st.utime+st.stime) * time.Second / userHZ
}

// systemBusy returns the CPU time all CPUs spent not idle, from /proc/stat.
func systemBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, s := range f[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // guest and guest_nice are already in user and nice
			break
		}
		n, _ := strconv.ParseInt(s, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / userHZ
}
