package scripts

import (
	"errors"
	"fmt"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
	"weak"
)

// The memory watch bounds how much a call makes the Go heap grow. goja has
// no allocation accounting, and the guarded built-ins bound what one
// built-in allocates, not what a loop keeps: a loop that pushes 1 MB
// strings into an array keeps 500 MB after 300 ms, one that pushes object
// or array literals (single instructions, no built-in) 130 to 210 MB. The
// deadline bounds that by time only, and the top-level code of a runtime
// runs for up to Options.CallTimeout.
//
// While a watched call runs, a process-wide sampler reads the heap
// (/memory/classes/heap/objects:bytes) every 5 ms: the first
// sample that sees the call is its baseline, and a later one more than
// Options.MaxCallMemory above it interrupts the call, uncatchably, and its
// runtime is discarded, which frees what it kept. A call is watched when
// its deadline is more than memWatchAfter away: a shorter call cannot
// allocate much before its deadline stops it (with a 10 ms budget the
// loops of memwatch_test.go kept at most 12 MB, against the 64 MiB
// default), and the sampler then never runs. The sampler runs only while
// a watched call is in progress; each sample wakes it, which costs the
// calls running meanwhile a few percent in a microbenchmark
// (BenchmarkScenarioHooks), hence 5 ms and not less. At the fastest
// allocation measured (about 3 GB/s, 1 MB strings) a call overshoots the
// bound by up to 15 MB before it is stopped.
//
// The heap is the whole process's: what other requests allocate during a
// watched call counts too, and so does garbage not yet collected. So
// while one script makes the heap grow, every watched call in progress is
// measured against the same growth, and together they stay under about
// MaxCallMemory. A call that allocates nothing but runs long while other
// requests allocate MaxCallMemory of garbage between two collections is
// stopped too: that takes hundreds of milliseconds at tens of thousands of
// requests per second, far longer than a hook's budget.
const (
	memWatchPeriod = 5 * time.Millisecond
	memWatchAfter  = 10 * time.Millisecond
)

// heapMetric is the heap the memory watch samples: live objects and dead
// ones not yet swept.
const heapMetric = "/memory/classes/heap/objects:bytes"

// ErrMemory is the cause of a call (or top-level code) stopped by the
// memory watch; errors.Is finds it in a CallError or LoadError chain.
var ErrMemory = errors.New("the heap grew past the script's memory bound")

// memoryError is the interrupt of a call stopped by the memory watch.
type memoryError struct {
	grew, limit uint64
}

func (e *memoryError) Error() string {
	return fmt.Sprintf("stopped: the heap grew by %.1f MiB while it ran (Options.MaxCallMemory = %.1f MiB)",
		float64(e.grew)/(1<<20), float64(e.limit)/(1<<20))
}

func (e *memoryError) Unwrap() error { return ErrMemory }

// memWatch is the process's sampler and the watchdogs it samples for.
var memWatch struct {
	mu      sync.Mutex
	dogs    []weak.Pointer[watchdog]
	running atomic.Bool // the sampler is running
}

// register adds w to the watchdogs the sampler looks at. It is held
// weakly: a runtime no longer used is collected without being unregistered.
func (w *watchdog) register() {
	memWatch.mu.Lock()
	memWatch.dogs = append(memWatch.dogs, weak.Make(w))
	memWatch.mu.Unlock()
}

// unregister removes w (a discarded runtime's).
func (w *watchdog) unregister() {
	p := weak.Make(w)
	memWatch.mu.Lock()
	for i, d := range memWatch.dogs {
		if d == p {
			last := len(memWatch.dogs) - 1
			memWatch.dogs[i] = memWatch.dogs[last]
			memWatch.dogs[last] = weak.Pointer[watchdog]{}
			memWatch.dogs = memWatch.dogs[:last]
			break
		}
	}
	memWatch.mu.Unlock()
}

// startMemWatch starts the sampler unless it runs.
func startMemWatch() {
	if memWatch.running.CompareAndSwap(false, true) {
		go memWatchLoop()
	}
}

// memWatchLoop samples until no watched call is in progress. A call armed
// just as it stops is seen by the last check after running is cleared, or
// its arm sees running cleared and starts a sampler itself (the two may
// overlap for that last check).
func memWatchLoop() {
	t := time.NewTicker(memWatchPeriod)
	defer t.Stop()
	var sm sampler
	for range t.C {
		if sm.tick() {
			continue
		}
		memWatch.running.Store(false)
		if !sm.tick() || !memWatch.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// sampler is a memWatchLoop's own state.
type sampler struct {
	dogs   []*watchdog // of one tick
	sample []metrics.Sample
}

// tick checks every watched call in progress against its bound and reports
// whether there was one.
func (sm *sampler) tick() bool {
	memWatch.mu.Lock()
	dogs := sm.dogs[:0]
	live := memWatch.dogs[:0]
	for _, p := range memWatch.dogs {
		if w := p.Value(); w != nil {
			live = append(live, p)
			dogs = append(dogs, w)
		}
	}
	clear(memWatch.dogs[len(live):])
	memWatch.dogs = live
	memWatch.mu.Unlock()

	var heap uint64
	read, any := false, false
	for _, w := range dogs {
		w.mu.Lock()
		if w.watched && w.cause == nil {
			any = true
			if !read {
				if sm.sample == nil {
					sm.sample = []metrics.Sample{{Name: heapMetric}}
				}
				metrics.Read(sm.sample)
				heap, read = sm.sample[0].Value.Uint64(), true
			}
			w.checkMemory(heap)
		}
		w.mu.Unlock()
	}
	clear(dogs) // hold no runtime between ticks
	sm.dogs = dogs[:0]
	return any
}

// checkMemory measures the watched call in progress against the heap now
// (w.mu held): the first sample is its baseline.
func (w *watchdog) checkMemory(heap uint64) {
	if w.memCall != w.calls {
		w.memCall, w.memBase = w.calls, heap
		return
	}
	if heap > w.memBase && heap-w.memBase > w.limit {
		w.cause = &memoryError{grew: heap - w.memBase, limit: w.limit}
		w.rt.Interrupt(w.cause)
	}
}
