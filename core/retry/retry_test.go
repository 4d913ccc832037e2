package retry

import (
	"math/rand/v2"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBudgetCapsRetries(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	o := DefaultOptions()
	b := NewBudget(o, c.now)
	// 1000 requests in the window allow 20% retries plus the floor of 3/s × 10s.
	for i := 0; i < 1000; i++ {
		b.Request()
	}
	granted := 0
	for i := 0; i < 1000; i++ {
		if b.TryRetry() {
			granted++
		}
	}
	if granted != 200+30 {
		t.Fatalf("granted %d retries, want 230", granted)
	}
	// The window slides: after it has passed, the old counts no longer weigh.
	c.t = c.t.Add(11 * time.Second)
	if req, ret := b.Stats(); req != 0 || ret != 0 {
		t.Fatalf("stats after the window: %d %d", req, ret)
	}
	if !b.TryRetry() {
		t.Fatal("floor must allow a retry on a quiet service")
	}
}

func TestBudgetSlidesByBucket(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	b := NewBudget(Options{BudgetPercent: 50, MinPerSecond: 0, Window: 10 * time.Second}, c.now)
	for i := 0; i < 10; i++ {
		b.Request()
	}
	c.t = c.t.Add(5 * time.Second)
	for i := 0; i < 10; i++ {
		b.Request()
	}
	if req, _ := b.Stats(); req != 20 {
		t.Fatalf("requests %d, want 20", req)
	}
	c.t = c.t.Add(6 * time.Second) // the first 10 fall out
	if req, _ := b.Stats(); req != 10 {
		t.Fatalf("requests %d, want 10", req)
	}
}

func TestBackoffGrowsAndStaysBounded(t *testing.T) {
	o := DefaultOptions()
	r := rand.New(rand.NewPCG(1, 2))
	for n := 1; n < 40; n++ {
		d := o.Backoff(n, r)
		ceil := min(o.BackoffBase<<min(n-1, 20), o.BackoffMax)
		if d < 0 || d > ceil {
			t.Fatalf("backoff(%d) = %v, ceiling %v", n, d, ceil)
		}
	}
}

func TestIdempotent(t *testing.T) {
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "PUT": true, "DELETE": true, "OPTIONS": true, "POST": false, "PATCH": false} {
		if Idempotent(m) != want {
			t.Errorf("Idempotent(%s) = %v", m, !want)
		}
	}
}
