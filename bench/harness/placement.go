package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Placement says which CPU each role runs on. On a machine with two or more
// CPUs the proxy gets one CPU to itself and everything else shares another;
// with one CPU nothing is pinned.
type Placement struct {
	// Pinned is false when there are too few CPUs or no taskset.
	Pinned bool
	// ProxyCPU and LoadCPU are CPU numbers as taskset takes them.
	ProxyCPU, LoadCPU int
	// Why explains an unpinned placement.
	Why string
	// Prio is the scheduling priority of the processes the harness starts.
	Prio    Prio
	taskset string
}

// Prio is how the harness's processes are scheduled against the rest of the
// machine.
type Prio string

// Priorities. On a shared machine other processes delay every wake-up of a
// proxy, a backend or a generator by milliseconds; only PrioRT keeps that out
// of the numbers (measured here: a tuned ReverseProxy saturated at 18k req/s
// with PrioRT, 16k with PrioNice and 0.2-1.4k with PrioNone while other
// sessions ran tests).
const (
	// PrioNone leaves scheduling alone.
	PrioNone Prio = "none"
	// PrioNice puts each process in its own session and so its own
	// autogroup, at niceness -20: a larger fair share, no hard priority.
	PrioNice Prio = "nice"
	// PrioRT runs the processes SCHED_FIFO 1 (`chrt -f 1`): they run as
	// soon as they are runnable. The kernel's RT throttling (by
	// default 95% of each CPU) still leaves other processes some time.
	PrioRT Prio = "rt"
)

// detectPlacement picks the first two CPUs this process may run on.
func detectPlacement() Placement {
	cpus := allowedCPUs()
	ts, err := exec.LookPath("taskset")
	switch {
	case len(cpus) < 2:
		return Placement{Why: fmt.Sprintf("only %d CPU available", len(cpus))}
	case err != nil:
		return Placement{Why: "taskset not found"}
	}
	return Placement{Pinned: true, LoadCPU: cpus[0], ProxyCPU: cpus[1], taskset: ts}
}

// allowedCPUs parses Cpus_allowed_list of this process.
func allowedCPUs() []int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "Cpus_allowed_list:")
		if !ok {
			continue
		}
		var cpus []int
		for part := range strings.SplitSeq(strings.TrimSpace(v), ",") {
			lo, hi, isRange := strings.Cut(part, "-")
			a, err := strconv.Atoi(lo)
			if err != nil {
				continue
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil {
					continue
				}
			}
			for c := a; c <= b; c++ {
				cpus = append(cpus, c)
			}
		}
		return cpus
	}
	return nil
}

func (p Placement) cpu(role Role) int {
	if role == RoleProxy {
		return p.ProxyCPU
	}
	return p.LoadCPU
}

// wrap prefixes argv with taskset for the role's CPU. taskset execs argv, so
// the process id is argv's own.
func (p Placement) wrap(role Role, argv []string) []string {
	if p.Pinned {
		argv = append([]string{p.taskset, "-c", strconv.Itoa(p.cpu(role))}, argv...)
	}
	switch p.Prio {
	case PrioRT:
		// One priority for all: a generator above the backend on the same
		// CPU made loopback latencies collapse (hundreds of ms at a third of
		// a CPU), presumably by starving the softirq work both depend on.
		argv = append([]string{"chrt", "-f", "1"}, argv...)
	case PrioNice:
		argv = append([]string{"nice", "-n", "-20"}, argv...)
	}
	return argv
}

// command returns the command for argv placed by role, in its own process
// group (and, for PrioNice, its own session), killed if the harness dies.
func (p Placement) command(ctx context.Context, role Role, argv []string) *exec.Cmd {
	argv = p.wrap(role, argv)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if p.Prio == PrioNice {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
	}
	// A context's cancellation ends the whole group (nginx's workers too).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// started finishes the placement of a started process: for PrioNice it
// raises the priority of the process's autogroup.
func (p Placement) started(pid int) {
	if p.Prio == PrioNice {
		os.WriteFile("/proc/"+strconv.Itoa(pid)+"/autogroup", []byte("-20"), 0)
	}
}

// PinSelf moves every thread of this process to the load CPU, so that the
// harness never runs on the proxy's CPU. Threads created later inherit it.
func (p Placement) PinSelf() error {
	if !p.Pinned {
		return nil
	}
	var mask [16]uint64
	mask[p.LoadCPU/64] |= 1 << (p.LoadCPU % 64)
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, ent := range ents {
		tid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask)))
		if errno != 0 && errno != syscall.ESRCH {
			return fmt.Errorf("sched_setaffinity(%d): %w", tid, errno)
		}
	}
	return nil
}

// Describe returns the placement as lines for a report.
func (p Placement) Describe() []string {
	var prio string
	switch p.Prio {
	case PrioRT:
		prio = "priority: proxy, backend and load generators run SCHED_FIFO 1 (`chrt -f 1`), so that other processes on the shared machine do not delay their wake-ups"
	case PrioNice:
		prio = "priority: proxy, backend and load generators each in their own autogroup at niceness -20"
	default:
		prio = "priority: default scheduling (other processes on the machine may delay the measured ones)"
	}
	if !p.Pinned {
		return []string{"unpinned: " + p.Why + "; proxies still run with GOMAXPROCS=1 / one worker", prio}
	}
	return []string{
		fmt.Sprintf("proxy under test: CPU %d alone (`taskset -c %d`); Go proxies (gatehouse, stdproxy, caddy) with GOMAXPROCS=1, nginx `worker_processes 1`, HAProxy `nbthread 1`", p.ProxyCPU, p.ProxyCPU),
		fmt.Sprintf("backend, load generators and harness: CPU %d (`taskset -c %d`); backend and loadgen with GOMAXPROCS=1, wrk with `-t1`", p.LoadCPU, p.LoadCPU),
		prio,
	}
}
