package scripts

import (
	"slices"
	"sync"
	"time"
)

// pool holds a version's runtimes: at most size checked out at once, the
// idle ones on a stack so that a call takes the runtime used last, whose
// objects are still in the CPU's caches (a queue would hand out the one
// idle longest).
//
// Runtimes are made in the background, never on a call's path: making one
// runs the script's top-level code, which may take up to
// Options.CallTimeout, far longer than a hook's budget. A call that finds
// no idle runtime asks for one and waits, at most until its deadline, for
// the first that is returned or made. The pool keeps as many runtimes as
// were ever needed at once, and makes up for discarded ones (interrupted,
// overflowed, panicked) in the background too. One runtime is made at a
// time, and after each the maker rests makePace times as long as it took:
// a script whose runtimes keep being discarded costs its maker a fifth of
// a CPU at most, whatever its top-level code does.
//
// A runtime that has served maxCalls calls is replaced: the maker makes
// its successor, and it serves on until the successor is idle in the pool,
// then is dropped with all the script kept in it between calls (a module
// variable that grows on every call, a cache without a bound). Replacing
// before dropping keeps the pool as large as it was: no call waits for the
// replacement.
type pool struct {
	permits chan struct{} // a call holds one while it has or awaits a runtime
	mu      sync.Mutex
	idle    []*vmState // most recently used last
	ready   chan struct{}

	newState func() (*vmState, error)
	drop     func(*vmState) // a runtime replaced, once its successor is made
	maxCalls int            // calls a runtime serves before it is replaced
	live     int            // runtimes made, idle or checked out
	retiring int            // of them, runtimes to replace (marked in this epoch)
	epoch    int            // marks of an earlier epoch are void: their successor could not be made
	want     int            // runtimes to keep: the most needed at once so far
	waiting  int            // calls waiting for a runtime
	making   bool           // the maker is running
	nextMake time.Time      // the maker rests until then
	lastErr  error          // of the last runtime that could not be made
}

// makePace is how long the maker rests after making a runtime, in times
// the making took.
const makePace = 4

func newPool(size, maxCalls int, first *vmState, newState func() (*vmState, error), drop func(*vmState)) *pool {
	p := &pool{permits: make(chan struct{}, size), idle: make([]*vmState, 0, size),
		ready: make(chan struct{}, size), newState: newState, drop: drop, maxCalls: maxCalls}
	for range size {
		p.permits <- struct{}{}
	}
	if first != nil {
		p.idle = append(p.idle, first)
		p.live, p.want = 1, 1
	}
	return p
}

// take returns the most recently used idle runtime; the caller holds a
// permit. With none idle it asks for one and waits until done's channel
// is closed or the deadline passes: nil then, and the last error making a
// runtime, if there was one. done is asked for its channel only when the
// call has to wait: a hook call's context makes its channel (a timer and
// a registration with the request's context) on demand.
func (p *pool) take(deadline time.Time, done interface{ Done() <-chan struct{} }) (*vmState, error) {
	p.mu.Lock()
	if st := p.pop(); st != nil {
		p.mu.Unlock()
		return st, nil
	}
	p.waiting++
	// Every checked-out runtime has a permit and so has this caller: fewer
	// than size runtimes are checked out, and one more can be made.
	if n := p.live - len(p.idle) + p.waiting; n > p.want {
		p.want = min(n, cap(p.permits))
	}
	p.startMaker()
	p.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	doneCh := done.Done()
	for {
		select {
		case <-p.ready:
			p.mu.Lock()
			if st := p.pop(); st != nil {
				p.waiting--
				p.mu.Unlock()
				return st, nil
			}
			p.mu.Unlock()
		case <-doneCh:
			return nil, p.giveUp()
		case <-t.C:
			return nil, p.giveUp()
		}
	}
}

func (p *pool) giveUp() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.waiting--
	return p.lastErr
}

// pop takes the last idle runtime (p.mu held).
func (p *pool) pop() *vmState {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	st := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return st
}

// push makes st idle and wakes a waiting call (p.mu held).
func (p *pool) push(st *vmState) {
	p.idle = append(p.idle, st)
	select {
	case p.ready <- struct{}{}:
	default:
	}
}

// put returns st after a call, or discards it (made up for in the
// background), and returns the caller's permit. A runtime that has served
// maxCalls calls is marked for replacement; one so marked is dropped once
// the pool has its successor.
func (p *pool) put(st *vmState, discard bool) {
	st.calls++
	var dropped *vmState
	p.mu.Lock()
	if st.retiring && st.epoch != p.epoch {
		// Its successor could not be made: it serves maxCalls more.
		st.retiring, st.calls = false, 0
	}
	if !st.retiring && p.maxCalls > 0 && st.calls >= p.maxCalls {
		st.retiring, st.epoch = true, p.epoch
		p.retiring++
	}
	switch {
	case discard:
		p.forget(st)
	case p.isRetiring(st) && p.live-p.retiring >= p.want:
		p.forget(st)
		dropped = st
	default:
		p.push(st)
	}
	p.startMaker()
	p.mu.Unlock()
	p.permits <- struct{}{}
	if dropped != nil {
		p.drop(dropped)
	}
}

// forget removes a checked-out or idle-removed runtime from the counts
// (p.mu held).
func (p *pool) forget(st *vmState) {
	p.live--
	if p.isRetiring(st) {
		p.retiring--
	}
}

// isRetiring reports whether st is to be replaced (p.mu held).
func (p *pool) isRetiring(st *vmState) bool { return st.retiring && st.epoch == p.epoch }

// dropRetired takes the idle runtimes marked for replacement out of the
// pool while it has enough others (p.mu held), returning them.
func (p *pool) dropRetired(out []*vmState) []*vmState {
	for i := 0; i < len(p.idle) && p.live-p.retiring >= p.want && p.retiring > 0; {
		st := p.idle[i]
		if !p.isRetiring(st) {
			i++
			continue
		}
		p.idle = slices.Delete(p.idle, i, i+1)
		p.forget(st)
		out = append(out, st)
	}
	return out
}

// release returns the permit of a call that got no runtime.
func (p *pool) release() { p.permits <- struct{}{} }

// startMaker starts the maker if runtimes are missing (p.mu held).
func (p *pool) startMaker() {
	if !p.making && p.live-p.retiring < p.want {
		p.making = true
		go p.maker()
	}
}

// maker makes runtimes, one at a time and paced, until the pool has the
// ones it wants. A runtime that cannot be made (its top-level code failed
// this time) stops it until a call asks again.
func (p *pool) maker() {
	for {
		p.mu.Lock()
		if p.live-p.retiring >= p.want {
			p.making = false
			p.mu.Unlock()
			return
		}
		rest := time.Until(p.nextMake)
		p.mu.Unlock()
		if rest > 0 {
			time.Sleep(rest)
			continue
		}
		began := time.Now()
		st, err := p.newState()
		took := time.Since(began)
		var dropped []*vmState
		p.mu.Lock()
		p.nextMake = time.Now().Add(makePace * max(took, time.Millisecond))
		if err != nil {
			p.lastErr = err
			p.want = p.live
			// The runtimes marked for replacement serve on.
			p.epoch++
			p.retiring = 0
		} else {
			p.lastErr = nil
			p.live++
			p.push(st)
			dropped = p.dropRetired(dropped)
		}
		p.mu.Unlock()
		for _, st := range dropped {
			p.drop(st)
		}
	}
}
