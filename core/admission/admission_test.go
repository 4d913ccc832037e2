package admission

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func opts(clk *fakeClock) Options {
	return Options{InitialLimit: 20, MinLimit: 2, MaxLimit: 1000, MaxQueue: 100, QueueTimeout: time.Hour,
		Target: 20 * time.Millisecond, Interval: 100 * time.Millisecond, Window: 100 * time.Millisecond,
		WindowSamples: 10, BaseWindow: 30 * time.Second, Now: clk.Now}
}

// simulate drives l against a model service of capacity n concurrent
// requests and service time s (latency s·max(1, in flight/n)), kept
// saturated: every released slot is taken again at once. It runs for d of
// fake time and returns the limits seen at the end of each 100ms.
func simulate(t *testing.T, l *Limiter, clk *fakeClock, n int, s time.Duration, d time.Duration) []int {
	t.Helper()
	var limits []int
	end := clk.Now().Add(d)
	next := clk.Now().Add(100 * time.Millisecond)
	for clk.Now().Before(end) {
		// Fill up to the limit.
		for {
			ok, w, _ := l.Admit(sdk.PriorityDefault)
			if !ok {
				if w != nil {
					l.mu.Lock()
					l.remove(w)
					l.mu.Unlock()
				}
				break
			}
		}
		in := l.InFlight()
		lat := time.Duration(float64(s) * math.Max(1, float64(in)/float64(n)))
		// One completion per lat/in of time.
		clk.Add(lat / time.Duration(in))
		l.Release(Sample{Latency: lat})
		if !clk.Now().Before(next) {
			limits = append(limits, l.Limit())
			next = next.Add(100 * time.Millisecond)
		}
	}
	return limits
}

// TestVegasSettlesAboveCapacity: saturated, the limit settles a few
// requests above the service's capacity, so that it stays busy without a
// long queue of its own.
func TestVegasSettlesAboveCapacity(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(opts(clk))
	limits := simulate(t, l, clk, 16, 50*time.Millisecond, 20*time.Second)
	tail := limits[len(limits)-50:]
	for _, x := range tail {
		if x < 17 || x > 16+14 {
			t.Fatalf("limit %d outside [17, 30] in the last 5s (capacity 16): %v", x, tail)
		}
	}
}

// TestLimitFallsAndRecovers: a service that becomes 4× slower drives the
// limit down; back to normal, the limit climbs back above capacity.
func TestLimitFallsAndRecovers(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(opts(clk))
	simulate(t, l, clk, 16, 50*time.Millisecond, 10*time.Second)
	before := l.Limit()
	// The same capacity at 4× the service time looks like a queue.
	simulate(t, l, clk, 16, 200*time.Millisecond, 10*time.Second)
	if slow := l.Limit(); slow > before/2 {
		t.Fatalf("limit %d with a 4× slower service, was %d: want at most half", slow, before)
	}
	limits := simulate(t, l, clk, 16, 50*time.Millisecond, 5*time.Second)
	if l.Limit() < 17 {
		t.Fatalf("limit %d 5s after the service recovered, want > capacity 16: %v", l.Limit(), limits)
	}
}

// TestDropsCutTheLimit: a window with a drop cuts the limit by 10%.
func TestDropsCutTheLimit(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(opts(clk))
	for range 10 {
		ok, _, _ := l.Admit(sdk.PriorityDefault)
		if !ok {
			t.Fatal("not admitted under the limit")
		}
	}
	clk.Add(150 * time.Millisecond)
	for range 10 {
		l.Release(Sample{Dropped: true})
	}
	if got := l.Limit(); got != 18 {
		t.Fatalf("limit after a window of drops = %d, want 18 (0.9 × 20)", got)
	}
}

// TestIdleLimitDoesNotGrow: a limit that holds nothing back does not grow.
func TestIdleLimitDoesNotGrow(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(opts(clk))
	for range 200 {
		ok, _, _ := l.Admit(sdk.PriorityDefault)
		if !ok {
			t.Fatal("not admitted")
		}
		clk.Add(20 * time.Millisecond)
		l.Release(Sample{Latency: 10 * time.Millisecond})
	}
	if got := l.Limit(); got != 20 {
		t.Fatalf("limit = %d after 200 requests one at a time, want 20", got)
	}
}

type result struct {
	tier   int
	ok     bool
	reason Reason
}

// waitAll runs Wait for each waiter and reports the results in order of arrival.
func waitAll(l *Limiter, ws []*Waiter) chan result {
	out := make(chan result, len(ws))
	for _, w := range ws {
		go func() {
			ok, r, _ := l.Wait(context.Background(), w, time.Now().Add(time.Hour))
			out <- result{tier: w.tier, ok: ok, reason: r}
		}()
	}
	return out
}

func fixed(clk *fakeClock, limit, queue int) Options {
	o := opts(clk)
	o.InitialLimit, o.MinLimit, o.MaxLimit, o.MaxQueue = limit, limit, limit, queue
	return o
}

func mustQueue(t *testing.T, l *Limiter, p sdk.Priority) *Waiter {
	t.Helper()
	ok, w, r := l.Admit(p)
	if ok || w == nil {
		t.Fatalf("%s: admitted=%v waiter=%v reason=%s, want queued", p, ok, w, r)
	}
	return w
}

// TestHighestTierFirst: freed slots go to the highest tier waiting.
func TestHighestTierFirst(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(fixed(clk, 1, 10))
	if ok, _, _ := l.Admit(sdk.PriorityDefault); !ok {
		t.Fatal("first request not admitted")
	}
	ws := []*Waiter{mustQueue(t, l, sdk.PriorityBulk), mustQueue(t, l, sdk.PriorityCritical), mustQueue(t, l, sdk.PriorityDefault)}
	out := waitAll(l, ws)
	var order []string
	for range 3 {
		l.Release(Sample{})
		r := <-out
		if !r.ok {
			t.Fatalf("tier %s shed (%s)", TierName(r.tier), r.reason)
		}
		order = append(order, TierName(r.tier))
	}
	if got := order[0] + "," + order[1] + "," + order[2]; got != "critical,default,bulk" {
		t.Fatalf("admitted in order %s, want critical,default,bulk", got)
	}
}

// TestFullQueueEvictsLowerTier: a full queue makes room for a higher tier
// by shedding the oldest waiter of the lowest tier; a request no higher than
// any waiter is shed itself.
func TestFullQueueEvictsLowerTier(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(fixed(clk, 1, 2))
	l.Admit(sdk.PriorityDefault)
	b1 := mustQueue(t, l, sdk.PriorityBulk)
	b2 := mustQueue(t, l, sdk.PriorityBulk)
	out := waitAll(l, []*Waiter{b1})
	c := mustQueue(t, l, sdk.PriorityCritical)
	if r := <-out; r.ok || r.reason != Evicted {
		t.Fatalf("oldest bulk: ok=%v reason=%s, want evicted", r.ok, r.reason)
	}
	if ok, w, r := l.Admit(sdk.PriorityBulk); ok || w != nil || r != QueueFull {
		t.Fatalf("bulk into a full queue: ok=%v waiter=%v reason=%s, want queue_full", ok, w != nil, r)
	}
	if got := l.Stats.Shed[Tier(sdk.PriorityBulk)][Evicted].Load(); got != 1 {
		t.Fatalf("evicted bulk counted %d times, want 1", got)
	}
	out = waitAll(l, []*Waiter{b2, c})
	l.Release(Sample{})
	if r := <-out; !r.ok || r.tier != Tier(sdk.PriorityCritical) {
		t.Fatalf("after release: %+v, want critical admitted", r)
	}
	l.Release(Sample{})
	if r := <-out; !r.ok || r.tier != Tier(sdk.PriorityBulk) {
		t.Fatalf("after second release: %+v, want bulk admitted", r)
	}
}

// TestQueueTimeout: a waiter is shed after QueueTimeout, or at its
// deadline when that comes first; a cancelled one is counted as gone.
func TestQueueTimeout(t *testing.T) {
	o := fixed(&fakeClock{}, 1, 10)
	o.Now = nil
	o.QueueTimeout = 20 * time.Millisecond
	l := New(o)
	l.Admit(sdk.PriorityDefault)
	w := mustQueue(t, l, sdk.PriorityDefault)
	ok, r, waited := l.Wait(context.Background(), w, time.Now().Add(time.Hour))
	if ok || r != QueueTimeout || waited < 20*time.Millisecond {
		t.Fatalf("ok=%v reason=%s waited=%s, want queue_timeout after ≥ 20ms", ok, r, waited)
	}
	w = mustQueue(t, l, sdk.PriorityDefault)
	ok, r, waited = l.Wait(context.Background(), w, time.Now().Add(5*time.Millisecond))
	if ok || r != QueueTimeout || waited >= 20*time.Millisecond {
		t.Fatalf("deadline first: ok=%v reason=%s waited=%s, want queue_timeout before 20ms", ok, r, waited)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	w = mustQueue(t, l, sdk.PriorityDefault)
	if ok, r, _ = l.Wait(ctx, w, time.Now().Add(time.Hour)); ok || r != ClientGone {
		t.Fatalf("cancelled: ok=%v reason=%s, want client_gone", ok, r)
	}
	if n := l.QueueLen(); n != 0 {
		t.Fatalf("queue length %d after every waiter left, want 0", n)
	}
}

// TestOverloadShedsStaleAndServesNewest: once the queue has not been empty
// for the interval, waiters older than the target are shed and the newest
// is served first.
func TestOverloadShedsStaleAndServesNewest(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := New(fixed(clk, 1, 10))
	l.Admit(sdk.PriorityDefault)
	old := mustQueue(t, l, sdk.PriorityDefault)
	clk.Add(150 * time.Millisecond) // queue non-empty past the 100ms interval
	a := mustQueue(t, l, sdk.PriorityDefault)
	clk.Add(time.Millisecond)
	b := mustQueue(t, l, sdk.PriorityDefault)
	out := waitAll(l, []*Waiter{old})
	l.Release(Sample{})
	if r := <-out; r.ok || r.reason != Overload {
		t.Fatalf("stale waiter: ok=%v reason=%s, want overload", r.ok, r.reason)
	}
	out = waitAll(l, []*Waiter{a, b})
	// b (newest) holds the slot now; a waits.
	select {
	case r := <-out:
		t.Fatalf("a waiter finished before the next release: %+v", r)
	default:
	}
	if !b.ended || a.ended {
		t.Fatalf("newest first: b ended=%v a ended=%v, want b admitted and a waiting", b.ended, a.ended)
	}
	l.Release(Sample{})
	<-out
	<-out
	if got := l.Stats.Shed[Tier(sdk.PriorityDefault)][Overload].Load(); got != 1 {
		t.Fatalf("overload sheds = %d, want 1", got)
	}
}

// TestOverloadShedsInTierOrder: under overload each tier may wait twice as
// long as the one below, and a waiter past its target takes every waiter
// of the lower tiers with it, fresh or not, before any of its own tier; a
// request arriving at a stalled service (no slot freed) triggers the sweep.
func TestOverloadShedsInTierOrder(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	o := fixed(clk, 1, 20) // Target 20ms: bulk 20, degraded 40, default 80, critical 160ms
	l := New(o)
	l.Admit(sdk.PriorityDefault)
	c1 := mustQueue(t, l, sdk.PriorityCritical)
	b1 := mustQueue(t, l, sdk.PriorityBulk)
	clk.Add(150 * time.Millisecond) // overloaded: the queue has not been empty for 100ms
	d1 := mustQueue(t, l, sdk.PriorityDefault)
	b2 := mustQueue(t, l, sdk.PriorityBulk)
	// Arriving, b2 swept out b1 (150ms > 20ms); b2 itself is fresh.
	if !b1.ended || b2.ended || d1.ended || c1.ended {
		t.Fatalf("after the first sweep: ended b1=%v b2=%v d1=%v c1=%v, want only b1", b1.ended, b2.ended, d1.ended, c1.ended)
	}
	// c1 waited 150ms, under critical's 160ms: the freed slot is its.
	l.Release(Sample{})
	if !c1.ended {
		t.Fatal("critical waiter not admitted by the released slot")
	}
	clk.Add(90 * time.Millisecond) // d1 at 90ms, past default's 80ms; b2 at 90ms
	c2 := mustQueue(t, l, sdk.PriorityCritical)
	if !d1.ended || !b2.ended || c2.ended {
		t.Fatalf("after the second sweep: ended d1=%v b2=%v c2=%v, want d1 and b2 shed, c2 waiting", d1.ended, b2.ended, c2.ended)
	}
	out := waitAll(l, []*Waiter{b1, b2, d1, c1})
	got := map[string][]string{}
	for range 4 {
		r := <-out
		s := "admitted"
		if !r.ok {
			s = r.reason.String()
		}
		got[TierName(r.tier)] = append(got[TierName(r.tier)], s)
	}
	if fmt.Sprint(got) != "map[bulk:[overload overload] critical:[admitted] default:[overload]]" {
		t.Fatalf("outcomes %v", got)
	}
	// A critical waiter past 160ms goes only with nothing lower left.
	b3 := mustQueue(t, l, sdk.PriorityBulk)
	clk.Add(170 * time.Millisecond)
	c3 := mustQueue(t, l, sdk.PriorityCritical)
	if !b3.ended || !c2.ended || c3.ended {
		t.Fatalf("after the third sweep: ended b3=%v c2=%v c3=%v, want b3 and c2 shed, c3 waiting", b3.ended, c2.ended, c3.ended)
	}
	if n := l.Stats.Shed[Tier(sdk.PriorityCritical)][Overload].Load(); n != 1 {
		t.Fatalf("critical shed for overload %d times, want 1", n)
	}
}

func TestTierTarget(t *testing.T) {
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond}
	for tier, w := range want {
		if got := TierTarget(tier, 100*time.Millisecond, 500*time.Millisecond); got != w {
			t.Errorf("TierTarget(%s) = %s, want %s", TierName(tier), got, w)
		}
	}
}
