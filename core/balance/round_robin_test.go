package balance

import (
	"strings"
	"testing"
	"time"
)

// nginx's example: weights 5, 1, 1 give a a b a c a a, spread out rather
// than a run of five a's.
func TestRoundRobinSmoothWeighted(t *testing.T) {
	e := eps("a", "b", "c")
	e[0].Weight = 5
	clock := &fakeClock{}
	b := mustNew(t, "round_robin", e, testOptions(clock, 1))
	var got []string
	for i := 0; i < 14; i++ {
		got = append(got, b.Pick(nil).Addr)
	}
	if s, want := strings.Join(got, " "), "a a b a c a a a a b a c a a"; s != want {
		t.Fatalf("sequence %q, want %q", s, want)
	}
}

// An endpoint that joined ramps up linearly over the slow-start window: 10%
// of its weight at once, 55% halfway, all of it at the end.
func TestRoundRobinSlowStart(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	o := testOptions(clock, 1)
	o.SlowStart = 30 * time.Second
	e := eps("old", "new")
	e[1].Joined = clock.now()
	b := mustNew(t, "round_robin", e, o)
	for _, c := range []struct {
		at    time.Duration
		ramp  float64
		share float64
	}{
		{0, 0.1, 0.1 / 1.1},
		{15 * time.Second, 0.55, 0.55 / 1.55},
		{30 * time.Second, 1, 0.5},
		{time.Hour, 1, 0.5},
	} {
		clock.set(e[1].Joined + int64(c.at))
		n := 0
		for i := 0; i < 3100; i++ {
			if b.Pick(nil) == e[1] {
				n++
			}
		}
		if got := float64(n) / 3100; got < c.share-0.01 || got > c.share+0.01 {
			t.Errorf("%v after joining: share %.3f, want %.3f (ramp %.2f)", c.at, got, c.share, c.ramp)
		}
	}
}
