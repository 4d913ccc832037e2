// Package meter holds the in-process statistics behind the gateway's key
// numbers: rates as 1-, 5- and 15-minute exponentially weighted moving
// averages (Meter), a sliding-window high-precision histogram (Window), and
// a compact log-linear histogram for many small series (Hist). Times are
// passed in (nanoseconds on any monotonic origin), so that tests drive them
// with a fake clock; nothing here reads the clock itself.
package meter

import (
	"math"
	"sync"
	"sync/atomic"
)

// TickInterval is how often a Meter folds new events into its averages.
const TickInterval int64 = 5e9

var (
	alpha1  = 1 - math.Exp(-5.0/60/1)
	alpha5  = 1 - math.Exp(-5.0/60/5)
	alpha15 = 1 - math.Exp(-5.0/60/15)
)

// Meter counts events and gives their rate per second as 1-, 5- and
// 15-minute moving averages, as Unix load averages and Dropwizard's meters
// do: every TickInterval the events of the last interval are folded in.
// Mark costs two atomic adds and a load; it ticks (under a lock) only when
// an interval has passed.
type Meter struct {
	uncounted atomic.Int64
	count     atomic.Int64
	next      atomic.Int64 // time of the next tick; 0 before the first mark

	mu          sync.Mutex
	m1, m5, m15 float64 // events per second
	started     bool
}

// Mark records n events at now.
func (m *Meter) Mark(n, now int64) {
	// Close the intervals that ended first: these events belong to the next.
	if nx := m.next.Load(); nx == 0 || now >= nx {
		m.tick(now)
	}
	m.uncounted.Add(n)
	m.count.Add(n)
}

// Count returns the events marked so far.
func (m *Meter) Count() int64 { return m.count.Load() }

// tick folds the intervals that ended by now.
func (m *Meter) tick(now int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	nx := m.next.Load()
	if nx == 0 {
		m.next.Store(now + TickInterval)
		return
	}
	if now < nx {
		return
	}
	ticks := (now-nx)/TickInterval + 1
	m.next.Store(nx + ticks*TickInterval)
	rate := float64(m.uncounted.Swap(0)) / (float64(TickInterval) / 1e9)
	if !m.started {
		m.m1, m.m5, m.m15, m.started = rate, rate, rate, true
	} else {
		m.m1 += alpha1 * (rate - m.m1)
		m.m5 += alpha5 * (rate - m.m5)
		m.m15 += alpha15 * (rate - m.m15)
	}
	// The remaining intervals were empty: decay toward zero.
	if idle := ticks - 1; idle > 0 {
		if idle > 2000 { // past 2000 ticks (2.8h) all three are below 1e-9 of their value
			m.m1, m.m5, m.m15 = 0, 0, 0
		} else {
			k := float64(idle)
			m.m1 *= math.Pow(1-alpha1, k)
			m.m5 *= math.Pow(1-alpha5, k)
			m.m15 *= math.Pow(1-alpha15, k)
		}
	}
}

// Rates are a meter's averages in events per second.
type Rates struct {
	M1  float64 `json:"m1"`
	M5  float64 `json:"m5"`
	M15 float64 `json:"m15"`
}

// Rates returns the averages as of now (folding in the intervals that ended).
func (m *Meter) Rates(now int64) Rates {
	if nx := m.next.Load(); nx != 0 && now >= nx {
		m.tick(now)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return Rates{M1: m.m1, M5: m.m5, M15: m.m15}
}
