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
	// 1000 requests in the window allow 20% retries plus the floor's burst
	// of 3 (the clock stands still).
	for i := 0; i < 1000; i++ {
		b.Request()
	}
	granted := 0
	for i := 0; i < 1000; i++ {
		if b.TryRetry() {
			granted++
		}
	}
	if granted != 200+3 {
		t.Fatalf("granted %d retries, want 203", granted)
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

// Regression: the floor was MinPerSecond × window spread over the whole
// window, so a quiet service could take 30 retries in one second. It is a
// per-second allowance: a bucket of MinPerSecond refilled at MinPerSecond/s.
func TestBudgetFloorIsPerSecond(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	b := NewBudget(DefaultOptions(), c.now) // 3/s, no requests: the floor alone
	take := func() (n int) {
		for i := 0; i < 100 && b.TryRetry(); i++ {
			n++
		}
		return n
	}
	if n := take(); n != 3 {
		t.Fatalf("a quiet service got %d retries at once, want the floor's 3", n)
	}
	c.t = c.t.Add(200 * time.Millisecond) // 0.6 of a token
	if n := take(); n != 0 {
		t.Fatalf("after 200ms: %d retries, want 0", n)
	}
	c.t = c.t.Add(150 * time.Millisecond) // 1.05 tokens
	if n := take(); n != 1 {
		t.Fatalf("after 350ms: %d retries, want 1", n)
	}
	// Idle time is not saved up beyond one second's worth.
	c.t = c.t.Add(time.Minute)
	if n := take(); n != 3 {
		t.Fatalf("after a quiet minute: %d retries, want 3 (the bucket holds one second)", n)
	}
	// Over ten seconds of steady failures: at most 3 per second, plus the burst.
	got := 0
	for i := 0; i < 100; i++ {
		c.t = c.t.Add(100 * time.Millisecond)
		got += take()
	}
	if got < 29 || got > 30 {
		t.Fatalf("10s at 3/s: %d retries, want 30", got)
	}
	// With no floor, no requests means no retries.
	o := DefaultOptions()
	o.MinPerSecond = 0
	if NewBudget(o, c.now).TryRetry() {
		t.Fatal("no floor and no requests: a retry was granted")
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
