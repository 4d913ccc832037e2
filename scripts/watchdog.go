package scripts

import (
	"sync"
	"time"
	"weak"

	"github.com/dop251/goja"
)

// watchdog interrupts a runtime at the deadline of the call it runs (or of
// its top-level code), or when the memory watch finds that the call made
// the heap grow past its bound (memwatch.go).
//
// Its timer is not stopped when a call returns, nor set again for each
// call: a call whose deadline is no earlier than the time the timer is set
// for leaves it as it is (the calls of a hook have the same budget, so each
// deadline is usually later than the one before), and when the timer fires
// before the deadline of the call then running, it is set again for that
// deadline. A call thus takes two uncontended locks instead of setting and
// stopping a timer, and the timer fires about once per budget while calls
// keep coming.
//
// The lock orders an interrupt before the end of the call it is for: the
// timer interrupts the runtime only while a call is armed and its deadline
// has passed, and once disarm has returned it can no longer interrupt that
// call; disarm reports whether it did.
type watchdog struct {
	rt    *goja.Runtime
	timer *time.Timer

	limit uint64 // Options.MaxCallMemory

	mu       sync.Mutex
	pending  bool      // the timer is set, to fire at at
	at       time.Time // when the pending timer fires
	deadline time.Time // of the call in progress; zero between calls
	cause    error     // what interrupted the call in progress: errDeadline or a *memoryError
	watched  bool      // the memory watch measures the call in progress
	calls    uint64    // calls armed so far
	memCall  uint64    // the call memBase was sampled for
	memBase  uint64    // the heap when the memory watch first saw it
}

func newWatchdog(rt *goja.Runtime, memLimit int64) *watchdog {
	w := &watchdog{rt: rt, limit: uint64(memLimit)}
	// The timer holds the watchdog weakly: a timer still set for the
	// deadline of a past call must not keep the runtime of a version no
	// longer in use from being collected (a call may have had a deadline
	// hours away).
	wp := weak.Make(w)
	w.timer = time.AfterFunc(time.Hour, func() {
		if w := wp.Value(); w != nil {
			w.fire()
		}
	})
	w.timer.Stop()
	w.register()
	return w
}

// arm starts watching a call with the deadline. A call with more than
// memWatchAfter left is watched by the memory watch too.
func (w *watchdog) arm(deadline time.Time) {
	w.mu.Lock()
	w.deadline, w.cause = deadline, nil
	w.calls++
	left := time.Until(deadline)
	w.watched = left > memWatchAfter
	if !w.pending || w.at.After(deadline) {
		w.timer.Reset(left)
		w.pending, w.at = true, deadline
	}
	watched := w.watched
	w.mu.Unlock()
	if watched && !memWatch.running.Load() {
		startMemWatch()
	}
}

// disarm ends the call, returning what interrupted it: nil, errDeadline
// or a *memoryError.
func (w *watchdog) disarm() (cause error) {
	w.mu.Lock()
	cause = w.cause
	w.deadline, w.cause, w.watched = time.Time{}, nil, false
	w.mu.Unlock()
	return cause
}

// stop stops the timer of a runtime that is discarded.
func (w *watchdog) stop() {
	w.mu.Lock()
	w.timer.Stop()
	w.pending = false
	w.mu.Unlock()
	w.unregister()
}

// fire runs when the timer fires: it interrupts the call in progress if
// its deadline has passed, or sets the timer again for that deadline.
func (w *watchdog) fire() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = false
	if w.deadline.IsZero() {
		return // between calls: the next one sets the timer
	}
	if d := time.Until(w.deadline); d > 0 {
		w.timer.Reset(d)
		w.pending, w.at = true, w.deadline
		return
	}
	if w.cause != nil {
		return // stopped by the memory watch already
	}
	w.cause = errDeadline
	w.rt.Interrupt(errDeadline)
}
