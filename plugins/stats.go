package plugins

import (
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/plugins/wire"
)

// LatencyBuckets are the upper bounds of the call latency histogram.
var LatencyBuckets = []time.Duration{
	25 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond,
	250 * time.Millisecond, 500 * time.Millisecond, time.Second,
}

// counters are a Host's, shared by its versions.
type counters struct {
	calls       atomic.Int64
	failures    [wire.NumKinds]atomic.Int64
	cacheHits   atomic.Int64
	cacheMisses atomic.Int64
	restarts    atomic.Int64
	reloads     atomic.Int64
	refusals    atomic.Int64
	latency     [16]atomic.Int64 // len(LatencyBuckets)+1: the last is +Inf
	latencySum  atomic.Int64
}

var kindNames = func() []string {
	var out []string
	for _, k := range wire.Kinds() {
		out = append(out, k.String())
	}
	return out
}()

func (c *counters) observe(d time.Duration) {
	i := 0
	for i < len(LatencyBuckets) && d > LatencyBuckets[i] {
		i++
	}
	c.latency[i].Add(1)
	c.latencySum.Add(int64(d))
}

// Stats are a Host's counters and state.
type Stats struct {
	// Name is the plugin's name; Version the ID of the version serving
	// new calls ("" once closed).
	Name    string
	Version string
	// PID is the serving process's ID, 0 while it is down.
	PID int
	// Up reports whether the serving version has a live process.
	Up bool
	// Transport is the transport the serving process uses.
	Transport wire.Transport
	// Calls counts calls made to the plugin (cache hits excluded);
	// Failures counts failed calls by kind (wire.Kind names:
	// "plugin_error", "timeout", "unavailable", "invalid", "too_large",
	// "overloaded", "transport").
	Calls    int64
	Failures map[string]int64
	// CacheHits and CacheMisses count lookups of the decision cache;
	// CacheEntries is its size now.
	CacheHits, CacheMisses int64
	CacheEntries           int
	// Restarts counts restarts after a crash or a hang; Reloads the
	// versions swapped in after the first; Refusals the new versions that
	// failed to start (the old kept serving); LastError why the last
	// restart or reload went wrong.
	Restarts, Reloads, Refusals int64
	LastError                   string
	// Latency is the histogram of call times: LatencyCounts[i] counts calls
	// that took at most LatencyBuckets[i]; the last count is over every
	// bucket. LatencySum is the total time.
	LatencyCounts []int64
	LatencySum    time.Duration
}

func (c *counters) snapshot(s *Stats) {
	s.Calls = c.calls.Load()
	s.Failures = make(map[string]int64, len(kindNames))
	for i, n := range kindNames {
		s.Failures[n] = c.failures[i].Load()
	}
	s.CacheHits, s.CacheMisses = c.cacheHits.Load(), c.cacheMisses.Load()
	s.Restarts, s.Reloads, s.Refusals = c.restarts.Load(), c.reloads.Load(), c.refusals.Load()
	s.LatencyCounts = make([]int64, len(c.latency))
	for i := range c.latency {
		s.LatencyCounts[i] = c.latency[i].Load()
	}
	s.LatencySum = time.Duration(c.latencySum.Load())
}
