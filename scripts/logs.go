package scripts

import (
	"sync"
	"sync/atomic"
	"time"
)

// logLimiter is a token bucket for one script's console lines: rate lines per
// second, bursts of up to burst lines. Lines beyond it are dropped and
// counted; the next line that passes carries the count.
type logLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	tokens  float64
	last    time.Time
	pending uint64        // drops not yet reported on a log line
	dropped atomic.Uint64 // all drops, for Stats
}

func newLogLimiter(rate float64, burst int) *logLimiter {
	return &logLimiter{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// allow reports whether a line may be logged now and, if so, how many lines
// were dropped since the last one that was.
func (l *logLimiter) allow(now time.Time) (ok bool, droppedBefore uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.pending++
		l.dropped.Add(1)
		return false, 0
	}
	l.tokens--
	d := l.pending
	l.pending = 0
	return true, d
}
