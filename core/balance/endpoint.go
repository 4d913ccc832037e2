package balance

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/ewma"
)

// state is an endpoint's balancing state. Done updates it under mu; Pick
// reads only the published atomics, so it never waits for a Done.
type state struct {
	mu   sync.Mutex
	lat  ewma.Peak  // latency in nanoseconds, failures at least FailurePenalty
	fail ewma.Ratio // share of failed attempts
	// Outlier bookkeeping, under mu.
	consecutive int   // failed attempts in a row
	winStart    int64 // start of the current success-rate window
	cur, prev   window
	level       int   // ejections not yet forgiven; the next lasts Base<<level
	readmitted  int64 // when the last probe succeeded

	// Published for Pick and Stats.
	latBits   atomic.Uint64 // float64 bits of lat's value at its last sample
	latStamp  atomic.Int64  // time of that sample
	latSeen   atomic.Bool   // lat has a sample
	failBits  atomic.Uint64 // float64 bits of the failure rate at the last attempt
	out       atomic.Uint64 // outlier phase and time, see outWord
	ejections atomic.Int64  // times ejected, for metrics
	lastPick  atomic.Int64  // least_in_flight's last pick of this endpoint
	down      atomic.Bool   // marked down by an active health check
	// The attempts in flight begun with Begin: how many, and the sum of
	// their start times, for their mean age.
	ageN, ageSum atomic.Int64
}

// window counts attempts in one success-rate bucket.
type window struct{ attempts, failures int }

// Outlier phases, in the low two bits of state.out; the rest holds a time
// (nanoseconds, shifted): the end of an ejection, or a probe's deadline.
const (
	phaseIn      = 0 // in rotation
	phaseEjected = 1 // out until the time; then one probe may go
	phaseProbing = 2 // out; one probe in flight until the time
)

func outWord(phase int, t int64) uint64 { return uint64(t)<<2 | uint64(phase) }

func splitOut(w uint64) (phase int, t int64) { return int(w & 3), int64(w >> 2) }

// SetHealthy marks the endpoint up or down. Active health checks call it;
// balancers skip an endpoint that is down unless all are down. Endpoints
// start up.
func (ep *Endpoint) SetHealthy(up bool) { ep.st.down.Store(!up) }

// Healthy reports whether the endpoint is up (not marked down).
func (ep *Endpoint) Healthy() bool { return !ep.st.down.Load() }

// Stats is an endpoint's balancing state, for metrics and the admin UI.
type Stats struct {
	// InFlight is the number of attempts in progress.
	InFlight int64
	// Healthy is false while an active health check has it marked down.
	Healthy bool
	// Ejected is true while passive outlier ejection keeps it out of
	// rotation (including while its return probe is in flight).
	Ejected bool
	// EjectedUntil is, while Ejected, when it may be probed (or, while its
	// probe is in flight, when the probe times out), on the balancer's clock.
	EjectedUntil int64
	// Ejections counts its ejections since it was created.
	Ejections int64
	// Latency is the peak latency EWMA as of the last attempt (failures
	// count as at least Options.FailurePenalty); 0 before the first one.
	Latency time.Duration
	// FailureRate is the time-decayed share of failed attempts, in [0, 1].
	FailureRate float64
}

// Stats returns the endpoint's balancing state. It is safe to call at any
// time and does not allocate.
func (ep *Endpoint) Stats() Stats {
	phase, t := splitOut(ep.st.out.Load())
	s := Stats{
		InFlight:    ep.InFlight.Load(),
		Healthy:     ep.Healthy(),
		Ejected:     phase != phaseIn,
		Ejections:   ep.st.ejections.Load(),
		Latency:     time.Duration(math.Float64frombits(ep.st.latBits.Load())),
		FailureRate: math.Float64frombits(ep.st.failBits.Load()),
	}
	if s.Ejected {
		s.EjectedUntil = t
	}
	return s
}

// phase returns the endpoint's outlier phase.
func (ep *Endpoint) phase() int { return int(ep.st.out.Load() & 3) }

// failureRate returns the published failure rate.
func (ep *Endpoint) failureRate() float64 { return math.Float64frombits(ep.st.failBits.Load()) }

// latency returns the peak latency EWMA decayed to now, and whether the
// endpoint has a sample at all.
func (ep *Endpoint) latency(now, tau int64) (float64, bool) {
	if !ep.st.latSeen.Load() {
		return 0, false
	}
	v := math.Float64frombits(ep.st.latBits.Load())
	return v * ewma.Weight(now-ep.st.latStamp.Load(), tau), true
}

// Begin records the start of an attempt on ep at now (on the balancer's
// clock: Now for the real one) and counts it in InFlight. End(now) must
// follow when the attempt ends.
func (ep *Endpoint) Begin(now int64) {
	ep.InFlight.Add(1)
	ep.st.ageSum.Add(now)
	ep.st.ageN.Add(1)
}

// End records the end of the attempt that Begin(start) began.
func (ep *Endpoint) End(start int64) {
	ep.st.ageN.Add(-1)
	ep.st.ageSum.Add(-start)
	ep.InFlight.Add(-1)
}

// pendingAge returns the mean age, at now, of the attempts in flight begun
// with Begin, 0 when there are none or when a Begin or End changed them
// while it read (the count and the sum are two atomics).
func (ep *Endpoint) pendingAge(now int64) float64 {
	sum := ep.st.ageSum.Load()
	n := ep.st.ageN.Load()
	if n <= 0 || ep.st.ageSum.Load() != sum {
		return 0
	}
	return max(float64(now)-float64(sum)/float64(n), 0)
}

// weight returns the endpoint's weight, 1 when unset.
func (ep *Endpoint) weight() float64 {
	if ep.Weight <= 0 {
		return 1
	}
	return float64(ep.Weight)
}
