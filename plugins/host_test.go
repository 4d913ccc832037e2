package plugins

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

func TestStartServesAndCloses(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.Config = []byte(`{"version": "v1"}`)
	h := e.start(o)
	v := h.Current()
	if !v.Wait || v.Phases != sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseShape, sdk.PhaseRespond) || len(v.ID) != 12 {
		t.Fatalf("version = %+v", v)
	}
	d, err := validate(h, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Labels["version"] != "v1" || d.Labels["pid"] != strconv.Itoa(h.Stats().PID) {
		t.Fatalf("labels = %v", d.Labels)
	}
	st := h.Stats()
	if !st.Up || st.Calls != 1 || st.Transport != wire.TransportFrames {
		t.Fatalf("stats = %+v", st)
	}
	pid := st.PID
	h.Close()
	if alive(pid) {
		t.Fatalf("plugin %d alive after Close", pid)
	}
	// After Close the version stays, and its calls fail fast.
	if _, err := validate(h, time.Second); wire.KindOf(err) != wire.KindUnavailable {
		t.Fatalf("call after Close: %v", err)
	}
}

// TestVersionID: the version is a hash of binary and configuration.
func TestVersionID(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	id1, _ := versionID(o, []byte(`{"version":"a"}`))
	id2, _ := versionID(o, []byte(`{"version":"b"}`))
	other := filepath.Join(t.TempDir(), "other")
	copyFile(t, bin.misbehave, other, "another build")
	id3, _ := versionID(e.options(other), []byte(`{"version":"a"}`))
	again, _ := versionID(o, []byte(`{"version":"a"}`))
	if id1 == id2 || id1 == id3 || id1 != again {
		t.Fatalf("ids %s %s %s %s", id1, id2, id3, again)
	}
}

func TestStartFailures(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(*Options)
		want   []string
		within time.Duration
	}{
		{"exits at start", func(o *Options) { o.Env = []string{"MISBEHAVE_START=exit"} },
			[]string{"exit status 3", "misbehave: refusing to start"}, 5 * time.Second},
		{"writes garbage to stdout", func(o *Options) { o.Env = []string{"MISBEHAVE_START=garbage"} },
			[]string{"hello, I am not a handshake", "not a Gatehouse plugin, or it wrote to stdout before plugin.Serve"}, 5 * time.Second},
		{"hangs at start", func(o *Options) { o.Env = []string{"MISBEHAVE_START=hang"}; o.StartTimeout = 300 * time.Millisecond },
			[]string{"did not start", "not done within the start timeout (300ms)", "timeout while waiting for plugin to start"}, 300*time.Millisecond + time.Second},
		{"refuses its configuration", func(o *Options) { o.Config = []byte(`{"fail": "no database configured"}`) },
			[]string{"the plugin refused its configuration: no database configured"}, 5 * time.Second},
		{"not a plugin", func(o *Options) { o.Path = "/bin/true" },
			[]string{"did not start"}, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			o := e.options(bin.misbehave)
			c.mutate(&o)
			start := time.Now()
			h, err := Start(context.Background(), o)
			if err == nil {
				h.Close()
				t.Fatal("Start succeeded")
			}
			if el := time.Since(start); el > c.within {
				t.Errorf("failed after %s, want within %s", el, c.within)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if kids := children(); len(kids) > 0 {
				t.Errorf("child processes left: %v", kids)
			}
		})
	}
}

func TestOptionsValidation(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		mutate func(*Options)
		want   string
	}{
		{func(o *Options) { o.Name = "" }, "Options.Name"},
		{func(o *Options) { o.Path = "/nonexistent/plugin" }, "Options.Path"},
		{func(o *Options) { o.Path = e.base }, "not an executable"},
		{func(o *Options) { o.StartTimeout = 0 }, "Options.StartTimeout = 0s is out of range"},
		{func(o *Options) { o.MaxConcurrent = -1 }, "Options.MaxConcurrent"},
		{func(o *Options) { o.CacheEntries = 10; o.CacheMaxTTL = 0 }, "Options.CacheMaxTTL"},
		{func(o *Options) { o.MaxBodyBytes = o.MaxMessageBytes }, "Options.MaxBodyBytes"},
		{func(o *Options) { o.Transport = "carrier-pigeon" }, "Options.Transport"},
		{func(o *Options) { o.Env = []string{"NOVALUE"} }, "KEY=value"},
	} {
		o := e.options(bin.misbehave)
		c.mutate(&o)
		if _, err := Start(context.Background(), o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start: %v, want an error containing %q", err, c.want)
		}
	}
}

// TestKilledUnderLoad: a plugin killed with SIGKILL while calls run: calls
// fail fast meanwhile (the failure policy answers), and the plugin is back
// within about a second. It also pins a bug: the restart was once put down
// to a hang ("hung: 3 health checks in a row failed") because the calls
// failing on the broken connection kicked pings that failed before the
// exit was reaped; the exit is now the authoritative reason.
func TestKilledUnderLoad(t *testing.T) {
	e := newEnv(t)
	begun := time.Now()
	o := e.options(bin.misbehave)
	var (
		upMu   sync.Mutex
		events []string
	)
	o.OnUp = func(up bool, why string) {
		upMu.Lock()
		defer upMu.Unlock()
		events = append(events, fmt.Sprintf("%v %s", up, why))
	}
	h := e.start(o)
	startTime := time.Since(begun) // what a restart costs at least, on this machine now
	oldPID := h.Stats().PID

	const budget = 500 * time.Millisecond
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		failures []time.Duration
		kinds    = map[wire.Kind]int{}
		newPID   atomic.Int64
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				d, err := validate(h, budget)
				el := time.Since(start)
				if err != nil {
					mu.Lock()
					failures = append(failures, el)
					kinds[wire.KindOf(err)]++
					mu.Unlock()
				} else if pid, _ := strconv.Atoi(d.Labels["pid"]); pid != oldPID {
					newPID.Store(int64(pid))
				}
				time.Sleep(time.Millisecond) // paces the load: ~4000 calls/s
			}
		}()
	}
	eventually(t, 2*time.Second, "calls flowing", func() bool { return h.Stats().Calls > 50 })
	killed := time.Now()
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a call served by a new process", func() bool { return newPID.Load() != 0 })
	back := time.Since(killed)
	stop.Store(true)
	wg.Wait()
	slices.Sort(failures)
	t.Logf("back after %s (a start took %s); %d calls failed meanwhile (%v), median %s, max %s",
		back.Round(time.Millisecond), startTime.Round(time.Millisecond), len(failures), kinds,
		failures[len(failures)/2], failures[len(failures)-1])
	// Back after the backoff (50ms) and one start (about 150ms under
	// -race on 2 cores): the "back within a second", measured from
	// the kill to the first call the new process answered.
	if back > time.Second {
		t.Errorf("plugin back after %s (a start took %s), want within 1s of the kill", back, startTime)
	}
	// Failing fast: every failure is "unavailable", none waited out its
	// budget, and the typical one took next to nothing.
	if kinds[wire.KindTimeout] > 0 || failures[len(failures)/2] > 10*time.Millisecond {
		t.Errorf("calls did not fail fast while the plugin was down: kinds %v, median %s", kinds, failures[len(failures)/2])
	}
	st := h.Stats()
	if st.Restarts != 1 || st.Failures["unavailable"] == 0 || !strings.Contains(st.LastError, "signal: killed") {
		t.Errorf("stats after the kill: %+v", st)
	}
	if alive(oldPID) {
		t.Errorf("killed process %d not reaped", oldPID)
	}
	upMu.Lock()
	defer upMu.Unlock()
	if len(events) != 2 || !strings.HasPrefix(events[0], "false exited: signal: killed") || events[1] != "true " {
		t.Errorf("OnUp calls: %q, want down (exited: signal: killed), then up", events)
	}
}

// TestHungPluginRestarted: a plugin that stops answering (SIGSTOP) fails
// its health checks and is replaced.
func TestHungPluginRestarted(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.HealthInterval, o.HealthTimeout, o.HealthFailures = 20*time.Millisecond, 50*time.Millisecond, 3
	h := e.start(o)
	pid := h.Stats().PID
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "a new process", func() bool { st := h.Stats(); return st.Up && st.PID != pid })
	if st := h.Stats(); st.Restarts != 1 || !strings.Contains(st.LastError, "hung: 3 health checks in a row failed") {
		t.Fatalf("stats: %+v", st)
	}
	if alive(pid) {
		t.Fatalf("hung process %d not killed", pid)
	}
	if _, err := validate(h, time.Second); err != nil {
		t.Fatal(err)
	}
}

// backoffClock is an injected clock for the restart backoff: each wait is
// handed to the test, which lets it pass (advancing the clock by it).
type backoffClock struct {
	mu      sync.Mutex
	t       time.Time
	waits   chan time.Duration
	release chan struct{}
}

func newBackoffClock() *backoffClock {
	return &backoffClock{t: time.Unix(1e9, 0), waits: make(chan time.Duration), release: make(chan struct{})}
}

func (c *backoffClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *backoffClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func (c *backoffClock) wait(d time.Duration, stop <-chan struct{}) bool {
	select {
	case c.waits <- d:
	case <-stop:
		return false
	}
	select {
	case <-c.release:
		c.advance(d)
		return true
	case <-stop:
		return false
	}
}

// next returns the next backoff the host waits, failing after a deadline.
func (c *backoffClock) next(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.waits:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no restart backoff within 5s")
	}
	return 0
}

// socketDirs lists what the Host's private directory holds besides the
// copies of its binary: the socket directories of its processes.
func socketDirs(t *testing.T, h *Host) []string {
	t.Helper()
	entries, err := os.ReadDir(h.Dir())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "bin-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRestartBackoff: restarts of a crashed plugin back off from
// RestartBackoff, doubling with each failed restart up to
// MaxRestartBackoff; a crash before StableAfter keeps the backoff reached,
// one after StableAfter starts again from RestartBackoff. Calls fail fast
// all along. It also pins a bug: a restart that failed at exec (binary not
// executable) left its empty plugin-dir* in the Host's socket directory
// (go-plugin cleans up only a process that started), one per failed
// restart, until Close.
func TestRestartBackoff(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin")
	copyFile(t, bin.misbehave, path)
	o := e.options(path)
	o.RestartBackoff, o.MaxRestartBackoff, o.StableAfter = 20*time.Millisecond, 80*time.Millisecond, 10*time.Second
	clk := newBackoffClock()
	o.clock = clk
	h := e.start(o)
	if got := socketDirs(t, h); len(got) != 1 {
		t.Fatalf("socket directory of a running plugin holds %q, want its one plugin-dir", got)
	}
	// The version's copy of the binary cannot be executed: every restart
	// fails (at exec).
	exe := h.cur.Load().exe.path
	if err := os.Chmod(exe, 0o600); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(h.Stats().PID, syscall.SIGKILL)
	var waits []time.Duration
	for i := range 4 {
		waits = append(waits, clk.next(t))
		// The killed process's directory, and those of the restarts
		// that failed so far, are gone while the host runs.
		if got := socketDirs(t, h); len(got) != 0 {
			t.Fatalf("after the kill and %d failed restarts the socket directory holds %q", i, got)
		}
		if i < 3 {
			clk.release <- struct{}{}
		}
	}
	if want := []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond, 80 * time.Millisecond}; !slices.Equal(waits, want) {
		t.Fatalf("backoffs %v, want %v (doubling from RestartBackoff, capped by MaxRestartBackoff)", waits, want)
	}
	if n := strings.Count(e.log.String(), "plugin restart failed"); n != 3 {
		t.Fatalf("%d restart failures logged, want 3", n)
	}
	start := time.Now()
	if _, err := validate(h, time.Second); wire.KindOf(err) != wire.KindUnavailable || time.Since(start) > 20*time.Millisecond {
		t.Fatalf("call while down: %v after %s", err, time.Since(start))
	} else if !strings.Contains(err.Error(), "restart in 80ms") {
		t.Fatalf("call while down: %v (want the backoff capped at 80ms)", err)
	}

	// The copy is executable again: the next restart succeeds.
	if err := os.Chmod(exe, 0o500); err != nil {
		t.Fatal(err)
	}
	restart := func() int {
		t.Helper()
		clk.release <- struct{}{}
		eventually(t, 5*time.Second, "back up", func() bool { return h.Stats().Up })
		if got := socketDirs(t, h); len(got) != 1 || !strings.HasPrefix(got[0], "plugin-dir") {
			t.Fatalf("socket directory after a restart holds %q, want the one plugin-dir of the running process", got)
		}
		return h.Stats().PID
	}
	pid := restart()
	// A crash before StableAfter: the backoff goes on from where it was.
	syscall.Kill(pid, syscall.SIGKILL)
	if d := clk.next(t); d != 80*time.Millisecond {
		t.Fatalf("backoff after a crash before StableAfter: %s, want 80ms (not reset)", d)
	}
	pid = restart()
	// A crash after StableAfter: back to RestartBackoff.
	clk.advance(o.StableAfter)
	syscall.Kill(pid, syscall.SIGKILL)
	if d := clk.next(t); d != 20*time.Millisecond {
		t.Fatalf("backoff after a crash once stable: %s, want 20ms (reset)", d)
	}
	restart()
	if _, err := validate(h, time.Second); err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.Restarts != 3 {
		t.Fatalf("restarts %d, want 3", st.Restarts)
	}
}

// copyFile installs a copy of from at to, with extra bytes appended (an
// ELF binary runs the same with a tail: a new version of the same code).
func copyFile(t *testing.T, from, to string, extra ...string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range extra {
		b = append(b, x...)
	}
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil { // as an operator should: never write into a running binary
		t.Fatal(err)
	}
}

// TestHotReload: a new binary is started and health-checked, new calls go
// to it, a call in flight finishes on the old one, which is then stopped;
// a broken binary is refused and the running version keeps serving.
func TestHotReload(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "plugin")
	copyFile(t, bin.misbehave, path)
	o := e.options(path)
	o.Watch, o.ReloadDebounce = true, 20*time.Millisecond
	h := e.start(o)
	v1, pid1 := h.Current(), h.Stats().PID

	// A slow call on version 1, in flight across the swap.
	slow := make(chan sdk.ValidateDecision, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, err := v1.Impl.(sdk.Validator).Validate(ctx, sdktest.NewRequest("GET", "/", "X-Sleep", "400ms"))
		if err != nil {
			t.Errorf("call in flight across the reload: %v", err)
		}
		slow <- d
	}()
	eventually(t, time.Second, "slow call in flight", func() bool { return h.Stats().Calls == 1 })

	copyFile(t, bin.misbehave, path, "version 2")
	eventually(t, 5*time.Second, "version 2 serving", func() bool { return h.Current() != v1 })
	pid2 := strconv.Itoa(h.Stats().PID)
	d, err := validate(h, time.Second)
	if err != nil || d.Labels["pid"] != pid2 || pid2 == strconv.Itoa(pid1) {
		t.Fatalf("after reload: %v %v", d.Labels, err)
	}
	// A request that began on version 1 now calls through it: it reaches
	// version 2, the serving one.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if d, err := v1.Impl.(sdk.Validator).Validate(ctx, sdktest.NewRequest("GET", "/")); err != nil || d.Labels["pid"] != pid2 {
		t.Fatalf("call through the old version: %v %v", d.Labels, err)
	}
	if got := <-slow; got.Labels["pid"] != strconv.Itoa(pid1) {
		t.Fatalf("call in flight finished on pid %q, want the old %d", got.Labels["pid"], pid1)
	}
	eventually(t, 3*time.Second, "old process stopped", func() bool { return !alive(pid1) })
	if st := h.Stats(); st.Reloads != 1 || st.Refusals != 0 {
		t.Fatalf("stats: %+v", st)
	}

	// A broken binary is refused; version 2 keeps serving.
	v2 := h.Current()
	broken := filepath.Join(dir, "broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho not a plugin >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(broken, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "refusal", func() bool { return h.Stats().Refusals == 1 })
	if h.Current() != v2 || strconv.Itoa(h.Stats().PID) != pid2 {
		t.Fatal("the refused version replaced the running one")
	}
	if !strings.Contains(h.Stats().LastError, "not a plugin") || !strings.Contains(e.log.String(), "plugin version refused") {
		t.Fatalf("refusal not explained: %q", h.Stats().LastError)
	}
	if _, err := validate(h, time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestReconfigure: a new configuration is a new version.
func TestReconfigure(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.Config = []byte(`{"version": "a"}`)
	h := e.start(o)
	v1, pid1 := h.Current(), h.Stats().PID
	if err := h.Reconfigure(o); err != nil || h.Current() != v1 {
		t.Fatalf("same options: %v, version changed: %v", err, h.Current() != v1)
	}
	bad := o
	bad.Config = []byte(`{"fail": "nope"}`)
	if err := h.Reconfigure(bad); err == nil || h.Current() != v1 {
		t.Fatalf("refused configuration: %v", err)
	}
	o.Config = []byte(`{"version": "b"}`)
	if err := h.Reconfigure(o); err != nil {
		t.Fatal(err)
	}
	if d, err := validate(h, time.Second); err != nil || d.Labels["version"] != "b" || h.Current().ID == v1.ID {
		t.Fatalf("after Reconfigure: %v %v", d.Labels, err)
	}
	eventually(t, 3*time.Second, "old process stopped", func() bool { return !alive(pid1) })
}

// TestConfigFileReload: a watched config file is part of the version.
func TestConfigFileReload(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mb.json")
	if err := os.WriteFile(cfg, []byte(`{"version": "one"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	o := e.options(bin.misbehave)
	o.ConfigFile, o.Watch, o.ReloadDebounce = cfg, true, 20*time.Millisecond
	h := e.start(o)
	if err := os.WriteFile(cfg, []byte(`{"version": "two"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "version two", func() bool {
		d, err := validate(h, time.Second)
		return err == nil && d.Labels["version"] == "two"
	})
}

func TestCloseWhileDownAndWhileStarting(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.RestartBackoff = time.Hour // stays down after the kill
	o.MaxRestartBackoff = time.Hour
	h := e.start(o)
	syscall.Kill(h.Stats().PID, syscall.SIGKILL)
	eventually(t, 2*time.Second, "down", func() bool { return !h.Stats().Up })
	start := time.Now()
	h.Close()
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Close took %s", el)
	}

	// Close aborts a start in progress (the context given to Start).
	o = e.options(bin.misbehave)
	o.Env = []string{"MISBEHAVE_START=hang"}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := Start(ctx, o); err == nil {
		t.Fatal("hanging plugin started")
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("Start ignored its context for %s", el)
	}
}

// TestStaleSocketDirs: a directory a dead gateway left (sockets, binary
// copies) is removed.
func TestStaleSocketDirs(t *testing.T) {
	e := newEnv(t)
	// A PID that is surely not running: a child that has exited.
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(e.base, dirPrefix(cmd.Process.Pid)+"old-1234")
	if err := os.MkdirAll(filepath.Join(stale, "plugin-dir1"), 0o700); err != nil {
		t.Fatal(err)
	}
	// With the copy of the binary its processes ran.
	if err := os.WriteFile(filepath.Join(stale, "bin-0123456789ab-1"), []byte("\x7fELF"), 0o500); err != nil {
		t.Fatal(err)
	}
	e.start(e.options(bin.misbehave)).Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale directory left: %v", err)
	}
}

// TestHookRunner runs the plugin through the core's hook runner: budgets,
// invalid decisions, panics and errors follow the binding's policy.
func TestHookRunner(t *testing.T) {
	e := newEnv(t)
	for _, tr := range []wire.Transport{wire.TransportFrames, wire.TransportStream, wire.TransportUnary} {
		t.Run(string(tr), func(t *testing.T) {
			o := e.options(bin.misbehave)
			o.Transport = tr
			h := e.start(o)
			const budget = 50 * time.Millisecond
			b := &hook.Binding{Name: "mb", Source: h, Budget: budget, MaxConcurrent: 64, Policy: hook.Policy{Status: 503}}
			c := &hook.Chain{Bindings: []*hook.Binding{b}}
			run := func(header ...string) (*hook.Verdict, time.Duration) {
				var s hook.Snapshot
				c.Begin(&s)
				start := time.Now()
				v := c.Validate(context.Background(), &s, nopStamper{}, sdktest.NewRequest("GET", "/", header...), time.Now().Add(time.Second))
				return v, time.Since(start)
			}
			// A first call warms the connection up, with time to spare on a
			// loaded machine.
			if _, err := validate(h, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if v, _ := run(); v != nil {
				t.Fatalf("plain call: %+v", v.Failure)
			}
			for _, c := range []struct {
				header []string
				kind   hook.FailureKind
				text   string
			}{
				{[]string{"X-Sleep", "2s"}, hook.FailTimeout, "did not answer within its time budget"},
				{[]string{"X-Invalid", "1"}, hook.FailInvalid, "reject status 999 outside 400..599"},
				{[]string{"X-Panic", "1"}, hook.FailError, "panic: misbehave: asked to panic"},
				{[]string{"X-Error", "1"}, hook.FailError, "misbehave: asked to fail"},
			} {
				v, el := run(c.header...)
				if v == nil || v.Failure == nil || v.Failure.Kind != c.kind || !strings.Contains(v.Failure.Error(), c.text) || v.Reject.Status != 503 {
					t.Errorf("%v: verdict %+v", c.header, v)
					continue
				}
				if el > budget+30*time.Millisecond {
					t.Errorf("%v: failed after %s, budget %s", c.header, el, budget)
				}
			}
			// The plugin is still up and serving after all that.
			if v, _ := run(); v != nil {
				t.Fatalf("plain call after failures: %+v", v.Failure)
			}
		})
	}
}

// TestDeadlineCarried: the plugin's context ends with the call's budget.
func TestDeadlineCarried(t *testing.T) {
	e := newEnv(t)
	h := e.start(e.options(bin.misbehave))
	d, err := validate(h, 80*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if ms, _ := strconv.Atoi(d.Labels["deadline_ms"]); ms <= 0 || ms > 80 {
		t.Fatalf("plugin saw %q ms left, want (0, 80]", d.Labels["deadline_ms"])
	}
}

// TestBodyBounded: the body is sent only when there is one, cut at
// MaxBodyBytes.
func TestBodyBounded(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.MaxBodyBytes = 8
	h := e.start(o)
	req := sdktest.NewRequest("POST", "/")
	req.Body = []byte("0123456789abcdef")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d, err := h.Current().Impl.(sdk.Validator).Validate(ctx, req)
	if err != nil || d.Labels["body"] != "01234567" || d.Labels["truncated"] != "true" {
		t.Fatalf("%v %v", d.Labels, err)
	}
	d, err = validate(h, time.Second)
	if err != nil || d.Labels["body"] != "" || d.Labels["truncated"] != "false" {
		t.Fatalf("no body: %v %v", d.Labels, err)
	}
}

// TestMessageBounded: an answer over MaxMessageBytes fails its call.
func TestMessageBounded(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.MaxMessageBytes = 64 << 10
	o.MaxBodyBytes = 1 << 10
	h := e.start(o)
	if _, err := validate(h, time.Second, "X-Big", strconv.Itoa(100<<10)); wire.KindOf(err) != wire.KindTooLarge {
		t.Fatalf("oversized answer: %v", err)
	}
	if _, err := validate(h, time.Second); err != nil {
		t.Fatalf("after an oversized answer: %v", err)
	}
	if st := h.Stats(); st.Failures["too_large"] != 1 {
		t.Fatalf("stats: %+v", st.Failures)
	}
}

// TestMaxConcurrent: over the bound a call fails at once.
func TestMaxConcurrent(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.MaxConcurrent = 2
	h := e.start(o)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			validate(h, time.Second, "X-Sleep", "300ms")
		}()
	}
	eventually(t, time.Second, "two calls in flight", func() bool { return h.inflight.Load() == 2 })
	start := time.Now()
	if _, err := validate(h, time.Second); wire.KindOf(err) != wire.KindOverloaded || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("third call: %v after %s", err, time.Since(start))
	}
	wg.Wait()
}

// TestStdoutGarbageLogged: what a serving plugin writes to stdout reaches
// the log, tagged, and does not disturb it.
func TestStdoutGarbageLogged(t *testing.T) {
	e := newEnv(t)
	h := e.start(e.options(bin.misbehave))
	if _, err := validate(h, time.Second, "X-Stdout", "\x00garbage\xff{not json"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "stdout line in the log", func() bool {
		for _, line := range strings.Split(e.log.String(), "\n") {
			if strings.Contains(line, `"plugin":"mb"`) && strings.Contains(line, `"stream":"stdout"`) && strings.Contains(line, "garbage") {
				return true
			}
		}
		return false
	})
	if _, err := validate(h, time.Second); err != nil {
		t.Fatal(err)
	}
}

// TestDecisionCache: decisions marked cacheable are reused per X-User.
func TestDecisionCache(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.CacheEntries = 100
	h := e.start(o)
	d1, _ := validate(h, time.Second, "X-Cache", "1", "X-User", "alice")
	d2, _ := validate(h, time.Second, "X-Cache", "1", "X-User", "alice")
	d3, _ := validate(h, time.Second, "X-Cache", "1", "X-User", "bob")
	if d1.Labels["n"] != "1" || d2.Labels["n"] != "1" || d3.Labels["n"] != "2" {
		t.Fatalf("n = %s %s %s, want 1 1 2", d1.Labels["n"], d2.Labels["n"], d3.Labels["n"])
	}
	if st := h.Stats(); st.CacheHits != 1 || st.CacheMisses != 2 || st.CacheEntries != 2 || st.Calls != 2 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestOtherPhases: shape and respond through the host.
func TestOtherPhases(t *testing.T) {
	e := newEnv(t)
	h := e.start(e.options(bin.misbehave))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req := sdktest.WithLabels(sdktest.NewRequest("GET", "/"), "user", "u1")
	s, err := h.Current().Impl.(sdk.Shaper).Shape(ctx, req)
	if err != nil || s.Priority != sdk.PriorityDefault || s.RateKey != "user:u1" {
		t.Fatalf("shape: %+v %v", s, err)
	}
	r, err := h.Current().Impl.(sdk.Responder).Respond(ctx, req, &sdk.Response{Status: 204, Header: sdk.Header{"Server": {"x"}}})
	if err != nil || r.SetHeader["X-Plugin-Status"] != "204" {
		t.Fatalf("respond: %+v %v", r, err)
	}
}

// TestExamplesThroughHost runs the authz and quota examples through the
// host and the hook runner, as the gateway would chain them.
func TestExamplesThroughHost(t *testing.T) {
	e := newEnv(t)
	keys := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(keys, []byte("k1 alice gold\n"), 0o600)
	ao := e.options(bin.authz)
	ao.Name, ao.Config, ao.CacheEntries = "authz", []byte(`{"secret": "0123456789abcdef0123", "keys_file": "`+keys+`"}`), 1000
	qo := e.options(bin.quota)
	qo.Name, qo.Config, qo.CacheEntries = "quota", []byte(`{"tiers": {"gold": {"priority": "critical"}}}`), 1000
	authz, quota := e.start(ao), e.start(qo)
	c := &hook.Chain{Bindings: []*hook.Binding{
		{Name: "authz", Source: authz, Budget: 100 * time.Millisecond, MaxConcurrent: 64, Policy: hook.Policy{Status: 503}},
		{Name: "quota", Source: quota, Budget: 100 * time.Millisecond, MaxConcurrent: 64, Policy: hook.Policy{Open: true}},
	}}
	for i := range 2 { // the second time from the caches
		var s hook.Snapshot
		c.Begin(&s)
		req := sdktest.NewRequest("GET", "/orders", "X-Api-Key", "k1")
		dl := time.Now().Add(time.Second)
		if v := c.Validate(context.Background(), &s, nopStamper{}, req, dl); v != nil {
			t.Fatalf("validate: %+v", v)
		}
		var sh hook.Shaping
		if v := c.Shape(context.Background(), &s, nopStamper{}, req, dl, &sh); v != nil {
			t.Fatalf("shape: %+v", v)
		}
		if req.Labels["user"] != "alice" || sh.Priority != sdk.PriorityCritical || sh.RateKey != "user:alice" {
			t.Fatalf("round %d: labels %v shaping %+v", i, req.Labels, sh)
		}
		var s2 hook.Snapshot
		c.Begin(&s2)
		denied := sdktest.NewRequest("GET", "/orders")
		if v := c.Validate(context.Background(), &s2, nopStamper{}, denied, dl); v == nil || v.Reject.Status != 401 || v.Failure != nil {
			t.Fatalf("no credentials: %+v", v)
		}
	}
	if a, q := authz.Stats(), quota.Stats(); a.CacheHits != 1 || q.CacheHits != 1 {
		t.Fatalf("cache hits: authz %d quota %d", a.CacheHits, q.CacheHits)
	}
}

// TestProcessLimits: OS limits apply to the plugin process; one that runs
// out of address space crashes and is restarted like any crash.
func TestProcessLimits(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.Limits = wire.Limits{OpenFiles: 200, MemoryBytes: 3 << 30}
	h := e.start(o)
	d, err := validate(h, time.Second)
	if err != nil || d.Labels["nofile"] != "200" || d.Labels["as"] != strconv.Itoa(3<<30) {
		t.Fatalf("limits seen by the plugin: %v %v", d.Labels, err)
	}
	pid := h.Stats().PID
	if _, err := validate(h, 5*time.Second, "X-Alloc", "1"); err == nil {
		t.Fatal("a 4 GiB allocation under a 3 GiB address-space limit succeeded")
	}
	eventually(t, 5*time.Second, "restarted after running out of memory", func() bool {
		st := h.Stats()
		return st.Up && st.PID != pid
	})
	if st := h.Stats(); st.Restarts != 1 {
		t.Fatalf("stats: %+v", st)
	}
	if !strings.Contains(e.log.String(), "out of memory") {
		t.Fatal("the plugin's out-of-memory crash is not in the log")
	}
}

// TestDecisionCacheWhileDown: a cached decision is served while the plugin
// is down (the cache is looked up before the plugin's availability); a
// request that misses the cache gets the failure (unavailable).
func TestDecisionCacheWhileDown(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.CacheEntries = 100
	o.RestartBackoff, o.MaxRestartBackoff = time.Hour, time.Hour // stays down after the kill
	h := e.start(o)
	d1, err := validate(h, time.Second, "X-Cache", "1", "X-User", "alice")
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(h.Stats().PID, syscall.SIGKILL)
	eventually(t, 5*time.Second, "down", func() bool { return !h.Stats().Up })
	d2, err := validate(h, time.Second, "X-Cache", "1", "X-User", "alice")
	if err != nil || d2.Labels["n"] != d1.Labels["n"] || d2.Labels["pid"] != d1.Labels["pid"] {
		t.Fatalf("cached decision while the plugin is down: %v %v, want %v", d2.Labels, err, d1.Labels)
	}
	if _, err := validate(h, time.Second, "X-Cache", "1", "X-User", "bob"); wire.KindOf(err) != wire.KindUnavailable {
		t.Fatalf("cache miss while the plugin is down: %v, want unavailable", err)
	}
	if st := h.Stats(); st.CacheHits != 1 || st.CacheMisses != 2 {
		t.Fatalf("stats: %+v", st)
	}
	// Once closed, the cache is not served any more.
	h.Close()
	if _, err := validate(h, time.Second, "X-Cache", "1", "X-User", "alice"); wire.KindOf(err) != wire.KindUnavailable {
		t.Fatalf("cached call after Close: %v, want unavailable", err)
	}
}

// TestCallsBounded: a call over MaxMessageBytes fails alone (too_large)
// before it is sent, on every transport, and the connection stays in use.
// Regression: on frames it was sent anyway (the frame was only refused
// over 2 GiB), and on the gRPC stream the oversized SendMsg broke the
// stream for every call on it.
func TestCallsBounded(t *testing.T) {
	e := newEnv(t)
	for _, tr := range []wire.Transport{wire.TransportFrames, wire.TransportStream, wire.TransportUnary} {
		t.Run(string(tr), func(t *testing.T) {
			o := e.options(bin.misbehave)
			o.Transport, o.MaxMessageBytes, o.MaxBodyBytes = tr, 64<<10, 1<<10
			h := e.start(o)
			if _, err := validate(h, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			slow := make(chan error, 1)
			go func() {
				_, err := validate(h, 5*time.Second, "X-Sleep", "200ms")
				slow <- err
			}()
			eventually(t, 2*time.Second, "slow call in flight", func() bool { return h.inflight.Load() == 1 })
			if _, err := validate(h, time.Second, "X-Pad", strings.Repeat("p", 100<<10)); wire.KindOf(err) != wire.KindTooLarge {
				t.Fatalf("oversized call: %v, want too_large", err)
			}
			if err := <-slow; err != nil {
				t.Fatalf("call in flight next to an oversized one: %v", err)
			}
			if _, err := validate(h, time.Second); err != nil {
				t.Fatalf("after an oversized call: %v", err)
			}
			if st := h.Stats(); st.Transport != tr || st.Failures["too_large"] != 1 {
				t.Fatalf("stats: transport %s, failures %v", st.Transport, st.Failures)
			}
		})
	}
}

// validatePath calls validate for path with header pairs.
func validatePath(h *Host, timeout time.Duration, path string, header ...string) (sdk.ValidateDecision, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return h.Current().Impl.(sdk.Validator).Validate(ctx, sdktest.NewRequest("GET", path, header...))
}

// TestFramesOversizedAnswer: on the framed call socket, an answer over
// MaxMessageBytes (from a plugin that ignores the bound, which the SDK
// never does) fails its own call (too_large) and no other: the call in
// flight next to it and later calls are answered on the same socket.
// Regression: the frame was refused before it was read, so the socket
// could not be read further and every call in flight failed. When the
// socket does break, calls go on the gRPC stream and Stats says so
// (it said "frames" after the fallback).
func TestFramesOversizedAnswer(t *testing.T) {
	e := newEnv(t)
	o := e.options(bin.rawframes)
	o.Name, o.MaxMessageBytes, o.MaxBodyBytes = "raw", 64<<10, 1<<10
	h := e.start(o)
	if st := h.Stats(); st.Transport != wire.TransportFrames {
		t.Fatalf("transport %s, want frames", st.Transport)
	}
	slow := make(chan error, 1)
	go func() {
		d, err := validatePath(h, 5*time.Second, "/slow", "X-Sleep", "300ms")
		if err == nil && d.Labels["via"] != "frames" {
			err = fmt.Errorf("answered via %q", d.Labels["via"])
		}
		slow <- err
	}()
	eventually(t, 2*time.Second, "slow call in flight", func() bool { return h.inflight.Load() == 1 })
	start := time.Now()
	_, err := validatePath(h, 5*time.Second, "/big", "X-Big", strconv.Itoa(200<<10))
	if wire.KindOf(err) != wire.KindTooLarge || !strings.Contains(err.Error(), "max_message_bytes") {
		t.Fatalf("oversized answer: %v, want too_large naming max_message_bytes", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("oversized answer failed after %s", el)
	}
	if err := <-slow; err != nil {
		t.Fatalf("call in flight next to the oversized answer: %v", err)
	}
	if d, err := validatePath(h, time.Second, "/"); err != nil || d.Labels["via"] != "frames" {
		t.Fatalf("after the oversized answer: %v %v, want an answer on frames", d.Labels, err)
	}
	if st := h.Stats(); st.Transport != wire.TransportFrames || st.Failures["too_large"] != 1 || st.Failures["unavailable"] != 0 {
		t.Fatalf("stats: transport %s failures %v", st.Transport, st.Failures)
	}

	// The plugin drops its framed call socket: calls go on, and Stats
	// reports the transport they take.
	pid := h.Stats().PID
	if _, err := validatePath(h, time.Second, "/break"); wire.KindOf(err) != wire.KindUnavailable {
		t.Fatalf("call on the broken socket: %v", err)
	}
	eventually(t, 5*time.Second, "calls on the gRPC stream", func() bool {
		d, err := validatePath(h, time.Second, "/")
		return err == nil && d.Labels["via"] == "stream"
	})
	if st := h.Stats(); st.Transport != wire.TransportStream || st.PID != pid || st.Restarts != 0 {
		t.Fatalf("after the fallback: transport %s pid %d (was %d) restarts %d", st.Transport, st.PID, pid, st.Restarts)
	}
}

// TestPluginLastWordsAndPanicsLogged: a line written to plugin.Stderr just
// before the process exits reaches the gateway's log, and a recovered
// panic is logged as one error record with its stack.
func TestPluginLastWordsAndPanicsLogged(t *testing.T) {
	e := newEnv(t)
	h := e.start(e.options(bin.misbehave))
	if _, err := validate(h, 5*time.Second, "X-Panic", "1"); err == nil {
		t.Fatal("the panicking call did not fail")
	}
	eventually(t, 5*time.Second, "the panic logged", func() bool { return strings.Contains(e.log.String(), `"message":"panic in phase"`) })
	for _, line := range strings.Split(e.log.String(), "\n") {
		if strings.Contains(line, `"message":"panic in phase"`) {
			if !strings.Contains(line, `"level":"error"`) || !strings.Contains(line, `"stack":"goroutine`) || !strings.Contains(line, "asked to panic") {
				t.Fatalf("the panic's record: %s", line)
			}
		}
		if strings.Contains(line, "runtime/debug.Stack") && !strings.Contains(line, "panic in phase") {
			t.Fatalf("a line of the stack logged on its own: %s", line)
		}
	}
	validate(h, 5*time.Second, "X-Exit-Stderr", "last words before exiting")
	eventually(t, 5*time.Second, "the last words logged", func() bool { return strings.Contains(e.log.String(), "last words before exiting") })
}
