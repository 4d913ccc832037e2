package harness

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes where a report was measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	OS       string `json:"os"`
	MemGiB   int    `json:"mem_gib"`
	Go       string `json:"go"`
	Tree     string `json:"tree"`
	// Virt describes virtualization that changes what a syscall costs.
	Virt string `json:"virt,omitempty"`
}

func describeMachine(ctx context.Context, modRoot string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		n := 0
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch strings.TrimSpace(k) {
			case "processor":
				n++
			case "model name":
				if m.CPUModel == "" {
					m.CPUModel = strings.TrimSpace(v)
				}
			}
		}
		if n > 0 {
			m.CPUs = n
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				m.MemGiB = int((kb + 512*1024) / (1024 * 1024))
			}
		}
	}
	m.Tree = treeRevision(ctx, modRoot)
	m.Virt = virtualization()
	return m
}

// virtualization names what makes syscalls and context switches expensive
// here: a guest without hardware-assisted page tables (PVM) or with page-table
// isolation turns each into a trip through the hypervisor or a TLB flush.
func virtualization() string {
	var parts []string
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil && strings.Contains(string(b), " hypervisor") {
		parts = append(parts, "virtual machine")
	}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil && strings.Contains(string(b), "pvm") {
		parts = append(parts, "PVM guest (software-virtualized page tables)")
	}
	if b, err := os.ReadFile("/sys/devices/system/cpu/vulnerabilities/meltdown"); err == nil && strings.Contains(string(b), "PTI") {
		parts = append(parts, "kernel page-table isolation on")
	}
	return strings.Join(parts, ", ")
}

// treeRevision names the commit the tree is at, "+dirty" if it has changes.
func treeRevision(ctx context.Context, modRoot string) string {
	rev, err := run(ctx, modRoot, "git", "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	if st, err := run(ctx, modRoot, "git", "status", "--porcelain"); err == nil && st != "" {
		rev += "+dirty"
	}
	return rev
}

// debVersion returns the installed Debian package version of pkg, or "".
func debVersion(ctx context.Context, pkg string) string {
	v, err := run(ctx, "/", "dpkg-query", "-W", "-f=${Version}", pkg)
	if err != nil {
		return ""
	}
	return v
}
