package scripts

import (
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
type pool struct {
	permits chan struct{} // a call holds one while it has or awaits a runtime
	mu      sync.Mutex
	idle    []*vmState // most recently used last
	ready   chan struct{}

	newState func() (*vmState, error)
	live     int       // runtimes made, idle or checked out
	want     int       // runtimes to keep: the most needed at once so far
	waiting  int       // calls waiting for a runtime
	making   bool      // the maker is running
	nextMake time.Time // the maker rests until then
	lastErr  error     // of the last runtime that could not be made
}

// makePace is how long the maker rests after making a runtime, in times
// the making took.
const makePace = 4

func newPool(size int, first *vmState, newState func() (*vmState, error)) *pool {
	p := &pool{permits: make(chan struct{}, size), idle: make([]*vmState, 0, size),
		ready: make(chan struct{}, size), newState: newState}
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

// put returns st, or nil for a runtime discarded (made up for in the
// background), and the caller's permit.
func (p *pool) put(st *vmState) {
	p.mu.Lock()
	if st != nil {
		p.push(st)
	} else {
		p.live--
		p.startMaker()
	}
	p.mu.Unlock()
	p.permits <- struct{}{}
}

// release returns the permit of a call that got no runtime.
func (p *pool) release() { p.permits <- struct{}{} }

// startMaker starts the maker if runtimes are missing (p.mu held).
func (p *pool) startMaker() {
	if !p.making && p.live < p.want {
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
		if p.live >= p.want {
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
		p.mu.Lock()
		p.nextMake = time.Now().Add(makePace * max(took, time.Millisecond))
		if err != nil {
			p.lastErr = err
			p.want = p.live
		} else {
			p.lastErr = nil
			p.live++
			p.push(st)
		}
		p.mu.Unlock()
	}
}
