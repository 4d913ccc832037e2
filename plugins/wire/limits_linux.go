package wire

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// setLimits applies l to the running process pid with prlimit(2).
func setLimits(pid int, l Limits) error {
	for _, lim := range []struct {
		name     string
		resource int
		value    uint64
	}{
		{"memory_bytes (RLIMIT_AS)", unix.RLIMIT_AS, l.MemoryBytes},
		{"open_files (RLIMIT_NOFILE)", unix.RLIMIT_NOFILE, l.OpenFiles},
		{"cpu_seconds (RLIMIT_CPU)", unix.RLIMIT_CPU, l.CPUSeconds},
	} {
		if lim.value == 0 {
			continue
		}
		rl := unix.Rlimit{Cur: lim.value, Max: lim.value}
		if err := unix.Prlimit(pid, lim.resource, &rl, nil); err != nil {
			return fmt.Errorf("%s = %d: %w", lim.name, lim.value, err)
		}
	}
	return nil
}
