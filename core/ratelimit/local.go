// Package ratelimit counts requests against token buckets, one per key: in
// memory (Local), or shared by every gateway instance through Redis (Redis),
// with the local buckets as the fallback while Redis is slow or down.
//
// A bucket holds at most Burst tokens and gains Rate tokens per Per; a
// request takes its cost in tokens, or is refused with the time until the
// bucket holds enough. A cost above Burst is never allowed.
package ratelimit

import (
	"math"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Rule is a bucket's size and refill.
type Rule struct {
	// Rate tokens are added every Per.
	Rate int
	Per  time.Duration
	// Burst is the bucket's size (and a new bucket's content).
	Burst int
}

// perSecond returns the refill in tokens per second.
func (r Rule) perSecond() float64 { return float64(r.Rate) / r.Per.Seconds() }

// Decision is the answer for one request.
type Decision struct {
	// Allowed is true when the request took its tokens.
	Allowed bool
	// RetryAfter, when refused, is the time until the bucket holds the cost
	// (at least 1ms; the cost may never fit when it exceeds Burst).
	RetryAfter time.Duration
	// Remaining is the number of whole tokens left (after taking the cost).
	Remaining int
}

// take applies a request of cost to a bucket holding tokens, last updated
// at last (the zero time: a new, full bucket).
func take(tokens float64, last, now time.Time, cost int, r Rule) (float64, Decision) {
	burst := float64(r.Burst)
	if last.IsZero() {
		tokens = burst
	} else if el := now.Sub(last); el > 0 {
		tokens = math.Min(burst, tokens+el.Seconds()*r.perSecond())
	}
	c := float64(cost)
	if tokens >= c {
		tokens -= c
		return tokens, Decision{Allowed: true, Remaining: int(tokens)}
	}
	wait := time.Duration((c - tokens) / r.perSecond() * float64(time.Second))
	return tokens, Decision{RetryAfter: max(wait, time.Millisecond), Remaining: int(tokens)}
}

// numShards spreads the keys of a Local over independent locks.
const numShards = 64

// Local is a set of in-memory token buckets, at most MaxKeys of them: past
// that, the least recently used bucket is dropped (a key that comes back
// starts full). Keys are spread over shards by xxhash.
type Local struct {
	shards  [numShards]shard
	perCap  int
	now     func() time.Time
	Evicted func() // called (under a shard lock) when a bucket is dropped; may be nil
}

type shard struct {
	mu   sync.Mutex
	keys map[string]*bucket
	// A doubly linked LRU list through the buckets; head is the most recent.
	head, tail *bucket
}

type bucket struct {
	key        string
	tokens     float64
	last       time.Time
	prev, next *bucket
}

// NewLocal returns buckets for at most maxKeys keys (rounded up to a
// multiple of the shard count); now tells the time (nil: time.Now).
func NewLocal(maxKeys int, now func() time.Time) *Local {
	if now == nil {
		now = time.Now
	}
	l := &Local{perCap: max(1, (maxKeys+numShards-1)/numShards), now: now}
	for i := range l.shards {
		l.shards[i].keys = map[string]*bucket{}
	}
	return l
}

// Take takes cost tokens from key's bucket under rule r.
func (l *Local) Take(key string, cost int, r Rule) Decision {
	s := &l.shards[xxhash.Sum64String(key)%numShards]
	now := l.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.keys[key]
	if b == nil {
		if len(s.keys) >= l.perCap {
			s.evict()
			if l.Evicted != nil {
				l.Evicted()
			}
		}
		b = &bucket{key: key}
		s.keys[key] = b
	} else {
		s.unlink(b)
	}
	s.pushFront(b)
	var d Decision
	b.tokens, d = take(b.tokens, b.last, now, cost, r)
	b.last = now
	return d
}

// Len returns the number of buckets kept.
func (l *Local) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.keys)
		s.mu.Unlock()
	}
	return n
}

func (s *shard) evict() {
	b := s.tail
	if b == nil {
		return
	}
	s.unlink(b)
	delete(s.keys, b.key)
}

func (s *shard) unlink(b *bucket) {
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		s.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		s.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

func (s *shard) pushFront(b *bucket) {
	b.next = s.head
	if s.head != nil {
		s.head.prev = b
	}
	s.head = b
	if s.tail == nil {
		s.tail = b
	}
}
