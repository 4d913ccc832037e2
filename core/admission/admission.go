// Package admission decides which requests reach a service when it cannot
// take them all. Each service has a Limiter: a concurrency limit that adapts
// to the latency the service shows, and a bounded priority queue in front of
// it.
//
// # The limit (Vegas)
//
// Latency samples (from admission to the response head) are gathered in
// windows of at least Options.Window and Options.WindowSamples samples. At
// the end of a window, with L the limit, rtt the window's mean latency and
// base the lowest single sample seen over the last one to two BaseWindows
// (the latency with no queue at the service), the service's queue is
// estimated as
//
//	q = L × (1 − base/rtt)
//
// and, with lg = max(1, log10 L), α = 3·lg, β = 6·lg:
//
//   - a window with a drop (an upstream timeout or a 503 from the service)
//     cuts L to 0.9·L;
//   - q > β: L −= max(lg, (q−β)/2) (too much queued at the service);
//   - q ≤ lg: L += β, and q < α: L += lg, but only when the window saw at
//     least L/2 requests in flight (otherwise the limit was not what held
//     traffic back, and raising it would learn nothing);
//   - otherwise L holds.
//
// L stays within [MinLimit, MaxLimit]; MaxLimit is the hard bound whatever
// the latency says. This is TCP Vegas's rule as Netflix's concurrency-limits
// library applies it to servers, evaluated per window rather than per sample
// so that a change is judged on the latency it caused. Against a service of
// fixed capacity N the limit settles near N + α..β: the service stays busy
// with a short queue of its own.
//
// # The queue (priority, CoDel, adaptive LIFO)
//
// A request over the limit waits in one of four queues, one per tier, for
// at most Options.QueueTimeout (and never past its own deadline). A freed
// slot goes to the highest tier waiting. The queue holds at most
// Options.MaxQueue requests; when it is full, a request evicts the oldest
// waiter of the lowest tier below its own, or is shed itself.
//
// When the queue has not been empty for Options.Interval, the service is
// overloaded (controlled delay, as in Facebook's use of CoDel for server
// queues): each tier is served newest first (adaptive LIFO), so that the
// requests served are those whose clients are still waiting, and waiters
// that have waited past their tier's target are shed. The target doubles
// with each tier — Target for bulk, 2× for degraded, 4× for default, 8× for
// critical, never more than QueueTimeout — and shedding keeps strict tier
// order: when a waiter of some tier is past its target, every waiter of the
// tiers below it is shed first (they would be served only after it), so a
// higher tier is shed only when nothing lower is left. A process that is
// itself short of CPU (slots freed late) makes every wait longer; the
// doubling targets and the strict order keep that from shedding critical
// requests while lower tiers wait. The sweep runs whenever a slot is freed
// and whenever a request arrives, so a service that stalls completely (no
// slot freed) still sheds at the targets rather than at QueueTimeout. When
// the queue empties, the policy returns to first come, first served with
// the full QueueTimeout.
package admission

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// Options configure a Limiter. Every field is required and positive (see
// config.Admission for the documented defaults).
type Options struct {
	// InitialLimit is the limit a new limiter starts with.
	InitialLimit int
	// MinLimit and MaxLimit bound the limit.
	MinLimit, MaxLimit int
	// MaxQueue is the most requests waiting.
	MaxQueue int
	// QueueTimeout is the longest a request waits when the service is not
	// overloaded.
	QueueTimeout time.Duration
	// Target is the longest a bulk request waits once the service is
	// overloaded; each higher tier may wait twice as long as the one below
	// (see TierTarget).
	Target time.Duration
	// Interval is how long the queue must stay non-empty for the service to
	// count as overloaded.
	Interval time.Duration
	// Window is the shortest window of latency samples the limit is judged on.
	Window time.Duration
	// WindowSamples is the fewest samples in a window (a window also ends
	// after 10 × Window with at least one sample).
	WindowSamples int
	// BaseWindow is how long the lowest latency seen is remembered (it is
	// kept for one to two BaseWindows).
	BaseWindow time.Duration
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// Reason says why a request was shed.
type Reason uint8

// The reasons a request is shed.
const (
	// QueueFull: the queue was full of requests of the same tier or higher.
	QueueFull Reason = iota
	// Evicted: a higher tier took the request's place in a full queue.
	Evicted
	// QueueTimeout: the request waited QueueTimeout, or its deadline came first.
	QueueTimeout
	// Overload: the service was overloaded and the request waited past its
	// tier's target, or a waiter of a higher tier did.
	Overload
	// ClientGone: the client went away while the request waited.
	ClientGone
	numReasons
)

var reasonNames = [numReasons]string{"queue_full", "evicted", "queue_timeout", "overload", "client_gone"}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons returns every reason, in order.
func Reasons() []Reason {
	out := make([]Reason, numReasons)
	for i := range out {
		out[i] = Reason(i)
	}
	return out
}

// NumTiers is the number of priority tiers (bulk, degraded, default, critical).
const NumTiers = 4

// Tier returns the queue index of p: 0 for bulk … 3 for critical. An unset
// or invalid priority counts as default.
func Tier(p sdk.Priority) int {
	if p < sdk.PriorityBulk || p > sdk.PriorityCritical {
		return int(sdk.PriorityDefault) - 1
	}
	return int(p) - 1
}

// TierName returns the name of tier t ("bulk" … "critical").
func TierName(t int) string { return sdk.Priority(t + 1).String() }

// Stats are a limiter's counters, read at scrape time.
type Stats struct {
	// Admitted counts requests admitted, by tier; Queued those of them and
	// of the shed that waited first.
	Admitted, Queued [NumTiers]atomic.Uint64
	// Shed counts shed requests by tier and reason.
	Shed [NumTiers][numReasons]atomic.Uint64
	// Wait is the distribution of the time queued requests waited (admitted
	// or shed), in the buckets of WaitBuckets.
	Wait [len(WaitBuckets) + 1]atomic.Uint64
	// WaitNanos is the sum of the waits.
	WaitNanos atomic.Int64
}

// WaitBuckets are the upper bounds of the queue wait histogram.
var WaitBuckets = [...]time.Duration{time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond,
	10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	200 * time.Millisecond, 500 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second}

func (s *Stats) waited(d time.Duration) {
	i := 0
	for i < len(WaitBuckets) && d > WaitBuckets[i] {
		i++
	}
	s.Wait[i].Add(1)
	s.WaitNanos.Add(int64(d))
}

// Limiter is one service's adaptive concurrency limit and queue.
type Limiter struct {
	Stats Stats

	now      func() time.Time // fixed at New
	mu       sync.Mutex
	o        Options
	limit    float64
	inflight int
	queue    [NumTiers][]*Waiter
	queued   int
	// lastEmpty is the last time the queue was empty (CoDel's state).
	lastEmpty time.Time

	winStart    time.Time
	winSum      time.Duration
	winN        int
	winDrops    int
	winInflight int // the most in flight during the window

	baseCur, basePrev time.Duration // lowest sample in this and the previous base window (0: none)
	baseStart         time.Time

	// Snapshot values for scrapes without the lock.
	snapLimit, snapInflight, snapQueued atomic.Int64
}

// Waiter is a request waiting in the queue.
type Waiter struct {
	tier  int
	enq   time.Time
	done  chan Reason // receives admitted (numReasons) or why it was shed
	ended bool        // granted or shed (under the limiter's lock)
}

const admitted = numReasons

// New returns a limiter with options o.
func New(o Options) *Limiter {
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now()
	l := &Limiter{now: o.Now, o: o, limit: float64(o.InitialLimit), lastEmpty: now, winStart: now, baseStart: now}
	l.clamp()
	l.snap()
	return l
}

// SetOptions applies new options (a reload), keeping the limit learned so
// far within the new bounds.
func (l *Limiter) SetOptions(o Options) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o.Now = l.now
	l.o = o
	l.clamp()
	l.snap()
}

// Options returns the limiter's options.
func (l *Limiter) Options() Options {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.o
}

func (l *Limiter) clamp() {
	l.limit = math.Max(float64(l.o.MinLimit), math.Min(float64(l.o.MaxLimit), l.limit))
}

func (l *Limiter) snap() {
	l.snapLimit.Store(int64(l.limit))
	l.snapInflight.Store(int64(l.inflight))
	l.snapQueued.Store(int64(l.queued))
}

// Limit returns the current concurrency limit.
func (l *Limiter) Limit() int { return int(l.snapLimit.Load()) }

// InFlight returns the number of admitted requests not yet released.
func (l *Limiter) InFlight() int { return int(l.snapInflight.Load()) }

// QueueLen returns the number of requests waiting.
func (l *Limiter) QueueLen() int { return int(l.snapQueued.Load()) }

// Admit asks for a slot for a request of priority p. It returns admitted
// true when there is one now; otherwise a Waiter to pass to Wait, or, when
// neither, the request is shed for the reason returned.
func (l *Limiter) Admit(p sdk.Priority) (ok bool, w *Waiter, shed Reason) {
	t := Tier(p)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.queued == 0 && l.inflight < int(l.limit) {
		l.inflight++
		l.winInflight = max(l.winInflight, l.inflight)
		l.lastEmpty = now
		l.snap()
		l.Stats.Admitted[t].Add(1)
		return true, nil, 0
	}
	if l.queued > 0 && now.Sub(l.lastEmpty) > l.o.Interval {
		l.shedStale(now)
	}
	if l.queued >= l.o.MaxQueue {
		victim := l.lowestBelow(t)
		if victim == nil {
			l.Stats.Shed[t][QueueFull].Add(1)
			return false, nil, QueueFull
		}
		l.remove(victim)
		l.end(victim, Evicted, now)
	}
	w = &Waiter{tier: t, enq: now, done: make(chan Reason, 1)}
	l.queue[t] = append(l.queue[t], w)
	l.queued++
	l.Stats.Queued[t].Add(1)
	l.snap()
	return false, w, 0
}

// lowestBelow returns the oldest waiter of the lowest tier under t.
func (l *Limiter) lowestBelow(t int) *Waiter {
	for i := 0; i < t; i++ {
		if len(l.queue[i]) > 0 {
			return l.queue[i][0]
		}
	}
	return nil
}

// remove takes w out of its queue.
func (l *Limiter) remove(w *Waiter) {
	q := l.queue[w.tier]
	for i, x := range q {
		if x == w {
			copy(q[i:], q[i+1:])
			q[len(q)-1] = nil
			l.queue[w.tier] = q[:len(q)-1]
			l.queued--
			return
		}
	}
}

// end tells a removed waiter how it ends. l.mu is held.
func (l *Limiter) end(w *Waiter, r Reason, now time.Time) {
	w.ended = true
	if r == admitted {
		l.Stats.Admitted[w.tier].Add(1)
	} else {
		l.Stats.Shed[w.tier][r].Add(1)
	}
	l.Stats.waited(now.Sub(w.enq))
	// A queue emptied by shedding is still an overloaded one: only serving
	// every waiter ends the overload.
	if l.queued == 0 && r == admitted {
		l.lastEmpty = now
	}
	w.done <- r
}

// Wait waits for w's turn until the queue's bound, the deadline or ctx's
// end, whichever comes first. It returns true when the request is admitted
// (Release must follow), otherwise why it was shed; and how long it waited.
func (l *Limiter) Wait(ctx context.Context, w *Waiter, deadline time.Time) (ok bool, shed Reason, waited time.Duration) {
	l.mu.Lock()
	bound := l.o.QueueTimeout
	l.mu.Unlock()
	if left := deadline.Sub(w.enq); left < bound {
		bound = left
	}
	timer := time.NewTimer(max(bound, 0))
	defer timer.Stop()
	var r Reason
	select {
	case r = <-w.done:
	case <-timer.C:
		r = l.giveUp(w, QueueTimeout)
	case <-ctx.Done():
		r = l.giveUp(w, ClientGone)
	}
	waited = l.now().Sub(w.enq)
	return r == admitted, r, waited
}

// giveUp sheds w for reason r, unless it was granted or shed meanwhile.
func (l *Limiter) giveUp(w *Waiter, r Reason) Reason {
	l.mu.Lock()
	if !w.ended {
		l.remove(w)
		l.end(w, r, l.now())
		l.snap()
	}
	l.mu.Unlock()
	return <-w.done
}

// Sample is what a released request tells the limit.
type Sample struct {
	// Latency from admission to the response head; 0 when there is none.
	Latency time.Duration
	// Dropped: the service timed out or answered 503.
	Dropped bool
}

// Release returns an admitted request's slot and feeds its sample to the
// limit; a sample with neither Latency nor Dropped (a request that ended
// for reasons of its own) only returns the slot.
func (l *Limiter) Release(s Sample) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.inflight--
	l.sample(now, s)
	l.dispatch(now)
	l.snap()
}

// dispatch hands free slots to waiters, highest tier first; under overload
// it sheds those that waited past the target and serves newest first.
func (l *Limiter) dispatch(now time.Time) {
	if l.queued == 0 {
		l.lastEmpty = now
		return
	}
	overloaded := now.Sub(l.lastEmpty) > l.o.Interval
	for l.queued > 0 && l.inflight < int(l.limit) {
		t := NumTiers - 1
		for len(l.queue[t]) == 0 {
			t--
		}
		q := l.queue[t]
		w := q[0]
		if overloaded {
			w = q[len(q)-1]
		}
		l.remove(w)
		l.inflight++
		l.winInflight = max(l.winInflight, l.inflight)
		l.end(w, admitted, now)
	}
	// The slots went to the best waiters first; under overload, those left
	// that waited past their target go now rather than at their timeout.
	if overloaded {
		l.shedStale(now)
	}
}

// TierTarget returns how long a waiter of tier t may wait once the service
// is overloaded: target for bulk, doubling with each tier, at most timeout.
func TierTarget(t int, target, timeout time.Duration) time.Duration {
	return min(target<<t, timeout)
}

// shedStale sheds, in strict tier order, the waiters that waited past their
// tier's target: it finds the highest tier whose oldest waiter is past its
// target, sheds every waiter of the tiers below it, lowest and oldest first,
// then the stale waiters of that tier. l.mu is held and the service is
// overloaded.
func (l *Limiter) shedStale(now time.Time) {
	top := -1
	for t := NumTiers - 1; t >= 0; t-- {
		// Each tier's queue is in arrival order: its oldest waiter is first.
		if q := l.queue[t]; len(q) > 0 && now.Sub(q[0].enq) > TierTarget(t, l.o.Target, l.o.QueueTimeout) {
			top = t
			break
		}
	}
	for t := 0; t <= top; t++ {
		for len(l.queue[t]) > 0 {
			w := l.queue[t][0]
			if t == top && now.Sub(w.enq) <= TierTarget(t, l.o.Target, l.o.QueueTimeout) {
				break
			}
			l.remove(w)
			l.end(w, Overload, now)
		}
	}
	l.snap()
}

// sample adds s to the window and, when the window is complete, adapts the limit.
func (l *Limiter) sample(now time.Time, s Sample) {
	switch {
	case s.Dropped:
		l.winDrops++
	case s.Latency > 0:
		l.winSum += s.Latency
		l.winN++
		if now.Sub(l.baseStart) >= l.o.BaseWindow {
			l.basePrev, l.baseCur, l.baseStart = l.baseCur, 0, now
		}
		if l.baseCur == 0 || s.Latency < l.baseCur {
			l.baseCur = s.Latency
		}
	}
	el := now.Sub(l.winStart)
	n := l.winN + l.winDrops
	if el < l.o.Window || n < l.o.WindowSamples && (el < 10*l.o.Window || n == 0) {
		if el >= 10*l.o.Window && n == 0 {
			l.resetWindow(now)
		}
		return
	}
	l.adapt()
	l.resetWindow(now)
}

func (l *Limiter) resetWindow(now time.Time) {
	l.winStart, l.winSum, l.winN, l.winDrops, l.winInflight = now, 0, 0, 0, l.inflight
}

// base is the lowest latency remembered.
func (l *Limiter) base() time.Duration {
	if l.basePrev > 0 && l.basePrev < l.baseCur {
		return l.basePrev
	}
	return l.baseCur
}

// adapt applies Vegas's rule to the finished window (see the package doc).
func (l *Limiter) adapt() {
	L := l.limit
	lg := math.Max(1, math.Log10(L))
	switch {
	case l.winDrops > 0:
		L *= 0.9
	case l.winN > 0:
		rtt := float64(l.winSum) / float64(l.winN)
		q := 0.0
		if b := float64(l.base()); rtt > b {
			q = L * (1 - b/rtt)
		}
		busy := float64(2*l.winInflight) >= L
		alpha, beta := 3*lg, 6*lg
		switch {
		case q > beta:
			L -= math.Max(lg, (q-beta)/2)
		case q <= lg && busy:
			L += beta
		case q < alpha && busy:
			L += lg
		}
	}
	l.limit = L
	l.clamp()
}
