package balance

import (
	"testing"
	"time"
)

// constSource always returns v: with v = 1<<63 every random float is 0.5,
// so a 25% jitter removes exactly 12.5% of an ejection.
type constSource uint64

func (s constSource) Uint64() uint64 { return uint64(s) }

const half = constSource(1 << 63)

var names = []string{"round_robin", "least_in_flight", "p2c_ewma"}

func fail(b Balancer, ep *Endpoint, n int) {
	for i := 0; i < n; i++ {
		b.Done(ep, Result{Failed: true, LatencyNanos: int64(time.Millisecond)})
	}
}

func succeed(b Balancer, ep *Endpoint) {
	b.Done(ep, Result{LatencyNanos: int64(time.Millisecond)})
}

// picks counts how often each endpoint is picked in n picks.
func picks(b Balancer, e []*Endpoint, n int) map[*Endpoint]int {
	out := map[*Endpoint]int{}
	for i := 0; i < n; i++ {
		out[b.Pick(nil)]++
	}
	return out
}

// The ejection lifecycle, the same whatever the balancer: five failures in
// a row eject; the ejection lasts BaseEjection less the jitter; then exactly
// one probe goes; its failure ejects for twice as long, its success
// readmits; the doubling is forgiven while the endpoint stays in.
func TestOutlierEjectionLifecycle(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.set(int64(time.Hour))
			o := testOptions(clock, 0)
			o.Rand = half
			e := eps("bad", "b", "c", "d")
			bad := e[0]
			b := mustNew(t, name, e, o)

			fail(b, bad, 4)
			succeed(b, bad) // a success resets the count
			fail(b, bad, 4)
			if bad.Stats().Ejected {
				t.Fatal("ejected after 4 failures in a row, want 5")
			}
			fail(b, bad, 1)
			st := bad.Stats()
			want := clock.now() + int64(8750*time.Millisecond) // 10s less 25% × 0.5
			if !st.Ejected || st.Ejections != 1 || st.EjectedUntil != want {
				t.Fatalf("after 5 failures in a row: %+v, want ejected until %d", st, want)
			}
			if n := picks(b, e, 300)[bad]; n != 0 {
				t.Fatalf("ejected endpoint picked %d times", n)
			}
			clock.set(want - 1)
			if n := picks(b, e, 300)[bad]; n != 0 {
				t.Fatalf("ejected endpoint picked %d times before its time", n)
			}

			// Its time is up: one probe, and no other request meanwhile.
			clock.set(want)
			if got := b.Pick(nil); got != bad {
				t.Fatalf("first pick after the ejection: %s, want the probe to bad", got.Addr)
			}
			if n := picks(b, e, 300)[bad]; n != 0 {
				t.Fatalf("picked %d more times while its probe is in flight", n)
			}

			// The probe fails: ejected again, for twice as long.
			fail(b, bad, 1)
			want = clock.now() + int64(17500*time.Millisecond)
			if st := bad.Stats(); !st.Ejected || st.Ejections != 2 || st.EjectedUntil != want {
				t.Fatalf("after a failed probe: %+v, want ejected until %d", st, want)
			}
			clock.set(want)
			if got := b.Pick(nil); got != bad {
				t.Fatalf("want a second probe, got %s", got.Addr)
			}
			succeed(b, bad)
			if bad.Stats().Ejected {
				t.Fatal("still ejected after a successful probe")
			}
			// Back in rotation: with the others marked down it takes all
			// the traffic (an ejected one would share it with them).
			for _, ep := range e[1:] {
				ep.SetHealthy(false)
			}
			if n := picks(b, e, 100)[bad]; n != 100 {
				t.Fatalf("readmitted endpoint picked %d of 100 times while the others are down", n)
			}
			for _, ep := range e[1:] {
				ep.SetHealthy(true)
			}

			// Ejected again soon after: the backoff continues (40s × 0.875).
			clock.advance(time.Second)
			fail(b, bad, 5)
			if st := bad.Stats(); st.EjectedUntil != clock.now()+int64(35*time.Second) {
				t.Fatalf("third ejection lasts %v, want 35s", time.Duration(st.EjectedUntil-clock.now()))
			}
			clock.set(bad.Stats().EjectedUntil)
			if b.Pick(nil) != bad {
				t.Fatal("want a probe")
			}
			succeed(b, bad)
			// In rotation for 10 minutes: the doubling is forgiven.
			clock.advance(10 * time.Minute)
			fail(b, bad, 5)
			if st := bad.Stats(); st.EjectedUntil != clock.now()+int64(8750*time.Millisecond) {
				t.Fatalf("ejection after a long good spell lasts %v, want 8.75s", time.Duration(st.EjectedUntil-clock.now()))
			}
		})
	}
}

// Ejection lengths are jittered, so endpoints ejected together return apart,
// and capped at MaxEjection.
func TestOutlierJitterAndCap(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	o := testOptions(clock, 7)
	o.Outlier.MaxEjectedShare = 1
	e := eps("a", "b", "c", "d", "e", "f", "g", "h", "i")
	b := mustNew(t, "p2c_ewma", e, o)
	seen := map[int64]bool{}
	for _, ep := range e[:8] {
		fail(b, ep, 5)
		d := time.Duration(ep.Stats().EjectedUntil - clock.now())
		if d < 7500*time.Millisecond || d > 10*time.Second {
			t.Fatalf("ejection of %v, want in [7.5s, 10s]", d)
		}
		seen[int64(d)] = true
	}
	if len(seen) < 7 {
		t.Fatalf("%d distinct ejection lengths for 8 endpoints: not jittered", len(seen))
	}
	// Probes keep failing: 10s, 20s, ..., capped at 5m.
	ep := e[0]
	for i := 0; i < 10; i++ {
		clock.set(ep.Stats().EjectedUntil)
		for b.Pick(nil) != ep {
		}
		fail(b, ep, 1)
	}
	if d := time.Duration(ep.Stats().EjectedUntil - clock.now()); d > 5*time.Minute || d < 225*time.Second {
		t.Fatalf("ejection after 11 failures: %v, want in [3m45s, 5m]", d)
	}
}

// Never more than floor(MaxEjectedShare × n) at once, never the last endpoint.
func TestOutlierMaxShareNeverLast(t *testing.T) {
	for _, c := range []struct {
		n     int
		share float64
		want  int
	}{
		{4, 0.5, 2},
		{5, 0.5, 2},
		// Regression: a share below 1/n used to allow one ejection anyway.
		{3, 0.1, 0},
		{3, 0.33, 0},
		{3, 0.34, 1},
		{5, 0.3, 1},
		{2, 0.5, 1},
		{2, 1, 1}, // never the last
		{1, 1, 0},
	} {
		clock := &fakeClock{}
		clock.set(int64(time.Hour))
		o := testOptions(clock, 0)
		o.Outlier.MaxEjectedShare = c.share
		e := eps("a", "b", "c", "d", "e")[:c.n]
		b := mustNew(t, "least_in_flight", e, o)
		for round := 0; round < 3; round++ {
			for _, ep := range e {
				fail(b, ep, 5)
			}
		}
		ejected := 0
		for _, ep := range e {
			if ep.Stats().Ejected {
				ejected++
			}
		}
		if ejected != c.want {
			t.Errorf("%d endpoints, share %v, all failing: %d ejected, want %d", c.n, c.share, ejected, c.want)
		}
		if b.Pick(nil) == nil {
			t.Errorf("%d endpoints: no endpoint left", c.n)
		}
	}
}

// A success rate under the threshold ejects even without five failures in
// a row; one above it does not.
func TestOutlierSuccessRate(t *testing.T) {
	for _, c := range []struct {
		pattern string // f = failure, s = success, repeated
		ejected bool
	}{
		{"ffs", true},    // 33% success
		{"ffffss", true}, // 33%, runs of 4
		{"sf", false},    // 50% is not below 0.5
		{"fss", false},
	} {
		clock := &fakeClock{}
		clock.set(int64(time.Hour))
		e := eps("a", "b", "c")
		b := mustNew(t, "round_robin", e, testOptions(clock, 0))
		for i := 0; i < 60 && !e[0].Stats().Ejected; i++ {
			clock.advance(100 * time.Millisecond)
			b.Done(e[0], Result{Failed: c.pattern[i%len(c.pattern)] == 'f'})
		}
		if got := e[0].Stats().Ejected; got != c.ejected {
			t.Errorf("pattern %q: ejected %v, want %v", c.pattern, got, c.ejected)
		}
	}
	// Attempts older than two windows are forgotten: 12 attempts at 33%
	// success, twice, eject only when the second dozen comes soon enough
	// to make MinRequests (20) with the first.
	for _, c := range []struct {
		gap     time.Duration
		ejected bool
	}{{5 * time.Second, true}, {25 * time.Second, false}} {
		clock := &fakeClock{}
		clock.set(int64(time.Hour))
		e := eps("a", "b", "c")
		b := mustNew(t, "round_robin", e, testOptions(clock, 0))
		dozen := func() {
			for i := 0; i < 4; i++ {
				fail(b, e[0], 2)
				succeed(b, e[0])
			}
		}
		dozen()
		if e[0].Stats().Ejected {
			t.Fatal("ejected after 12 attempts, fewer than MinRequests")
		}
		clock.advance(c.gap)
		dozen()
		if got := e[0].Stats().Ejected; got != c.ejected {
			t.Errorf("second dozen %v later: ejected %v, want %v", c.gap, got, c.ejected)
		}
	}
}

// A probe with no verdict (client gone) is handed back at once; a probe
// that never reports is taken over after ProbeTimeout.
func TestOutlierProbeCanceledOrLost(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	e := eps("bad", "b")
	bad := e[0]
	b := mustNew(t, "p2c_ewma", e, testOptions(clock, 0))
	fail(b, bad, 5)
	clock.set(bad.Stats().EjectedUntil)
	if b.Pick(nil) != bad {
		t.Fatal("want a probe")
	}
	b.Done(bad, Result{Canceled: true})
	if !bad.Stats().Ejected {
		t.Fatal("a canceled probe readmitted the endpoint")
	}
	if b.Pick(nil) != bad {
		t.Fatal("a canceled probe must be handed back for the next request")
	}
	// This probe is lost (no Done).
	if n := picks(b, e, 100)[bad]; n != 0 {
		t.Fatalf("picked %d times while a probe is in flight", n)
	}
	clock.advance(30*time.Second - 1)
	if n := picks(b, e, 100)[bad]; n != 0 {
		t.Fatalf("picked %d times before the probe timed out", n)
	}
	clock.advance(1)
	if b.Pick(nil) != bad {
		t.Fatal("a lost probe must be taken over after ProbeTimeout")
	}
	succeed(b, bad)
	if bad.Stats().Ejected {
		t.Fatal("not readmitted")
	}
}

// A retry's excluded endpoint is not probed; the next request probes it.
func TestOutlierProbeSkipsExcluded(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	e := eps("bad", "b", "c")
	b := mustNew(t, "round_robin", e, testOptions(clock, 0))
	fail(b, e[0], 5)
	clock.set(e[0].Stats().EjectedUntil)
	if b.Pick(e[0]) == e[0] {
		t.Fatal("probed the excluded endpoint")
	}
	clock.advance(1)
	if b.Pick(nil) != e[0] {
		t.Fatal("the next request must probe it")
	}
}

// Ejection is per endpoint state, so a balancer built over the same
// endpoints (a reload) keeps it, and still probes on time.
func TestOutlierSurvivesNewBalancer(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	e := eps("bad", "b", "c")
	old := mustNew(t, "round_robin", e, testOptions(clock, 0))
	fail(old, e[0], 5)
	b := mustNew(t, "p2c_ewma", e, testOptions(clock, 0))
	if n := picks(b, e, 100)[e[0]]; n != 0 {
		t.Fatalf("new balancer picked the ejected endpoint %d times", n)
	}
	clock.set(e[0].Stats().EjectedUntil + int64(time.Second))
	if b.Pick(nil) != e[0] {
		t.Fatal("new balancer does not probe the endpoint ejected under the old one")
	}
}

func TestOutlierDisabled(t *testing.T) {
	clock := &fakeClock{}
	o := testOptions(clock, 0)
	o.Outlier.Enabled = false
	e := eps("a", "b")
	b := mustNew(t, "round_robin", e, o)
	fail(b, e[0], 100)
	if e[0].Stats().Ejected {
		t.Fatal("ejected with outlier ejection off")
	}
	if st := e[0].Stats(); st.FailureRate < 0.9 || st.Latency != time.Second {
		t.Fatalf("stats still kept: %+v, want failure rate ~1 and latency = the 1s penalty", st)
	}
}
