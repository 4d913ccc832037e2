// Command ipcfloor measures the floor of any out-of-process hook call on
// this machine: a 64-byte ping-pong between two Go processes over a Unix
// socketpair, one round trip at a time (what a plugin call cannot beat).
//
//	go run ./bench/cmd/ipcfloor
//
// It prints the mean and the p50/p99 of a round trip and the parent's CPU
// per round trip (the child's is about the same).
package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"
)

// cpu is the CPU time this process has used.
func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	if len(os.Args) > 1 {
		// The child: echo until the parent closes the socket.
		c, err := net.FileConn(os.NewFile(3, "s"))
		if err != nil {
			os.Exit(1)
		}
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
		}
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcfloor:", err)
		os.Exit(1)
	}
	cmd := exec.Command(os.Args[0], "child")
	child := os.NewFile(uintptr(fds[1]), "c")
	cmd.ExtraFiles = []*os.File{child}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "ipcfloor:", err)
		os.Exit(1)
	}
	child.Close() // the child has its copy
	parent := os.NewFile(uintptr(fds[0]), "p")
	c, err := net.FileConn(parent)
	parent.Close() // c has its own descriptor
	if err != nil {
		fmt.Fprintln(os.Stderr, "ipcfloor:", err)
		os.Exit(1)
	}
	buf := make([]byte, 64)
	const N = 20000
	lat := make([]time.Duration, N)
	c0 := cpu()
	t0 := time.Now()
	for i := 0; i < N; i++ {
		s := time.Now()
		c.Write(buf)
		c.Read(buf)
		lat[i] = time.Since(s)
	}
	el := time.Since(t0)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Printf("%d round trips of 64 bytes: mean %v, p50 %v, p99 %v; parent CPU per round trip %v\n", N, el/N, lat[N/2], lat[N*99/100], (cpu()-c0)/N)
	c.Close()
	cmd.Wait()
}
