package proxy

import (
	"testing"
	"time"
)

func TestRateRule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := rateRule{rate: 1000, grace: 2 * time.Second, hard: t0.Add(time.Minute)}
	cases := []struct {
		name       string
		last       time.Duration
		moved      int64
		want       time.Duration
		byDeadline bool
	}{
		{"nothing moved: the grace", 0, 0, 2 * time.Second, false},
		{"fast sender earns credit but cannot stall past the grace", 100 * time.Millisecond, 100000, 2100 * time.Millisecond, false},
		{"slow sender is held to the average", 3 * time.Second, 1500, 3500 * time.Millisecond, false},
		{"request deadline binds", 59 * time.Second, 1 << 30, time.Minute, true},
	}
	for _, c := range cases {
		got, hard := r.next(t0, t0.Add(c.last), c.moved)
		if got.Sub(t0) != c.want || hard != c.byDeadline {
			t.Errorf("%s: deadline +%v (hard %v), want +%v (hard %v)", c.name, got.Sub(t0), hard, c.want, c.byDeadline)
		}
	}
}
