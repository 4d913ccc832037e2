// Package retry decides whether a failed upstream attempt may be tried
// again: only when it is safe (the request provably did not reach the
// endpoint, or the method is idempotent and no response reached the client),
// only within the time left, and only within a budget — retries may add at
// most a percentage of the service's requests over a sliding window, plus a
// small floor per second (a token bucket, so the floor cannot be saved up
// into a burst) — so that an outage does not become a retry storm.
package retry

import (
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// Options configure retries for one service. All are required and positive
// except where a zero is documented.
type Options struct {
	// MaxAttempts is the most attempts per request, the first included. Default 3.
	MaxAttempts int
	// BudgetPercent is how many retries there may be per 100 requests over
	// the window. Default 20.
	BudgetPercent int
	// MinPerSecond is the floor of retries allowed per second whatever the
	// request rate (so a quiet service can still retry): a token bucket
	// refilled at MinPerSecond per second holding at most MinPerSecond, used
	// once the percentage is spent. Default 3; 0 turns the floor off.
	MinPerSecond int
	// Window is the sliding window of the budget. Default 10s.
	Window time.Duration
	// BackoffBase and BackoffMax bound the jittered exponential backoff
	// between attempts. Defaults 10ms and 250ms.
	BackoffBase, BackoffMax time.Duration
}

// DefaultOptions are the documented defaults.
func DefaultOptions() Options {
	return Options{MaxAttempts: 3, BudgetPercent: 20, MinPerSecond: 3, Window: 10 * time.Second,
		BackoffBase: 10 * time.Millisecond, BackoffMax: 250 * time.Millisecond}
}

const buckets = 10

// Budget counts requests and retries of one service in a ring of time
// buckets covering the window, and holds the floor's token bucket.
type Budget struct {
	opts  Options
	now   func() time.Time
	width time.Duration

	mu       sync.Mutex
	epoch    [buckets]int64 // bucket start, in widths since the Unix epoch
	requests [buckets]int64
	retries  [buckets]int64
	// The floor: tokens (retries) in the bucket as of filled.
	tokens float64
	filled time.Time
}

// NewBudget returns a budget; now may be nil for the system clock.
func NewBudget(opts Options, now func() time.Time) *Budget {
	if now == nil {
		now = time.Now
	}
	return &Budget{opts: opts, now: now, width: opts.Window / buckets, tokens: float64(opts.MinPerSecond), filled: now()}
}

func (b *Budget) slot() int {
	e := b.now().UnixNano() / int64(b.width)
	i := int(e % buckets)
	if b.epoch[i] != e {
		b.epoch[i], b.requests[i], b.retries[i] = e, 0, 0
	}
	return i
}

// sums returns requests and retries in the window. b.mu is held.
func (b *Budget) sums() (req, ret int64) {
	e := b.now().UnixNano() / int64(b.width)
	for i := range buckets {
		if e-b.epoch[i] < buckets {
			req += b.requests[i]
			ret += b.retries[i]
		}
	}
	return req, ret
}

// Request counts one request to the service.
func (b *Budget) Request() {
	b.mu.Lock()
	b.requests[b.slot()]++
	b.mu.Unlock()
}

// TryRetry takes one retry from the budget, or reports that it is spent:
// first from the percentage of the window's requests, then from the
// floor's bucket. Over any interval of t seconds, retries stay within the
// percentage plus MinPerSecond × (t + 1).
func (b *Budget) TryRetry() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	req, ret := b.sums()
	if ret >= req*int64(b.opts.BudgetPercent)/100 && !b.takeToken() {
		return false
	}
	b.retries[b.slot()]++
	return true
}

// takeToken refills the floor's bucket for the time passed and takes one
// token if there is one. b.mu is held.
func (b *Budget) takeToken() bool {
	burst := float64(b.opts.MinPerSecond)
	if burst <= 0 {
		return false
	}
	now := b.now()
	if el := now.Sub(b.filled); el > 0 {
		b.tokens = min(burst, b.tokens+el.Seconds()*burst)
	}
	b.filled = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Stats returns the requests and retries counted in the window.
func (b *Budget) Stats() (requests, retries int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sums()
}

// Backoff returns the wait before attempt n (n ≥ 1 is the first retry):
// full jitter over an exponentially growing cap.
func (o Options) Backoff(n int, r *rand.Rand) time.Duration {
	ceil := o.BackoffBase << min(n-1, 20)
	if ceil > o.BackoffMax || ceil <= 0 {
		ceil = o.BackoffMax
	}
	if r == nil {
		return time.Duration(rand.Int64N(int64(ceil) + 1))
	}
	return time.Duration(r.Int64N(int64(ceil) + 1))
}

// Idempotent reports whether a method may be repeated without changing the
// result (RFC 9110 section 9.2.2).
func Idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
