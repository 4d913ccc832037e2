package scripts

import "sync"

// pool holds a version's runtimes: at most size checked out at once, the
// idle ones on a stack so that a call takes the runtime used last, whose
// objects are still in the CPU's caches (a queue would hand out the one
// idle longest).
type pool struct {
	permits chan struct{} // a call holds one while it has a runtime
	mu      sync.Mutex
	idle    []*vmState // most recently used last
}

func newPool(size int, first *vmState) *pool {
	p := &pool{permits: make(chan struct{}, size), idle: make([]*vmState, 0, size)}
	for range size {
		p.permits <- struct{}{}
	}
	if first != nil {
		p.idle = append(p.idle, first)
	}
	return p
}

// take returns the most recently used idle runtime, or nil when the caller
// must create one; the caller holds a permit.
func (p *pool) take() *vmState {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	st := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return st
}

// put returns st (nil: a runtime discarded) and the caller's permit.
func (p *pool) put(st *vmState) {
	if st != nil {
		p.mu.Lock()
		p.idle = append(p.idle, st)
		p.mu.Unlock()
	}
	p.permits <- struct{}{}
}
