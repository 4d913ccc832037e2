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
		moved      int64
		waited     time.Duration
		want       time.Duration
		byDeadline bool
	}{
		{"nothing moved yet: the grace", 0, 0, 2 * time.Second, false},
		{"a fast peer earns credit but may not stall past the grace", 100000, 100 * time.Millisecond, 2 * time.Second, false},
		{"a slow peer is held to the average", 1500, 3 * time.Second, 500 * time.Millisecond, false},
		{"a peer over its budget gets no more time", 100, 3 * time.Second, 0, false},
		{"time waiting on the other side does not count", 10, 0, 2 * time.Second, false},
	}
	for _, c := range cases {
		got, hard := r.next(t0, c.moved, c.waited)
		if got.Sub(t0) != c.want || hard != c.byDeadline {
			t.Errorf("%s: deadline +%v (hard %v), want +%v (hard %v)", c.name, got.Sub(t0), hard, c.want, c.byDeadline)
		}
	}
	late := t0.Add(59 * time.Second)
	if got, hard := r.next(late, 1<<30, 0); !hard || !got.Equal(r.hard) {
		t.Errorf("near the request deadline: %v %v", got, hard)
	}
}
