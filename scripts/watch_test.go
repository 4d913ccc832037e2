package scripts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/fsnotify/fsnotify"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
)

// writeAtomic replaces a file the way editors do: write a temporary file
// beside it and rename it over the original.
func writeAtomic(t testing.TB, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func validVersion(marker string) string {
	return fmt.Sprintf("exports.validate = function (req) { return {labels: {ok: \"yes\", v: %q}} };\n", marker)
}

// Reload under load: calls run without pause while the script is rewritten
// 50 times, valid and invalid versions alternating. No call fails, every
// decision comes from a valid version, and the invalid ones are refused and
// counted.
func TestReloadUnderLoad(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	p := filepath.Join(dir, "s.js")
	writeAtomic(t, p, validVersion("v0"))
	writeAtomic(t, filepath.Join(dir, "s.cases.yaml"), "cases:\n  - expect: {validate: {labels: {ok: \"yes\"}}}\n")

	var valid sync.Map // markers of valid versions written so far
	valid.Store("v0", true)
	var swaps, refusedCB atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h, err := Watch(ctx, p, DefaultOptions(), func(old, new *Script) { swaps.Add(1) }, func(error) { refusedCB.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	var calls, failures, invalid atomic.Int64
	var lastErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := h.Current() // once per request
				cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
				d, err := s.Validate(cctx, &sdk.Request{})
				ccancel()
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				if _, ok := valid.Load(d.Labels["v"]); !ok || d.Labels["ok"] != "yes" {
					invalid.Add(1)
				}
			}
		}()
	}

	marker := func() string {
		d, err := h.Current().Validate(context.Background(), &sdk.Request{})
		if err != nil {
			return err.Error()
		}
		return d.Labels["v"]
	}
	const rewrites = 50
	refusals := uint64(0)
	var held *Script
	for i := 1; i <= rewrites; i++ {
		if i%2 == 1 {
			m := fmt.Sprintf("v%d", i)
			valid.Store(m, true)
			writeAtomic(t, p, validVersion(m))
			eventually(t, "version "+m, func() bool { return marker() == m })
			if i == 1 {
				held = h.Current()
			}
			continue
		}
		if i%4 == 0 {
			writeAtomic(t, p, "exports.validate = function (req) {\n  return {labels: {ok: \"yes\", v: \"bad\"}\n};\n") // syntax error
		} else {
			writeAtomic(t, p, "exports.validate = function () { return {labels: {ok: \"no\", v: \"bad\"}} };\n") // fails its cases
		}
		refusals++
		eventually(t, fmt.Sprintf("refusal %d", refusals), func() bool { return h.Stats().Refusals >= refusals })
	}
	close(stop)
	wg.Wait()

	st := h.Stats()
	t.Logf("%d calls during %d rewrites; stats %+v", calls.Load(), rewrites, st)
	if failures.Load() != 0 {
		t.Errorf("%d calls failed, last: %v", failures.Load(), lastErr.Load())
	}
	if invalid.Load() != 0 {
		t.Errorf("%d decisions came from an invalid version", invalid.Load())
	}
	if calls.Load() < rewrites {
		t.Errorf("only %d calls ran", calls.Load())
	}
	if st.Refusals != rewrites/2 || refusedCB.Load() != rewrites/2 {
		t.Errorf("refusals %d (callback %d), want %d", st.Refusals, refusedCB.Load(), rewrites/2)
	}
	if st.Reloads != rewrites/2 || swaps.Load() != rewrites/2 {
		t.Errorf("reloads %d (callback %d), want %d", st.Reloads, swaps.Load(), rewrites/2)
	}
	if !strings.Contains(st.LastError, "cases failed") && !strings.Contains(st.LastError, "SyntaxError") {
		t.Errorf("last error %q", st.LastError)
	}
	// A request that took a version keeps it across reloads.
	if d, err := held.Validate(context.Background(), &sdk.Request{}); err != nil || d.Labels["v"] != "v1" {
		t.Errorf("held version answered %+v %v", d, err)
	}
	h.Close()
}

// lockedLog collects log lines written from the watcher's goroutine.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

func TestRemovedScriptKeepsServing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	saved := missingLogEvery
	missingLogEvery = 20 * time.Millisecond
	defer func() { missingLogEvery = saved }()
	dir := t.TempDir()
	p := filepath.Join(dir, "s.js")
	writeAtomic(t, p, validVersion("v0"))
	var logs lockedLog
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&logs)
	h, err := Watch(context.Background(), p, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removal to be noticed", func() bool { return h.Stats().Missing })
	d, err := h.Current().Validate(context.Background(), &sdk.Request{})
	if err != nil || d.Labels["v"] != "v0" {
		t.Fatalf("after removal: %+v %v", d, err)
	}
	// The error is not logged once and forgotten: it is said again while
	// the script stays removed.
	eventually(t, "the removal logged again", func() bool { return logs.count("script removed") >= 3 })
	writeAtomic(t, p, validVersion("v1"))
	eventually(t, "the new version", func() bool {
		d, err := h.Current().Validate(context.Background(), &sdk.Request{})
		return err == nil && d.Labels["v"] == "v1"
	})
	if st := h.Stats(); st.Missing || st.Reloads != 1 || st.Refusals != 0 {
		t.Errorf("stats %+v", st)
	}
	// Back: no more errors.
	n := logs.count("script removed")
	time.Sleep(5 * missingLogEvery) // a quiet period: nothing may be logged in it
	if m := logs.count("script removed"); m != n {
		t.Errorf("removal still logged after the script came back (%d more lines)", m-n)
	}
	h.Close()
}

// A bundle directory removed and made again (a deploy by rename) keeps
// serving meanwhile and is watched again afterwards: later edits reload.
func TestBundleDirectoryRemovedAndRecreated(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	root := t.TempDir()
	dir := filepath.Join(root, "b")
	mk := func(v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeAtomic(t, filepath.Join(dir, "lib", "m.js"), "exports.v = '"+v+"';")
		writeAtomic(t, filepath.Join(dir, "index.js"), "var m = require('./lib/m.js');\nexports.validate = function () { return {labels: {v: m.v}} };")
	}
	mk("a")
	h, err := Watch(context.Background(), dir, DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	label := func() string {
		d, err := h.Current().Validate(context.Background(), &sdk.Request{})
		if err != nil {
			return err.Error()
		}
		return d.Labels["v"]
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the removal to be noticed", func() bool { return h.Stats().Missing })
	if v := label(); v != "a" {
		t.Fatalf("while removed: %q", v)
	}
	mk("b")
	eventually(t, "the recreated bundle", func() bool { return label() == "b" })
	writeAtomic(t, filepath.Join(dir, "lib", "m.js"), "exports.v = 'c';")
	eventually(t, "an edit in the recreated bundle", func() bool { return label() == "c" })
}

func TestWatchBundleDirectory(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, "index.js"), "var m = require('./lib/m.js');\nexports.validate = function () { return {labels: {v: m.v}} };")
	if err := os.Mkdir(filepath.Join(dir, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(dir, "lib", "m.js"), "exports.v = 'a';")
	ctx, cancel := context.WithCancel(context.Background())
	h, err := Watch(ctx, dir, DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A change in a module of the bundle reloads it.
	writeAtomic(t, filepath.Join(dir, "lib", "m.js"), "exports.v = 'b';")
	eventually(t, "the module change", func() bool {
		d, err := h.Current().Validate(context.Background(), &sdk.Request{})
		return err == nil && d.Labels["v"] == "b"
	})
	// Canceling the context stops the watcher.
	cancel()
	<-h.done
}

func TestWatchRefusesABadFirstVersion(t *testing.T) {
	dir := t.TempDir()
	p := writeScript(t, dir, "s.js", validVersion("v0"))
	writeScript(t, dir, "s.cases.yaml", "cases:\n  - expect: {validate: {labels: {v: v9}}}\n")
	_, err := Watch(context.Background(), p, DefaultOptions(), nil, nil)
	if err == nil || !strings.Contains(err.Error(), `validate.labels.v: got "v0", want "v9"`) {
		t.Fatalf("error %v", err)
	}
}

// watchTimings sets the watcher's timings for the Hosts a test opens: the
// poll (0: none, so that a test sees what notifications alone catch), the
// debounce and its maximum delay.
func watchTimings(t *testing.T, poll, debounce, maxDelay time.Duration) {
	t.Helper()
	p, d, m := pollEvery, reloadDebounce, reloadMaxDelay
	pollEvery, reloadDebounce, reloadMaxDelay = poll, debounce, maxDelay
	t.Cleanup(func() { pollEvery, reloadDebounce, reloadMaxDelay = p, d, m })
}

// notified fails the test when h got no file notifications (the system's
// limit of inotify instances reached): the test is about what they see.
func notified(t *testing.T, h *Host) {
	t.Helper()
	if h.watcher == nil {
		t.Fatal("no file notifications for this Host (inotify instances exhausted?)")
	}
}

// writeInPlace rewrites a file without replacing it (same inode). It
// overwrites, then cuts what is left: content of the old length is never
// seen empty or half written by a check that reads it meanwhile.
func writeInPlace(t testing.TB, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(content), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(content))); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// swapLink points link at target atomically, as `ln -s target tmp && mv -T
// tmp link` does.
func swapLink(t testing.TB, target, link string) {
	t.Helper()
	tmp := link + "_tmp"
	if err := os.Symlink(target, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// label returns the v label the serving version's validate returns.
func label(h *Host) string {
	d, err := h.Current().Validate(context.Background(), &sdk.Request{})
	if err != nil {
		return err.Error()
	}
	return d.Labels["v"]
}

// waitLabel waits until the serving version answers v.
func waitLabel(t testing.TB, h *Host, v string) {
	t.Helper()
	eventually(t, "version "+v+" to serve", func() bool { return label(h) == v })
}

func bundleIndex() string {
	return "var l = require('./lib/l.js');\nexports.validate = function () { return {labels: {v: l.v}} };\n"
}

// A file that is a symbolic link: an edit of its target, in place or by
// rename, is a change, and so is the link pointed elsewhere.
func TestWatchFollowsSymlinkedFile(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 0, reloadDebounce, reloadMaxDelay)
	dir := t.TempDir()
	writeScript(t, dir, "other/c.js", validVersion("v0"))
	p := filepath.Join(dir, "c.js")
	mustSymlink(t, "other/c.js", p)
	h, err := Watch(context.Background(), p, DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	notified(t, h)
	writeInPlace(t, filepath.Join(dir, "other", "c.js"), validVersion("v1"))
	waitLabel(t, h, "v1")
	writeAtomic(t, filepath.Join(dir, "other", "c.js"), validVersion("v2"))
	waitLabel(t, h, "v2")
	writeScript(t, dir, "other/d.js", validVersion("v3"))
	swapLink(t, "other/d.js", p)
	waitLabel(t, h, "v3")
	writeInPlace(t, filepath.Join(dir, "other", "d.js"), validVersion("v4"))
	waitLabel(t, h, "v4")
	if st := h.Stats(); st.Reloads != 4 || st.Missing || st.Refusals != 0 {
		t.Errorf("stats %+v", st)
	}
}

// The layout of a Kubernetes ConfigMap volume: k.js -> ..data/k.js, and
// ..data -> ..<timestamp> swapped by rename. Each swap is a change, checked
// with the cases file that comes with it.
func TestWatchConfigMapSwap(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 0, reloadDebounce, reloadMaxDelay)
	dir := t.TempDir()
	cases := "cases:\n  - expect: {validate: {labels: {ok: \"yes\"}}}\n"
	deploy := func(ts, src string) {
		t.Helper()
		writeScript(t, dir, ts+"/k.js", src)
		writeScript(t, dir, ts+"/k.cases.yaml", cases)
		swapLink(t, ts, filepath.Join(dir, "..data"))
	}
	writeScript(t, dir, "..2026_12_04_01/k.js", validVersion("v1"))
	writeScript(t, dir, "..2026_12_04_01/k.cases.yaml", cases)
	mustSymlink(t, "..2026_12_04_01", filepath.Join(dir, "..data"))
	mustSymlink(t, "..data/k.js", filepath.Join(dir, "k.js"))
	mustSymlink(t, "..data/k.cases.yaml", filepath.Join(dir, "k.cases.yaml"))
	h, err := Watch(context.Background(), filepath.Join(dir, "k.js"), DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	notified(t, h)
	deploy("..2026_12_04_02", validVersion("v2"))
	os.RemoveAll(filepath.Join(dir, "..2026_12_04_01"))
	waitLabel(t, h, "v2")
	deploy("..2026_12_04_03", validVersion("v3"))
	os.RemoveAll(filepath.Join(dir, "..2026_12_04_02"))
	waitLabel(t, h, "v3")
	// A version that fails the cases it comes with is refused.
	deploy("..2026_12_04_04", "exports.validate = function () { return {labels: {ok: \"no\", v: \"bad\"}} };\n")
	eventually(t, "the refusal", func() bool { return h.Stats().Refusals == 1 })
	if v := label(h); v != "v3" {
		t.Fatalf("after the refusal: %q", v)
	}
	deploy("..2026_12_04_05", validVersion("v5"))
	waitLabel(t, h, "v5")
	if st := h.Stats(); st.Reloads != 3 || st.Missing {
		t.Errorf("stats %+v", st)
	}
}

// A bundle whose directory is a symbolic link (cur -> releases/v1): edits
// inside the release are changes; the link swapped to another release is
// one, and edits in the new release are too, not those in the old one.
func TestWatchSymlinkedBundleRoot(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 0, reloadDebounce, reloadMaxDelay)
	dir := t.TempDir()
	release := func(name, v string) {
		t.Helper()
		writeScript(t, dir, "releases/"+name+"/index.js", bundleIndex())
		writeScript(t, dir, "releases/"+name+"/lib/l.js", "exports.v = '"+v+"';\n")
	}
	release("v1", "a")
	cur := filepath.Join(dir, "cur")
	mustSymlink(t, "releases/v1", cur)
	h, err := Watch(context.Background(), cur, DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	notified(t, h)
	writeAtomic(t, filepath.Join(dir, "releases", "v1", "lib", "l.js"), "exports.v = 'b';\n")
	waitLabel(t, h, "b")
	writeInPlace(t, filepath.Join(dir, "releases", "v1", "lib", "l.js"), "exports.v = 'c';\n")
	waitLabel(t, h, "c")
	release("v2", "d")
	swapLink(t, "releases/v2", cur)
	waitLabel(t, h, "d")
	writeAtomic(t, filepath.Join(dir, "releases", "v2", "lib", "l.js"), "exports.v = 'e';\n")
	waitLabel(t, h, "e")
	// A module added in a new subdirectory of the release.
	writeScript(t, dir, "releases/v2/lib/more/m.js", "exports.v = 'f';\n")
	writeAtomic(t, filepath.Join(dir, "releases", "v2", "lib", "l.js"), "exports.v = require('./more/m.js').v;\n")
	waitLabel(t, h, "f")
	writeInPlace(t, filepath.Join(dir, "releases", "v2", "lib", "more", "m.js"), "exports.v = 'g';\n")
	waitLabel(t, h, "g")
	// The old release is not served any more: its edits are not changes.
	writeAtomic(t, filepath.Join(dir, "releases", "v1", "lib", "l.js"), "exports.v = 'old';\n")
	writeAtomic(t, filepath.Join(dir, "releases", "v2", "lib", "more", "m.js"), "exports.v = 'h';\n")
	waitLabel(t, h, "h")
	if st := h.Stats(); st.Reloads != 7 || st.Refusals != 0 || st.Missing {
		t.Errorf("stats %+v", st)
	}
}

// The directory of a script file replaced by rename (a deploy by
// directory): the new directory's file serves, and later edits in it
// reload, not those in the old one.
func TestWatchFileDirectoryReplaced(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 0, reloadDebounce, reloadMaxDelay)
	dir := t.TempDir()
	p := writeScript(t, dir, "hooks/a.js", validVersion("v1"))
	h, err := Watch(context.Background(), p, DefaultOptions(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	notified(t, h)
	writeScript(t, dir, "hooks.new/a.js", validVersion("v2"))
	if err := os.Rename(filepath.Join(dir, "hooks"), filepath.Join(dir, "hooks.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "hooks.new"), filepath.Join(dir, "hooks")); err != nil {
		t.Fatal(err)
	}
	waitLabel(t, h, "v2")
	writeAtomic(t, p, validVersion("v3"))
	waitLabel(t, h, "v3")
	writeInPlace(t, p, validVersion("v4"))
	waitLabel(t, h, "v4")
	writeAtomic(t, filepath.Join(dir, "hooks.old", "a.js"), validVersion("old"))
	writeAtomic(t, p, validVersion("v5"))
	waitLabel(t, h, "v5")
	if st := h.Stats(); st.Reloads != 4 || st.Refusals != 0 || st.Missing {
		t.Errorf("stats %+v", st)
	}
}

// linkedScript makes dir/s.js a hard link of dir/src/s.js: an edit in place
// through src/s.js changes the script without any notification in dir.
func linkedScript(t *testing.T, content string) (script, src string) {
	t.Helper()
	dir := t.TempDir()
	src = writeScript(t, dir, "src/s.js", content)
	script = filepath.Join(dir, "s.js")
	if err := os.Link(src, script); err != nil {
		t.Skipf("hard links: %v", err)
	}
	return script, src
}

// The poll picks up a change no notification tells of; content that did
// not change is neither compiled nor logged again, nor is refused content
// refused again.
func TestWatchPollPicksUpMissedChanges(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 5*time.Millisecond, reloadDebounce, reloadMaxDelay)
	p, src := linkedScript(t, validVersion("v0"))
	var logs lockedLog
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&logs)
	h, err := Watch(context.Background(), p, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	writeInPlace(t, src, validVersion("v1"))
	waitLabel(t, h, "v1")
	if logs.count(`"via":"poll"`) != 1 {
		t.Errorf("reload not logged as the poll's:\n%s", logs.String())
	}
	quiet := func(what string) {
		t.Helper()
		compiles, lines, polls := h.compiles.Load(), logs.count("\n"), h.polls.Load()
		eventually(t, "ten more polls", func() bool { return h.polls.Load() >= polls+10 })
		if c, l := h.compiles.Load(), logs.count("\n"); c != compiles || l != lines {
			t.Errorf("%s: %d compiles and %d log lines in ten polls", what, c-compiles, l-lines)
		}
	}
	quiet("unchanged")
	bad := "exports.validate = function ( {"
	writeInPlace(t, src, bad+strings.Repeat(" ", len(validVersion("v1"))-len(bad)-1)+"\n") // same length: see writeInPlace
	eventually(t, "the refusal", func() bool { return h.Stats().Refusals == 1 })
	quiet("refused content unchanged")
	writeInPlace(t, src, validVersion("v2"))
	waitLabel(t, h, "v2")
	if st := h.Stats(); st.Reloads != 2 || st.Refusals != 1 {
		t.Errorf("stats %+v", st)
	}
}

// Without file notifications (none to be had), the poll alone serves.
func TestWatchWithoutNotificationsPolls(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 5*time.Millisecond, reloadDebounce, reloadMaxDelay)
	saved := newWatcher
	newWatcher = func() (*fsnotify.Watcher, error) { return nil, fmt.Errorf("too many open files") }
	defer func() { newWatcher = saved }()
	p := writeScript(t, t.TempDir(), "s.js", validVersion("v0"))
	var logs lockedLog
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&logs)
	h, err := Watch(context.Background(), p, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if logs.count("not notified") != 1 {
		t.Errorf("no warning:\n%s", logs.String())
	}
	writeAtomic(t, p, validVersion("v1"))
	waitLabel(t, h, "v1")
}

// Recheck reads the files now: a change no notification told of serves
// when it returns; an unchanged script is not compiled again.
func TestRecheckPicksUpMissedChange(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 0, reloadDebounce, reloadMaxDelay)
	p, src := linkedScript(t, validVersion("v0"))
	var logs lockedLog
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&logs)
	h, err := Watch(context.Background(), p, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	writeInPlace(t, src, validVersion("v1"))
	h.Recheck()
	if v := label(h); v != "v1" {
		t.Fatalf("after Recheck: %q", v)
	}
	compiles, lines := h.compiles.Load(), logs.count("\n")
	h.Recheck()
	if c, l := h.compiles.Load(), logs.count("\n"); c != compiles || l != lines {
		t.Errorf("unchanged: %d compiles, %d log lines", c-compiles, l-lines)
	}
	if st := h.Stats(); st.Reloads != 1 {
		t.Errorf("stats %+v", st)
	}
	h.Close()
	h.Recheck() // closed: returns
}

// A script rewritten without pause still gets new versions, each checked
// with its cases, at least every maximum delay. The writes come much faster
// than the debounce: without the maximum delay none would be checked until
// they stop. The stream stops once two new versions served, or at a
// deadline.
func TestWatchMaxDelayUnderStreamOfWrites(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const debounce, maxDelay, pace = 250 * time.Millisecond, 400 * time.Millisecond, 20 * time.Millisecond
	watchTimings(t, 0, debounce, maxDelay)
	dir := t.TempDir()
	p := writeScript(t, dir, "s.js", validVersion("v0"))
	writeScript(t, dir, "s.cases.yaml", "cases:\n  - expect: {validate: {labels: {ok: \"yes\"}}}\n")
	var logs lockedLog
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&logs)
	h, err := Watch(context.Background(), p, opts, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	notified(t, h)
	defer func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs.String())
		}
	}()
	seen := map[string]bool{}
	bad, writes := 0, 0
	var gap time.Duration // the longest pause between two writes
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	prev := start
	for len(seen) < 2 && time.Now().Before(deadline) {
		writes++
		if writes%3 == 0 {
			writeAtomic(t, p, "exports.validate = function () { return {labels: {ok: \"no\", v: \"bad\"}} };\n") // fails its cases
		} else {
			writeAtomic(t, p, validVersion(fmt.Sprintf("v%d", writes)))
		}
		now := time.Now()
		gap = max(gap, now.Sub(prev))
		prev = now
		d, err := h.Current().Validate(context.Background(), &sdk.Request{})
		if err != nil || d.Labels["ok"] != "yes" {
			bad++
		}
		if v := d.Labels["v"]; v != "v0" {
			seen[v] = true
		}
		time.Sleep(pace) // the pace of the writes, well within the debounce
	}
	t.Logf("%d writes in %v, longest pause %v: %d new versions served", writes, time.Since(start).Round(time.Millisecond), gap.Round(time.Millisecond), len(seen))
	if len(seen) < 2 {
		t.Errorf("%d new versions served during %v of writes every %v (debounce %v, max delay %v)", len(seen), time.Since(start).Round(time.Millisecond), pace, debounce, maxDelay)
	}
	if bad != 0 {
		t.Errorf("%d calls answered by a version that fails its cases", bad)
	}
	writeAtomic(t, p, validVersion("end"))
	waitLabel(t, h, "end")
}

// String returns what was logged.
func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the logged lines that contain s, decoded.
func (l *lockedLog) lines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(l.String(), "\n") {
		if !strings.Contains(line, s) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// A refusal is logged once, with where the error is, the refused version's
// ID and the version that keeps serving.
func TestWatchRefusalLoggedOnce(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	watchTimings(t, 5*time.Millisecond, reloadDebounce, reloadMaxDelay)
	dir := t.TempDir()
	p := writeScript(t, dir, "s.js", validVersion("v0"))
	var logs lockedLog
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&logs)
	var callbacks atomic.Int64
	h, err := Watch(context.Background(), p, opts, nil, func(error) { callbacks.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	serving := h.Current().ID()

	bad := "exports.validate = function (req) {\n  return {labels: {ok: \"yes\"}\n};\n"
	writeAtomic(t, p, bad)
	eventually(t, "the refusal", func() bool { return h.Stats().Refusals == 1 })
	polls := h.polls.Load()
	eventually(t, "five more polls", func() bool { return h.polls.Load() >= polls+5 })
	_, cerr := Compile(p, DefaultOptions())
	var le *LoadError
	if !errors.As(cerr, &le) || le.Line == 0 {
		t.Fatalf("bad version compiles to %v", cerr)
	}
	got := logs.lines(t, "refused")
	if len(got) != 1 {
		t.Fatalf("%d refusal lines:\n%s", len(got), logs.String())
	}
	want := map[string]any{
		"file":    p,
		"at":      fmt.Sprintf("%s:%d:%d", p, le.Line, le.Column),
		"refused": fmt.Sprintf("%016x", xxhash.Sum64String(fmt.Sprintf("s.js\x00%d\x00%s", len(bad), bad)))[:12],
		"version": serving,
	}
	for k, v := range want {
		if got[0][k] != v {
			t.Errorf("refusal line %s = %v, want %v", k, got[0][k], v)
		}
	}

	// A version that compiles but fails its cases: its own ID.
	failing := "exports.validate = function () { return {labels: {v: \"no\"}} };\n"
	writeScript(t, dir, "s.cases.yaml", "cases:\n  - expect: {validate: {labels: {v: v0}}}\n")
	writeAtomic(t, p, failing)
	eventually(t, "the second refusal", func() bool { return h.Stats().Refusals == 2 })
	other, err := Compile(writeScript(t, t.TempDir(), "s.js", failing), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	got = logs.lines(t, "refused")
	if len(got) != 2 || got[1]["refused"] != other.ID() || got[1]["version"] != serving || got[1]["at"] != filepath.Join(dir, "s.cases.yaml") {
		t.Errorf("refusal lines %v, want refused %s", got, other.ID())
	}
	if callbacks.Load() != 2 {
		t.Errorf("%d refusal callbacks", callbacks.Load())
	}
}

// The ID of content read by a check is the version ID it compiles to.
func TestContentIDIsTheVersionID(t *testing.T) {
	dir := t.TempDir()
	single := writeScript(t, dir, "one/s.js", validVersion("x"))
	writeScript(t, dir, "b/index.js", bundleIndex())
	writeScript(t, dir, "b/lib/l.js", "exports.v = require('./data.json').v;\n")
	writeScript(t, dir, "b/lib/data.json", "{\"v\": \"y\"}\n")
	for _, p := range []string{single, filepath.Join(dir, "b")} {
		s, err := Compile(p, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(p)
		if id := (&Host{path: p, abs: abs}).fingerprint().id; id != s.ID() {
			t.Errorf("%s: content ID %s, version ID %s", p, id, s.ID())
		}
	}
}

// resolve follows links one component at a time, relative and absolute,
// through .. and link chains, and records the links and entries it saw.
func TestResolveFollowsLinks(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writeScript(t, dir, "real/x/f.js", "")
	mustSymlink(t, "real/x", filepath.Join(dir, "a"))                 // relative
	mustSymlink(t, filepath.Join(dir, "a"), filepath.Join(dir, "b"))  // absolute, to a link
	mustSymlink(t, "../x/f.js", filepath.Join(dir, "real", "x", "g")) // through ..
	c := resolve(filepath.Join(dir, "b", "g"))
	if want := filepath.Join(dir, "real", "x", "f.js"); c.target != want {
		t.Errorf("target %q, want %q", c.target, want)
	}
	wantLinks := []string{filepath.Join(dir, "b"), filepath.Join(dir, "a"), filepath.Join(dir, "real", "x", "g")}
	if fmt.Sprint(c.links) != fmt.Sprint(wantLinks) {
		t.Errorf("links %v, want %v", c.links, wantLinks)
	}
	if m := resolve(filepath.Join(dir, "b", "missing", "f.js")); m.target != "" || m.last() != filepath.Join(dir, "real", "x", "missing") {
		t.Errorf("missing: %+v", m)
	}
	mustSymlink(t, "loop", filepath.Join(dir, "loop"))
	if l := resolve(filepath.Join(dir, "loop")); l.target != "" {
		t.Errorf("loop resolved to %q", l.target)
	}
}
