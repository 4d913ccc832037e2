package ratelimit

import (
	"context"
	"sync/atomic"
	"time"
)

// Limiter is one route's rate limit: its rule, its local buckets and,
// when the limit is shared, the Redis buckets in front of them.
type Limiter struct {
	// Name identifies the buckets in Redis (the route's name).
	Name string
	Rule Rule
	// Local holds the buckets when the limit is not shared, and is the
	// fallback while Redis is down.
	Local *Local
	// Shared, when not nil, holds the buckets common to every instance.
	Shared *Redis

	Stats LimiterStats
}

// LimiterStats are a route limiter's counters.
type LimiterStats struct {
	// Allowed and Limited count decisions; Fallback those of them taken
	// locally for a shared limit because Redis failed or was down.
	Allowed, Limited, Fallback atomic.Uint64
	// Evicted counts local buckets dropped to stay within max_keys.
	Evicted atomic.Uint64
}

// NewLimiter returns a limiter with its own local buckets (at most maxKeys).
func NewLimiter(name string, rule Rule, maxKeys int, shared *Redis) *Limiter {
	l := &Limiter{Name: name, Rule: rule, Local: NewLocal(maxKeys, nil), Shared: shared}
	l.Local.Evicted = func() { l.Stats.Evicted.Add(1) }
	return l
}

// Take takes cost tokens from key's bucket: from Redis when the limit is
// shared and Redis answers within its bound, otherwise locally.
func (l *Limiter) Take(ctx context.Context, key string, cost int, deadline time.Time) Decision {
	var d Decision
	done := false
	if l.Shared != nil {
		var err error
		d, err = l.Shared.Take(ctx, l.Name, key, cost, l.Rule, deadline)
		if done = err == nil; !done {
			l.Stats.Fallback.Add(1)
		}
	}
	if !done {
		d = l.Local.Take(key, cost, l.Rule)
	}
	if d.Allowed {
		l.Stats.Allowed.Add(1)
	} else {
		l.Stats.Limited.Add(1)
	}
	return d
}
