package scripts

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// Loops that keep what they allocate, each a validate body. The deadline
// is seconds away: only the memory bound can stop them in time. Measured
// without the bound, with a 300 ms budget: 130 MB (object literals) to
// 550 MB (1 MB strings) kept.
var keepers = []struct{ name, body string }{
	{"1 MB strings", `var a = []; var s = "x".repeat(1 << 20); for (var i = 0; ; i++) a.push(s.slice(1) + "y")`},
	{"array literals", `var a = []; for (var i = 0; ; i++) a.push([i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i, i])`},
	{"object literals", `var a = []; for (var i = 0; ; i++) a.push({ a: i, b: [i], c: "x" + i })`},
	{"a Map", `var m = new Map(); for (var i = 0; ; i++) m.set(i, { i: i })`},
	{"copies of a big array", `var a = []; var b = Array(1 << 17).fill(0); for (var i = 0; ; i++) a.push(b.slice())`},
	{"split", `var a = []; var s = "x".repeat(1 << 17); for (var i = 0; ; i++) a.push(s.split(""))`},
}

// keptBound is what the heap may peak at in these tests: the 64 MiB bound,
// the overshoot between two samples (5 ms), and garbage not yet collected
// (as in TestAdversarialScriptsFailWithinBudget).
const keptBound = 128 << 20

func TestMemoryBoundStopsLoopsThatKeepWhatTheyAllocate(t *testing.T) {
	for _, c := range keepers {
		t.Run(c.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.PoolSize = 1
			s := compileSrc(t, "exports.validate = function (req) {\nif (req.id !== \"mem\") return {};\n"+c.body+"\n};", opts)
			runtime.GC()
			w := watchHeap()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			start := time.Now()
			_, err := s.Validate(ctx, &sdk.Request{ID: "mem"})
			elapsed := time.Since(start)
			cancel()
			peak := w.Stop()
			t.Logf("%-22s %8v  peak heap %6.1f MB  err: %.110v", c.name, elapsed.Round(time.Millisecond), float64(peak)/(1<<20), err)
			if !errors.Is(err, ErrMemory) {
				t.Fatalf("error %v, want ErrMemory", err)
			}
			var ce *CallError
			if !errors.As(err, &ce) || !strings.Contains(ce.Msg, "Options.MaxCallMemory = 64.0 MiB") {
				t.Errorf("error %q does not name the bound", err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v unwraps to DeadlineExceeded: the deadline did not pass", err)
			}
			if peak > keptBound {
				t.Errorf("peak heap %d MB, want < %d MB", peak>>20, keptBound>>20)
			}
			// The runtime that kept it all is discarded; the version keeps
			// serving on a new one.
			ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel2()
			if _, err := s.Validate(ctx2, &sdk.Request{ID: "after"}); err != nil {
				t.Fatalf("the call after: %v", err)
			}
			if got := s.Stats().Discarded; got < 1 {
				t.Errorf("discarded runtimes %d, want >= 1", got)
			}
		})
	}
}

func TestMemoryBoundStopsTopLevelCode(t *testing.T) {
	opts := DefaultOptions()
	opts.CallTimeout = 20 * time.Second
	runtime.GC()
	w := watchHeap()
	_, err := Compile(writeScript(t, t.TempDir(), "s.js", `"use strict";
var kept = [];
for (var i = 0; ; i++) kept.push({ a: i, b: [i, i] });
exports.validate = function () {};
`), opts)
	peak := w.Stop()
	t.Logf("peak heap %.1f MB, err: %v", float64(peak)/(1<<20), err)
	var le *LoadError
	if !errors.As(err, &le) || !errors.Is(err, ErrMemory) {
		t.Fatalf("Compile: %v, want a LoadError for ErrMemory", err)
	}
	if !strings.Contains(le.Msg, "top-level code stopped: the heap grew by") || !strings.HasSuffix(le.File, "s.js") {
		t.Errorf("error %q", err)
	}
	if peak > keptBound {
		t.Errorf("peak heap %d MB, want < %d MB", peak>>20, keptBound>>20)
	}
}

// Garbage is not kept: a call that allocates several times the bound and
// drops it as it goes finishes.
func TestMemoryBoundLetsGarbageBe(t *testing.T) {
	s := compileSrc(t, `exports.validate = function () {
  var big = "x".repeat((1 << 20) - 8), n = 0;
  for (var i = 0; i < 400; i++) { var s = big + i; n += s.length; }
  var o;
  for (var j = 0; j < 100000; j++) { o = { a: j, b: [j, j] }; }
  return { labels: { n: String(n) } };
};`, DefaultOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, err := s.Validate(ctx, &sdk.Request{ID: "garbage"})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if d.Labels["n"] == "" {
		t.Errorf("decision %+v", d)
	}
}

// The sampler runs only while a watched call does: calls with a short
// budget never start it, and it stops once the last watched call returns.
func TestMemoryWatchRunsOnlyForLongCalls(t *testing.T) {
	s := compileSrc(t, `exports.validate = function () { return {} };`, DefaultOptions())
	waitStopped := func() {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); memWatch.running.Load(); {
			if time.Now().After(end) {
				t.Fatal("the memory watch still runs 5 s after the last watched call")
			}
			time.Sleep(time.Millisecond)
		}
	}
	call := func(budget time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		if _, err := s.Validate(ctx, &sdk.Request{ID: "w"}); err != nil {
			t.Fatal(err)
		}
	}
	waitStopped()
	for range 100 {
		call(5 * time.Millisecond)
	}
	if memWatch.running.Load() {
		t.Fatal("a call with a 5 ms budget started the memory watch")
	}
	call(time.Second)
	waitStopped()
}
