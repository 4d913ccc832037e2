package balance

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct{ t atomic.Int64 }

func (c *fakeClock) now() int64              { return c.t.Load() }
func (c *fakeClock) advance(d time.Duration) { c.t.Add(int64(d)) }
func (c *fakeClock) set(t int64)             { c.t.Store(t) }

// lockedSource makes a seeded source safe for concurrent use.
type lockedSource struct {
	mu  sync.Mutex
	src rand.Source
}

func (s *lockedSource) Uint64() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.src.Uint64()
}

// testOptions returns the defaults with a fake clock and a seeded source.
func testOptions(c *fakeClock, seed uint64) Options {
	o := DefaultOptions()
	o.Clock = c.now
	o.Rand = rand.NewPCG(seed, 42)
	return o
}

func mustNew(t testing.TB, name string, eps []*Endpoint, o Options) Balancer {
	t.Helper()
	b, err := NewWithOptions(name, eps, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sim drives a balancer with a steady stream of requests on a fake clock:
// one request every interval, each holding its endpoint (Begin/End) for the
// latency the endpoint's behaviour gives, then reporting through Done.
type sim struct {
	clock    *fakeClock
	b        Balancer
	eps      []*Endpoint
	behave   func(i int, now int64) (lat time.Duration, failed bool)
	pending  events
	picks    []int // picks per endpoint since the last reset
	index    map[*Endpoint]int
	interval time.Duration
}

type event struct {
	at     int64
	start  int64
	ep     *Endpoint
	lat    int64
	failed bool
}

type events []event

func (e events) Len() int           { return len(e) }
func (e events) Less(i, j int) bool { return e[i].at < e[j].at }
func (e events) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)        { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

func newSim(c *fakeClock, b Balancer, eps []*Endpoint, interval time.Duration, behave func(int, int64) (time.Duration, bool)) *sim {
	s := &sim{clock: c, b: b, eps: eps, behave: behave, picks: make([]int, len(eps)), index: map[*Endpoint]int{}, interval: interval}
	for i, ep := range eps {
		s.index[ep] = i
	}
	return s
}

// run sends requests for d of fake time.
func (s *sim) run(t *testing.T, d time.Duration) {
	t.Helper()
	end := s.clock.now() + int64(d)
	for next := s.clock.now(); next < end; next += int64(s.interval) {
		for len(s.pending) > 0 && s.pending[0].at <= next {
			e := heap.Pop(&s.pending).(event)
			s.clock.set(e.at)
			e.ep.End(e.start)
			s.b.Done(e.ep, Result{Failed: e.failed, LatencyNanos: e.lat})
		}
		s.clock.set(next)
		ep := s.b.Pick(nil)
		if ep == nil {
			t.Fatal("Pick returned nil")
		}
		i := s.index[ep]
		s.picks[i]++
		lat, failed := s.behave(i, next)
		ep.Begin(next)
		heap.Push(&s.pending, event{at: next + int64(lat), start: next, ep: ep, lat: int64(lat), failed: failed})
	}
	s.clock.set(end)
}

func (s *sim) share(i int) float64 {
	total := 0
	for _, n := range s.picks {
		total += n
	}
	return float64(s.picks[i]) / float64(total)
}

func (s *sim) reset() { clear(s.picks) }

// Five endpoints, one 50× slower: round robin keeps sending it a fifth of
// the requests (so its queue grows), the load-aware balancers route around it.
func TestSlowEndpointShare(t *testing.T) {
	for _, c := range []struct {
		name     string
		min, max float64
	}{
		{"round_robin", 0.2, 0.2},
		{"least_in_flight", 0, 0.05},
		{"p2c_ewma", 0, 0.05},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.set(int64(time.Hour))
			eps := eps("a", "b", "c", "d", "slow")
			b := mustNew(t, c.name, eps, testOptions(clock, 1))
			s := newSim(clock, b, eps, time.Millisecond, func(i int, _ int64) (time.Duration, bool) {
				if i == 4 {
					return 500 * time.Millisecond, false
				}
				return 10 * time.Millisecond, false
			})
			s.run(t, 10*time.Second) // warm up
			s.reset()
			s.run(t, 60*time.Second)
			got := s.share(4)
			t.Logf("%s: slow endpoint share %.4f (%d of 60000), in flight %d", c.name, got, s.picks[4], eps[4].InFlight.Load())
			if got < c.min || got > c.max {
				t.Fatalf("slow endpoint share %.4f, want in [%v, %v]", got, c.min, c.max)
			}
			if c.max < 0.2 && s.picks[4] == 0 {
				t.Fatal("the slow endpoint got no request at all: its recovery would go unnoticed")
			}
		})
	}
}

// Two of five endpoints slow: with two choices p2c_ewma draws both slow
// ones 1 time in 10; the second look (a winner far slower than the typical
// pick) then compares every endpoint, so the slow ones get only the
// requests that notice their recovery, as with three choices, where there
// is always a fast one among the draws. Without the second look the share
// was 0.10 (1 pick in 10), the p99.9 of a deploy.
func TestP2CChoicesTwoSlow(t *testing.T) {
	for _, c := range []struct {
		choices  int
		min, max float64
	}{
		{2, 0, 0.005},
		{3, 0, 0.005},
	} {
		clock := &fakeClock{}
		clock.set(int64(time.Hour))
		e := eps("a", "b", "c", "slow1", "slow2")
		o := testOptions(clock, 3)
		o.Choices = c.choices
		b := mustNew(t, "p2c_ewma", e, o)
		s := newSim(clock, b, e, time.Millisecond, func(i int, _ int64) (time.Duration, bool) {
			if i >= 3 {
				return 500 * time.Millisecond, false
			}
			return 10 * time.Millisecond, false
		})
		s.run(t, 10*time.Second)
		s.reset()
		s.run(t, 60*time.Second)
		got := s.share(3) + s.share(4)
		t.Logf("choices %d: slow endpoints' share %.4f", c.choices, got)
		if got < c.min || got > c.max {
			t.Errorf("choices %d: slow endpoints' share %.4f, want in [%v, %v]", c.choices, got, c.min, c.max)
		}
	}
}

// An endpoint that stalls (every answer 2s late from some instant on) is
// shunned by p2c_ewma as soon as its attempts outlast its average, not
// only once the first slow answer arrives 2s later: at 1 request per ms,
// it gets a handful of requests, not a share of two seconds' worth.
func TestP2CShunsAStallBeforeItsFirstAnswer(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	e := eps("a", "b", "c", "d", "stalls")
	b := mustNew(t, "p2c_ewma", e, testOptions(clock, 5))
	stallAt := int64(time.Hour + 10*time.Second)
	s := newSim(clock, b, e, time.Millisecond, func(i int, now int64) (time.Duration, bool) {
		if i == 4 && now >= stallAt {
			return 2 * time.Second, false
		}
		return time.Millisecond, false
	})
	s.run(t, 10*time.Second)
	s.reset()
	s.run(t, 2*time.Second) // the stall, before its first answer
	t.Logf("stalled endpoint got %d of 2000 requests before its first answer", s.picks[4])
	if s.picks[4] > 10 {
		t.Fatalf("stalled endpoint got %d requests before its first answer, want at most 10", s.picks[4])
	}
}

// One endpoint fails at once (connection refused, say). Least in flight
// with the failure EWMA, and p2c_ewma with its failure penalty, keep its
// share low instead of funneling traffic to the idle-looking endpoint, yet
// it still gets a request now and then — least_in_flight about once per
// ProbeInterval (1s), p2c_ewma whenever its latency penalty has decayed
// below the others' cost (about every 30s) — and when it recovers it gets
// its share back. Outlier ejection is off to test the balancers alone.
func TestFastFailingEndpoint(t *testing.T) {
	for _, c := range []struct {
		name     string
		window   time.Duration
		minPicks int
	}{
		{"least_in_flight", 10 * time.Second, 5},
		{"p2c_ewma", 60 * time.Second, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.set(int64(time.Hour))
			o := testOptions(clock, 2)
			o.Outlier.Enabled = false
			eps := eps("a", "b", "c", "d", "bad")
			b := mustNew(t, c.name, eps, o)
			broken := true
			s := newSim(clock, b, eps, time.Millisecond, func(i int, _ int64) (time.Duration, bool) {
				if i == 4 && broken {
					return 100 * time.Microsecond, true
				}
				return 10 * time.Millisecond, false
			})
			s.run(t, 10*time.Second)
			for k := 0; k < 3; k++ {
				s.reset()
				s.run(t, c.window)
				t.Logf("broken, window %d of %v: bad endpoint got %d (%.4f)", k, c.window, s.picks[4], s.share(4))
				if s.share(4) > 0.05 {
					t.Fatalf("fast-failing endpoint share %.4f, want < 0.05", s.share(4))
				}
				if s.picks[4] < c.minPicks {
					t.Fatalf("fast-failing endpoint got %d requests in %v, want ≥ %d: its recovery would go unnoticed", s.picks[4], c.window, c.minPicks)
				}
			}
			broken = false
			s.reset()
			s.run(t, 60*time.Second)
			t.Logf("recovering, first 60s: %.4f", s.share(4))
			s.reset()
			s.run(t, 30*time.Second)
			t.Logf("recovered, next 30s: %.4f", s.share(4))
			if got := s.share(4); got < 0.15 {
				t.Fatalf("recovered endpoint share %.4f after 60s, want ≥ 0.15", got)
			}
		})
	}
}

// Round robin does not look at failures, but outlier ejection works under
// every balancer: a dead endpoint's share falls from a fifth to the
// occasional probe, with probes spaced further apart as they keep failing.
func TestDeadEndpointEjectedUnderRoundRobin(t *testing.T) {
	for _, enabled := range []bool{false, true} {
		clock := &fakeClock{}
		clock.set(int64(time.Hour))
		o := testOptions(clock, 5)
		o.Outlier.Enabled = enabled
		e := eps("a", "b", "c", "d", "dead")
		b := mustNew(t, "round_robin", e, o)
		s := newSim(clock, b, e, time.Millisecond, func(i int, _ int64) (time.Duration, bool) {
			if i == 4 {
				return 100 * time.Microsecond, true
			}
			return 10 * time.Millisecond, false
		})
		s.run(t, 2*time.Minute)
		t.Logf("outlier ejection %v: dead endpoint got %d of 120000, ejected %d times", enabled, s.picks[4], e[4].Stats().Ejections)
		if enabled && (s.picks[4] > 50 || e[4].Stats().Ejections < 4) {
			t.Fatalf("with ejection: %d requests and %d ejections, want a few probes only", s.picks[4], e[4].Stats().Ejections)
		}
		if !enabled && s.share(4) != 0.2 {
			t.Fatalf("without ejection: share %.3f, want 0.2", s.share(4))
		}
	}
}
