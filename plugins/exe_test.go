package plugins

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// procExe is the binary process pid runs (/proc/PID/exe).
func procExe(t *testing.T, pid int) string {
	t.Helper()
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// binaryCopies lists the copies of the binary in the Host's private
// directory.
func binaryCopies(t *testing.T, h *Host) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(h.Dir(), "bin-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// brokenBinary installs at path (renamed over it) a binary that exits at
// start.
func brokenBinary(t *testing.T, path string) {
	t.Helper()
	tmp := path + ".broken"
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\necho the new binary refuses to start >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// crashMidCall kills the serving process while a call runs on it, and
// waits for the call to fail.
func crashMidCall(t *testing.T, h *Host) {
	t.Helper()
	pid := h.Stats().PID
	failed := make(chan error, 1)
	go func() {
		_, err := validate(h, 10*time.Second, "X-Sleep", "5s")
		failed <- err
	}()
	eventually(t, 5*time.Second, "call in flight", func() bool { return h.inflight.Load() > 0 })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; err == nil {
		t.Fatal("the call on the killed process succeeded")
	}
}

// TestRestartRunsItsVersion: a restart after a crash runs the version that
// crashed, from its private copy, whatever the file at Options.Path holds
// by then: with Watch, a replacement that exits at start is refused and
// the restart still serves; without Watch, neither a broken binary nor
// another build renamed over the path is run by the restart, and the
// version ID stays that of the code running.
func TestRestartRunsItsVersion(t *testing.T) {
	for _, c := range []struct {
		name    string
		watch   bool
		replace func(t *testing.T, path string)
	}{
		{"watched, refused replacement", true, brokenBinary},
		{"not watched, broken replacement", false, brokenBinary},
		{"not watched, another build", false, func(t *testing.T, path string) { copyFile(t, bin.misbehave2, path) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			path := filepath.Join(t.TempDir(), "plugin")
			copyFile(t, bin.misbehave, path)
			o := e.options(path)
			o.Watch, o.ReloadDebounce = c.watch, 20*time.Millisecond
			h := e.start(o)
			v1, pid1 := h.Current(), h.Stats().PID
			exe := h.cur.Load().exe.path
			if got := procExe(t, pid1); got != exe || filepath.Dir(exe) != h.Dir() {
				t.Fatalf("the process runs %s, want the version's copy %s in %s", got, exe, h.Dir())
			}
			before, err := os.Stat(exe)
			if err != nil {
				t.Fatal(err)
			}

			c.replace(t, path)
			if c.watch {
				eventually(t, 5*time.Second, "replacement refused", func() bool { return h.Stats().Refusals == 1 })
				if h.Current() != v1 {
					t.Fatal("the refused version replaced the running one")
				}
			}
			crashMidCall(t, h)
			eventually(t, 10*time.Second, "restarted", func() bool { st := h.Stats(); return st.Up && st.PID != pid1 })

			st := h.Stats()
			d, err := validate(h, time.Second)
			if err != nil {
				t.Fatalf("call after the restart: %v", err)
			}
			if d.Labels["build"] != "1" || d.Labels["pid"] != strconv.Itoa(st.PID) {
				t.Fatalf("after the restart the plugin answers %v, want build 1 from pid %d", d.Labels, st.PID)
			}
			if h.Current() != v1 || st.Version != v1.ID || st.Restarts != 1 || st.Reloads != 0 {
				t.Fatalf("after the restart: version %s (was %s), stats %+v", st.Version, v1.ID, st)
			}
			if got := procExe(t, st.PID); got != exe {
				t.Fatalf("the restarted process runs %s, want the version's copy %s (not %s)", got, exe, path)
			}
			// Copied once per version, not per restart.
			after, err := os.Stat(exe)
			if err != nil || !os.SameFile(before, after) {
				t.Fatalf("the copy was made again for the restart (%v)", err)
			}
			if got := binaryCopies(t, h); !slices.Equal(got, []string{exe}) {
				t.Fatalf("copies %q, want the one of the version", got)
			}
		})
	}
}

// TestBinaryCopies: each version runs its own copy, in the Host's private
// directory, named after the version; its ID is that of the bytes copied.
// A replaced version's copy is removed once it has stopped, a refused
// version's at once, and Close removes the directory.
func TestBinaryCopies(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "plugin")
	copyFile(t, bin.misbehave, path)
	o := e.options(path)
	o.Config = []byte(`{"version": "a"}`)
	o.Watch, o.ReloadDebounce = true, 20*time.Millisecond
	h := e.start(o)
	g1 := h.cur.Load()

	fi, err := os.Lstat(h.Dir())
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("private directory %s: %v %v", h.Dir(), fi.Mode(), err)
	}
	if got := binaryCopies(t, h); !slices.Equal(got, []string{g1.exe.path}) {
		t.Fatalf("copies %q, want %s", got, g1.exe.path)
	}
	fi, err = os.Stat(g1.exe.path)
	if err != nil || fi.Mode().Perm() != 0o500 || !strings.HasPrefix(filepath.Base(g1.exe.path), "bin-"+g1.id+"-") {
		t.Fatalf("copy %s: %v %v", g1.exe.path, fi.Mode(), err)
	}
	want, _ := os.ReadFile(bin.misbehave)
	if got, _ := os.ReadFile(g1.exe.path); !bytes.Equal(got, want) {
		t.Fatal("the copy's bytes are not the binary's")
	}
	if id, err := versionID(o, o.Config); err != nil || id != g1.id {
		t.Fatalf("version ID %s, the binary's is %s (%v)", g1.id, id, err)
	}

	// A new binary: a new version with a copy of its own; the old copy
	// goes with the old version.
	copyFile(t, bin.misbehave2, path)
	eventually(t, 5*time.Second, "version 2 serving", func() bool { return h.cur.Load() != g1 })
	g2 := h.cur.Load()
	if d, err := validate(h, time.Second); err != nil || d.Labels["build"] != "2" || procExe(t, h.Stats().PID) != g2.exe.path {
		t.Fatalf("version 2: %v %v", d.Labels, err)
	}
	eventually(t, 5*time.Second, "the old copy removed", func() bool {
		return slices.Equal(binaryCopies(t, h), []string{g2.exe.path})
	})

	// A version that fails to start leaves no copy.
	bad := o
	bad.Env = []string{"MISBEHAVE_START=exit"}
	if err := h.Reconfigure(bad); err == nil {
		t.Fatal("a version that exits at start was taken")
	}
	if got := binaryCopies(t, h); !slices.Equal(got, []string{g2.exe.path}) {
		t.Fatalf("after a refused version the copies are %q", got)
	}
}

// TestCopyRemovedPutBack: a copy removed under a running version (a
// cleaner of old temporary files) is put back from the file the version
// holds open, so that a restart still runs it; it is not put back in a
// directory that is no longer private.
func TestCopyRemovedPutBack(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "plugin")
	copyFile(t, bin.misbehave, path)
	o := e.options(path)
	o.RestartBackoff, o.MaxRestartBackoff = 20*time.Millisecond, 100*time.Millisecond
	h := e.start(o)
	exe := h.cur.Load().exe.path
	copyFile(t, bin.misbehave2, path) // not what the version is

	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	pid := h.Stats().PID
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, "restarted", func() bool { st := h.Stats(); return st.Up && st.PID != pid })
	if got := procExe(t, h.Stats().PID); got != exe {
		t.Fatalf("restarted process runs %s, want %s", got, exe)
	}
	if d, err := validate(h, time.Second); err != nil || d.Labels["build"] != "1" {
		t.Fatalf("after the restart: %v %v", d.Labels, err)
	}
	if !strings.Contains(e.log.String(), "put back") {
		t.Fatal("putting the copy back was not logged")
	}

	// The directory others may enter now: the copy is not put back there.
	if err := os.Chmod(h.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(exe); err != nil {
		t.Fatal(err)
	}
	pid = h.Stats().PID
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, 10*time.Second, "restart refused", func() bool {
		return strings.Contains(h.Stats().LastError, "cannot be put back") && strings.Contains(h.Stats().LastError, "no longer the gateway's private directory")
	})
	if h.Stats().Up {
		t.Fatal("restarted from a directory that is not private")
	}
	if err := os.Chmod(h.Dir(), 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "restarted once private again", func() bool { return h.Stats().Up })
	if got := procExe(t, h.Stats().PID); got != exe {
		t.Fatalf("restarted process runs %s, want %s", got, exe)
	}
}

// TestCopyErrors: a version whose binary cannot be copied is refused with
// an error that names the plugin and what failed, and the running version
// keeps serving; a FIFO renamed over the binary is refused, not waited on.
func TestCopyErrors(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "plugin")
	copyFile(t, bin.misbehave, path)
	o := e.options(path)
	o.Watch, o.ReloadDebounce = true, 20*time.Millisecond
	h := e.start(o)
	v1 := h.Current()

	fifo := path + ".fifo"
	if err := syscall.Mkfifo(fifo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fifo, path); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "FIFO refused", func() bool { return h.Stats().Refusals == 1 })
	if msg := h.Stats().LastError; !strings.Contains(msg, `plugin "mb"`) || !strings.Contains(msg, "not a regular file") {
		t.Fatalf("refusal: %q", msg)
	}

	// The private directory is gone: the copy cannot be made.
	copyFile(t, bin.misbehave, path)
	if err := os.RemoveAll(h.Dir()); err != nil {
		t.Fatal(err)
	}
	other := o
	other.Config = []byte(`{"version": "b"}`)
	err := h.Reconfigure(other)
	if err == nil || !strings.Contains(err.Error(), `plugins: plugin "mb": private copy of the binary `+path+" in "+h.Dir()) {
		t.Fatalf("Reconfigure: %v", err)
	}
	if _, err := validate(h, time.Second); err != nil || h.Current() != v1 {
		t.Fatalf("the running version after a refused one: %v", err)
	}
}

// TestNoexecDir: a private directory on a file system mounted noexec is
// refused at Start, saying so (when such a file system is at hand).
func TestNoexecDir(t *testing.T) {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Skip(err)
	}
	base := ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !slices.Contains(strings.Split(f[3], ","), "noexec") || !slices.Contains(strings.Split(f[3], ","), "rw") {
			continue
		}
		if d, err := os.MkdirTemp(f[1], "gh-"); err == nil {
			base = d
			break
		}
	}
	if base == "" {
		t.Skip("no writable file system mounted noexec")
	}
	defer os.RemoveAll(base)
	e := newEnv(t)
	o := e.options(bin.misbehave)
	o.SocketDir = base
	_, err = Start(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), `plugin "mb"`) || !strings.Contains(err.Error(), "noexec") {
		t.Fatalf("Start in a noexec directory: %v", err)
	}
}

// TestRecheckPicksUpReplacedBinary: without watch, a binary replaced on
// disk is a new version when the configuration is reloaded (Recheck), and
// a broken one is refused while the running version keeps serving.
func TestRecheckPicksUpReplacedBinary(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "plugin")
	copyFile(t, bin.misbehave, path)
	o := e.options(path)
	h := e.start(o)
	v1 := h.Current()
	h.Recheck()
	if h.Current() != v1 || h.Stats().Reloads != 0 {
		t.Fatal("Recheck of unchanged files made a new version")
	}
	brokenBinary(t, path)
	h.Recheck()
	if h.Current() != v1 || h.Stats().Refusals != 1 {
		t.Fatalf("a broken replacement: version %s (was %s), stats %+v", h.Current().ID, v1.ID, h.Stats())
	}
	copyFile(t, bin.misbehave2, path)
	h.Recheck()
	if h.Current() == v1 {
		t.Fatal("Recheck did not pick up the replaced binary")
	}
	d, err := validate(h, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d.Labels["build"] != "2" {
		t.Fatalf("after Recheck the plugin answers %v, want build 2", d.Labels)
	}
}
