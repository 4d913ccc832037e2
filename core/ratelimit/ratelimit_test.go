package ratelimit

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/ratelimit/redistest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestLocalBucket(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := NewLocal(100, clk.Now)
	r := Rule{Rate: 10, Per: time.Second, Burst: 5}
	for i := range 5 {
		if d := l.Take("a", 1, r); !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("take %d: %+v, want allowed with %d left", i, d, 4-i)
		}
	}
	d := l.Take("a", 1, r)
	if d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("sixth take: %+v, want refused with RetryAfter 100ms (1 token at 10/s)", d)
	}
	if d := l.Take("b", 1, r); !d.Allowed {
		t.Fatalf("other key refused: %+v", d)
	}
	clk.Add(250 * time.Millisecond) // 2.5 tokens
	if d := l.Take("a", 2, r); !d.Allowed {
		t.Fatalf("cost 2 after 250ms: %+v, want allowed", d)
	}
	if d := l.Take("a", 1, r); d.Allowed {
		t.Fatalf("cost 1 with 0.5 tokens left allowed")
	}
	clk.Add(time.Hour)
	if d := l.Take("a", 6, r); d.Allowed {
		t.Fatal("cost above burst allowed")
	}
	if d := l.Take("a", 5, r); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("full bucket, cost = burst: %+v, want allowed with 0 left", d)
	}
}

func TestLocalEvictsLeastRecentlyUsed(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	l := NewLocal(numShards, clk.Now) // one bucket per shard
	evicted := 0
	l.Evicted = func() { evicted++ }
	r := Rule{Rate: 1, Per: time.Hour, Burst: 1}
	for i := range 10000 {
		l.Take("k"+strconv.Itoa(i), 1, r)
	}
	if n := l.Len(); n > numShards {
		t.Fatalf("%d buckets kept, want at most %d", n, numShards)
	}
	if evicted != 10000-l.Len() {
		t.Fatalf("evicted %d, want %d", evicted, 10000-l.Len())
	}
	// A key used last stays; its bucket is empty.
	if d := l.Take("k9999", 1, r); d.Allowed {
		t.Fatal("most recent key lost its bucket")
	}
}

func newRedis(addr string) *Redis {
	return NewRedis(RedisOptions{Address: addr, Timeout: 50 * time.Millisecond, ProbeInterval: 20 * time.Millisecond,
		PoolSize: 8, KeyPrefix: "test:", Log: zerolog.Nop()})
}

// TestRedisSharedBucket: two clients (two gateway instances) draw from one
// bucket.
func TestRedisSharedBucket(t *testing.T) {
	srv := redistest.Start(t)
	a, b := newRedis(srv.Addr), newRedis(srv.Addr)
	defer a.Close()
	defer b.Close()
	la := NewLimiter("r", Rule{Rate: 1, Per: time.Hour, Burst: 10}, 100, a)
	lb := NewLimiter("r", Rule{Rate: 1, Per: time.Hour, Burst: 10}, 100, b)
	allowed := 0
	for i := range 20 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		if l.Take(context.Background(), "k", 1, time.Now().Add(time.Second)).Allowed {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("%d of 20 allowed across two instances with one bucket of 10, want 10", allowed)
	}
	if f := la.Stats.Fallback.Load() + lb.Stats.Fallback.Load(); f != 0 {
		t.Fatalf("%d local fallbacks with Redis up", f)
	}
	d, err := a.Take(context.Background(), "r", "k", 1, Rule{Rate: 1, Per: time.Hour, Burst: 10}, time.Now().Add(time.Second))
	if err != nil || d.Allowed || d.RetryAfter < 59*time.Minute {
		t.Fatalf("empty shared bucket: %+v %v, want refused with RetryAfter near 1h", d, err)
	}
}

// TestRedisDownFallsBackAndRecovers: with Redis stopped no call waits past
// the timeout, decisions are local, and once Redis is back the probe
// returns to shared buckets.
func TestRedisDownFallsBackAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	rd := newRedis(srv.Addr)
	defer rd.Close()
	lim := NewLimiter("r", Rule{Rate: 1000, Per: time.Second, Burst: 1000}, 100, rd)
	if d := lim.Take(context.Background(), "k", 1, time.Now().Add(time.Second)); !d.Allowed || rd.Down() {
		t.Fatalf("with Redis up: %+v down=%v", d, rd.Down())
	}
	srv.Stop()
	var slowest time.Duration
	for range 50 {
		start := time.Now()
		lim.Take(context.Background(), "k", 1, time.Now().Add(time.Second))
		slowest = max(slowest, time.Since(start))
	}
	// The timeout is 50ms; allow scheduling slack on a busy machine.
	if slowest > 250*time.Millisecond {
		t.Fatalf("a decision took %s with Redis down, bound is redis timeout 50ms", slowest)
	}
	if !rd.Down() || lim.Stats.Fallback.Load() != 50 || rd.Stats.Fallbacks.Load() != 1 {
		t.Fatalf("down=%v fallbacks=%d transitions=%d, want down, 50 local decisions, 1 transition",
			rd.Down(), lim.Stats.Fallback.Load(), rd.Stats.Fallbacks.Load())
	}
	if calls := rd.Stats.Calls.Load(); calls > 2 {
		t.Fatalf("%d calls sent to a Redis known down, want at most the one that found it down (and a racing one)", calls)
	}
	srv.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for rd.Down() {
		if time.Now().After(deadline) {
			t.Fatal("Redis still considered down 10s after it restarted")
		}
		time.Sleep(5 * time.Millisecond) // polling the probe's result
	}
	before := lim.Stats.Fallback.Load()
	if d := lim.Take(context.Background(), "k", 1, time.Now().Add(time.Second)); !d.Allowed || lim.Stats.Fallback.Load() != before {
		t.Fatalf("after recovery: %+v, fallbacks %d → %d, want a shared decision", d, before, lim.Stats.Fallback.Load())
	}
}

// TestRedisConcurrentExactness: concurrent takes from many goroutines on two
// clients never over-admit (the script is atomic).
func TestRedisConcurrentExactness(t *testing.T) {
	srv := redistest.Start(t)
	// A generous timeout: this test judges atomicity, not the bound.
	o := RedisOptions{Address: srv.Addr, Timeout: 2 * time.Second, ProbeInterval: time.Second, PoolSize: 8, KeyPrefix: "test:", Log: zerolog.Nop()}
	a, b := NewRedis(o), NewRedis(o)
	defer a.Close()
	defer b.Close()
	rule := Rule{Rate: 1, Per: time.Hour, Burst: 100}
	var allowed, errs atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		rd := a
		if g%2 == 1 {
			rd = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 40 {
				d, err := rd.Take(context.Background(), "c", "k", 1, rule, time.Now().Add(time.Second))
				if err != nil {
					errs.Add(1)
				} else if d.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if errs.Load() > 0 {
		t.Fatalf("%d Redis errors", errs.Load())
	}
	if allowed.Load() != 100 {
		t.Fatalf("%d of 320 allowed from a bucket of 100, want exactly 100", allowed.Load())
	}
}
