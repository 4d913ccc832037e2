// Package redistest runs a real redis-server on a free loopback port for
// tests. Without redis-server on PATH the test is skipped, unless
// GATEHOUSE_REQUIRE_REDIS=1 (as in CI), where it fails.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Server is a redis-server process.
type Server struct {
	Addr string
	t    testing.TB
	dir  string
	cmd  *exec.Cmd
	port int
}

// Start runs redis-server on a free loopback port, without persistence,
// in a temporary directory; it is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("GATEHOUSE_REQUIRE_REDIS") == "1" {
			t.Fatalf("redis-server not on PATH and GATEHOUSE_REQUIRE_REDIS=1: %v", err)
		}
		t.Skip("redis-server not on PATH (install it, e.g. apt-get install redis-server); set GATEHOUSE_REQUIRE_REDIS=1 to fail instead")
	}
	s := &Server{t: t, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		if err := s.run(); err == nil {
			break
		} else if attempt == 4 {
			t.Fatalf("redis-server: %v", err)
		}
	}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.port)
	t.Cleanup(s.Stop)
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run starts the process on s.port and waits until it answers PING.
func (s *Server) run() error {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--protected-mode", "yes", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited at start: %v", err)
		default:
		}
		if ping("127.0.0.1:"+strconv.Itoa(s.port)) == nil {
			s.cmd = cmd
			go func() { <-exited }()
			return nil
		}
		time.Sleep(10 * time.Millisecond) // polling for readiness, bounded by deadline
	}
	cmd.Process.Kill()
	return fmt.Errorf("did not answer PING within 10s")
}

// ping sends PING and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Stop kills the server (idempotent).
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	// Wait until the port no longer answers.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && ping(s.Addr) == nil {
		time.Sleep(5 * time.Millisecond)
	}
	s.cmd = nil
}

// Restart starts the server again on the same port (after Stop).
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.run()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("redis-server restart on port %d: %v", s.port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
