package plugins

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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

// Binaries built once by TestMain, in one go build.
var bin struct {
	misbehave, authz, quota, rawframes string
	// misbehave2 is misbehave built with main.build=2: other code.
	misbehave2 string
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plugins-test-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		pkgs := []string{"./testdata/misbehave", "./testdata/rawframes", "../examples/plugins/authz", "../examples/plugins/quota"}
		for _, args := range [][]string{
			append([]string{"build", "-o", dir + "/"}, pkgs...),
			{"build", "-o", filepath.Join(dir, "misbehave2"), "-ldflags", "-X main.build=2", "./testdata/misbehave"},
		} {
			if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(args, " "), err, out)
				return 1
			}
		}
		bin.misbehave, bin.authz, bin.quota = filepath.Join(dir, "misbehave"), filepath.Join(dir, "authz"), filepath.Join(dir, "quota")
		bin.rawframes, bin.misbehave2 = filepath.Join(dir, "rawframes"), filepath.Join(dir, "misbehave2")
		code := m.Run()
		if code == 0 {
			// Every Host closed: none of its goroutines may be left.
			if err := goleak.Find(); err != nil {
				fmt.Fprintln(os.Stderr, "goroutines left after the tests:", err)
				return 1
			}
		}
		return code
	}()
	os.Exit(code)
}

var _ = sdktest.NewRequest // the examples are also run through sdktest in their own packages

// logBuffer collects a Host's log lines, safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is the plugin environment the tests use.
type env struct {
	t    *testing.T
	base string // socket base directory
	log  *logBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	base, err := os.MkdirTemp("", "gh-")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, base: base, log: &logBuffer{}}
	t.Cleanup(func() {
		// No socket directory, no socket file left once every Host closed.
		entries, _ := os.ReadDir(base)
		for _, ent := range entries {
			t.Errorf("left in the socket directory: %s", ent.Name())
		}
		os.RemoveAll(base)
		// Runs after every Host of the test closed (cleanups run last
		// registered first).
		if kids := children(); len(kids) > 0 {
			t.Errorf("child processes left after Close: %v", kids)
		}
		if t.Failed() {
			t.Logf("host log:\n%s", e.log.String())
		}
	})
	return e
}

func (e *env) options(path string) Options {
	o := DefaultOptions()
	o.Name = "mb"
	o.Path = path
	o.SocketDir = e.base
	o.StartTimeout = 5 * time.Second
	o.Logger = zerolog.New(e.log)
	o.Watch = false
	return o
}

// start starts a Host and closes it with the test, checking that no
// process it ran is left.
func (e *env) start(o Options) *Host {
	e.t.Helper()
	h, err := Start(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		pids := pidsSeen(h)
		h.Close()
		if _, err := os.Stat(h.Dir()); !errors.Is(err, os.ErrNotExist) {
			e.t.Errorf("socket directory %s still there after Close (%v)", h.Dir(), err)
		}
		for _, pid := range pids {
			if alive(pid) {
				e.t.Errorf("plugin process %d still alive after Close", pid)
			}
		}
	})
	return h
}

// pidsSeen returns the PID serving now (0 when down).
func pidsSeen(h *Host) []int {
	if pid := h.Stats().PID; pid > 0 {
		return []int{pid}
	}
	return nil
}

// alive reports whether process pid exists (a zombie counts as alive: the
// host must reap its processes).
func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

// children lists the test process's child processes (from /proc).
func children() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; cut at the last ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == self {
				out = append(out, pid)
			}
		}
	}
	return out
}

// eventually polls cond every few milliseconds until it holds or the
// deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond) // poll interval, not a wait for the condition
	}
}

func validate(h *Host, timeout time.Duration, header ...string) (sdk.ValidateDecision, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return h.Current().Impl.(sdk.Validator).Validate(ctx, sdktest.NewRequest("GET", "/x", header...))
}

// nopStamper is a passport that records nothing.
type nopStamper struct{}

func (nopStamper) Hook(bool, string) {}
