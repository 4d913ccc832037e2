package ewma

import (
	"math"
	"testing"
)

const sec = int64(1e9)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestWeight(t *testing.T) {
	for _, c := range []struct {
		elapsed, tau int64
		want         float64
	}{
		{0, sec, 1},
		{-5, sec, 1},
		{sec, sec, math.Exp(-1)},
		{3 * sec, sec, math.Exp(-3)},
		{sec, 0, 0},
	} {
		if got := Weight(c.elapsed, c.tau); !near(got, c.want) {
			t.Errorf("Weight(%d, %d) = %v, want %v", c.elapsed, c.tau, got, c.want)
		}
	}
}

func TestPeakJumpsUpAndDecaysDown(t *testing.T) {
	var p Peak
	tau := 10 * sec
	if p.Value(0, tau) != 0 {
		t.Fatal("empty Peak must read 0")
	}
	p.Observe(0, 10, tau)
	p.Observe(sec, 500, tau) // a slowdown is believed at once
	if got := p.Value(sec, tau); got != 500 {
		t.Fatalf("after a peak: %v, want 500", got)
	}
	// A lower sample tau later moves the value 63% of the way down.
	p.Observe(sec+tau, 10, tau)
	want := 500*math.Exp(-1) + 10*(1-math.Exp(-1))
	if got := p.Value(sec+tau, tau); !near(got, want) {
		t.Fatalf("after a lower sample: %v, want %v", got, want)
	}
	// Reading decays toward zero: an untried endpoint becomes attractive.
	if got := p.Value(sec+2*tau, tau); !near(got, want*math.Exp(-1)) {
		t.Fatalf("decay on read: %v, want %v", got, want*math.Exp(-1))
	}
	if v, st, ok := p.Last(); !ok || st != sec+tau || !near(v, want) {
		t.Fatalf("Last = %v, %v, %v", v, st, ok)
	}
}

func TestPeakSameInstantLowerSampleIgnored(t *testing.T) {
	var p Peak
	p.Observe(5, 100, sec)
	p.Observe(5, 1, sec) // no time passed: no weight
	if got := p.Value(5, sec); got != 100 {
		t.Fatalf("got %v, want 100", got)
	}
}

func TestRatio(t *testing.T) {
	var r Ratio
	tau := 60 * sec
	if r.Value(0, tau, 1) != 0 {
		t.Fatal("empty Ratio must read 0")
	}
	// One failure with a prior of one success reads 50%, not 100%.
	r.Observe(0, true, tau)
	if got := r.Value(0, tau, 1); !near(got, 0.5) {
		t.Fatalf("one hit: %v, want 0.5", got)
	}
	// A burst at one instant counts in full: 1 hit in 4 events.
	r.Observe(0, false, tau)
	r.Observe(0, false, tau)
	r.Observe(0, false, tau)
	if got := r.Value(0, tau, 0); !near(got, 0.25) {
		t.Fatalf("burst: %v, want 0.25", got)
	}
	// Old events weigh less: tau later, 4 successes outweigh the past.
	for i := 0; i < 4; i++ {
		r.Observe(tau, false, tau)
	}
	w := math.Exp(-1)
	want := w / (4*w + 4)
	if got := r.Value(tau, tau, 0); !near(got, want) {
		t.Fatalf("aged: %v, want %v", got, want)
	}
	// With a prior, a quiet ratio fades toward zero.
	if a, b := r.Value(tau, tau, 1), r.Value(10*tau, tau, 1); !(b < a/100) {
		t.Fatalf("quiet ratio did not fade: %v then %v", a, b)
	}
}
