package metrics

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// Entry is a kept copy of a finished request.
type Entry struct {
	ID, Route, Service, Endpoint, Method, Path, Outcome, Err string
	Status, Attempts                                         int
	Start                                                    time.Time
	Total, Overhead                                          time.Duration
	stamps                                                   [passport.Capacity]passport.Stamp
	n                                                        int

	// HookFailures counts the hook calls that failed during the request
	// (their HOOK_EXIT stamps say which and how).
	HookFailures int
}

// fill copies r into e; it allocates nothing (a passport longer than
// Capacity keeps its first Capacity-1 stamps and its last).
func (e *Entry) fill(r *proxy.Record) {
	p := r.Passport
	e.ID, e.Route, e.Service, e.Endpoint, e.Method, e.Path, e.Err = r.ID, r.Route, r.Service, r.Endpoint, r.Method, r.Path, r.Err
	e.Outcome, e.Status, e.Attempts, e.HookFailures = r.Outcome.String(), r.Status, r.Attempts, r.HookFailureCount
	e.Start, e.Total, e.Overhead = p.Start(), p.Total(), p.Overhead()
	e.n = min(p.Len(), passport.Capacity)
	for i := 0; i < e.n; i++ {
		e.stamps[i] = p.At(i)
	}
	if p.Len() > passport.Capacity {
		e.stamps[passport.Capacity-1] = p.At(p.Len() - 1)
	}
}

// Passport returns the entry's passport in text form.
func (e *Entry) Passport() string {
	var b []byte
	for i := 0; i < e.n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = passport.AppendStamp(b, e.stamps[i])
	}
	return string(b)
}

// Stamps returns a copy of the entry's stamps.
func (e *Entry) Stamps() []passport.Stamp { return slices.Clone(e.stamps[:e.n]) }

// Ring keeps the most recent requests in preallocated slots: adding one
// copies its stamps and allocates nothing.
type Ring struct {
	mu    sync.Mutex
	slots []Entry
	next  int
	count int
}

// NewRing returns a ring of n entries.
func NewRing(n int) *Ring { return &Ring{slots: make([]Entry, n)} }

// Add copies r into the ring.
func (g *Ring) Add(r *proxy.Record) {
	g.mu.Lock()
	e := &g.slots[g.next]
	g.next = (g.next + 1) % len(g.slots)
	g.count = min(g.count+1, len(g.slots))
	e.fill(r)
	g.mu.Unlock()
}

// Snapshot returns copies of the kept entries, newest first.
func (g *Ring) Snapshot() []Entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Entry, 0, g.count)
	for i := 1; i <= g.count; i++ {
		out = append(out, g.slots[(g.next-i+len(g.slots))%len(g.slots)])
	}
	return out
}

// Slowest keeps the slowest recent requests: a request enters when there is
// room, when a kept one has been there longer than the window, or when it
// is slower than the fastest kept one. Most requests are turned away by two
// atomic loads, without the lock.
type Slowest struct {
	window time.Duration
	// floor is the total time (ns) a request must exceed to enter while
	// refresh (unix ns, when the oldest kept entry leaves the window) has
	// not passed; both are 0 while there is room.
	floor, refresh atomic.Int64

	mu    sync.Mutex
	slots []Entry
	ends  []int64 // each slot's end time, unix ns
	n     int
}

// NewSlowest keeps n requests for at least window each.
func NewSlowest(n int, window time.Duration) *Slowest {
	return &Slowest{window: window, slots: make([]Entry, n), ends: make([]int64, n)}
}

// Add considers r.
func (s *Slowest) Add(r *proxy.Record) {
	p := r.Passport
	total := p.Total()
	end := p.Start().Add(total).UnixNano()
	if int64(total) <= s.floor.Load() && end < s.refresh.Load() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	victim := -1
	if s.n < len(s.slots) {
		victim = s.n
		s.n++
	} else {
		fastest := 0
		for i := range s.slots {
			if s.ends[i] < end-int64(s.window) {
				victim = i
				break
			}
			if s.slots[i].Total < s.slots[fastest].Total {
				fastest = i
			}
		}
		if victim < 0 {
			if total <= s.slots[fastest].Total {
				return
			}
			victim = fastest
		}
	}
	s.slots[victim].fill(r)
	s.ends[victim] = end
	if s.n < len(s.slots) {
		return
	}
	floor, oldest := s.slots[0].Total, s.ends[0]
	for i := 1; i < s.n; i++ {
		floor = min(floor, s.slots[i].Total)
		oldest = min(oldest, s.ends[i])
	}
	s.floor.Store(int64(floor))
	s.refresh.Store(oldest + int64(s.window))
}

// Snapshot returns copies of the kept entries, slowest first.
func (s *Slowest) Snapshot() []Entry {
	s.mu.Lock()
	out := slices.Clone(s.slots[:s.n])
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Entry) int { return int(b.Total - a.Total) })
	return out
}
