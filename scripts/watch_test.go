package scripts

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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
