package balance

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// base is what every balancer shares: the endpoints, the options, the
// clock and randomness, which endpoints may be used (outlier ejection,
// health, the retry's exclusion), the probe of a returning endpoint, slow
// start, and Done (outlier.go). A balancer embeds it and adds its choice.
type base struct {
	eps   []*Endpoint
	o     Options
	clock func() int64
	rnd   rand.Source

	// The options in nanoseconds.
	latTau, failTau, penalty, probeInterval, slowStart int64

	ejectMu   sync.Mutex   // serializes the ejected-share check with ejections
	nextProbe atomic.Int64 // no probe is due before this; Pick scans after it
}

// init sets b up over eps with resolved options.
func (b *base) init(eps []*Endpoint, o Options) {
	b.eps, b.o, b.clock, b.rnd = eps, o, o.Clock, o.Rand
	b.latTau = int64(o.LatencyTau)
	b.failTau = int64(o.FailureTau)
	b.penalty = int64(o.FailurePenalty)
	b.probeInterval = int64(o.ProbeInterval)
	b.slowStart = int64(o.SlowStart)
	// The first Pick scans, so that endpoints ejected under a previous
	// balancer (a reload that kept them) get their probe.
	b.nextProbe.Store(math.MinInt64)
}

// Relaxations, tried in order until some endpoint is usable: first only
// endpoints in rotation, up and not excluded; then the excluded one too (a
// retry may go back where it failed rather than nowhere); then endpoints
// marked down (all are down: use them all); last anything, so that Pick
// never fails while the service has endpoints.
const (
	relaxExclude = 1 << iota
	relaxDown
	relaxOut
)

var relaxations = [...]uint8{0, relaxExclude, relaxDown, relaxDown | relaxExclude, relaxOut | relaxDown | relaxExclude}

// usable reports whether ep may be picked under the relaxation r.
func usable(ep, exclude *Endpoint, r uint8) bool {
	if ep == exclude && r&relaxExclude == 0 {
		return false
	}
	if r&relaxDown == 0 && ep.st.down.Load() {
		return false
	}
	return r&relaxOut != 0 || ep.phase() == phaseIn
}

// rescan bounds how long Pick goes without looking for due probes, so that
// an ejection it did not hear of (made by another balancer over the same
// endpoints, or lost in a race on nextProbe) delays a probe by at most this.
const rescan = int64(1e9)

// probe returns an ejected endpoint whose ejection is over, or whose probe
// timed out, after taking its single probe slot; nil when none is due. It
// costs one atomic load unless a probe is due or rescan passed.
func (b *base) probe(now int64, exclude *Endpoint) *Endpoint {
	seen := b.nextProbe.Load()
	if now < seen {
		return nil
	}
	next := now + rescan
	var got *Endpoint
	for _, ep := range b.eps {
		w := ep.st.out.Load()
		phase, t := splitOut(w)
		if phase == phaseIn {
			continue
		}
		if t <= now {
			switch {
			case got != nil:
				// Another probe is due: the next Pick takes it.
			case ep == exclude:
				t = now + 1
			case ep.st.down.Load():
				// Marked down: no probe until it is up; look again later.
				t = now + rescan
			default:
				t = now + int64(b.o.Outlier.ProbeTimeout)
				if ep.st.out.CompareAndSwap(w, outWord(phaseProbing, t)) {
					got = ep
				} else {
					t = now + 1
				}
			}
		}
		if t < next {
			next = t
		}
	}
	// Losing this race to an ejection only delays its probe until rescan.
	b.nextProbe.CompareAndSwap(seen, next)
	return got
}

// lowerNextProbe makes Pick look for probes from t on.
func (b *base) lowerNextProbe(t int64) {
	for {
		cur := b.nextProbe.Load()
		if t >= cur || b.nextProbe.CompareAndSwap(cur, t) {
			return
		}
	}
}

// minRamp is the share of its weight an endpoint gets as slow start begins.
const minRamp = 0.1

// ramp returns the share of its weight ep gets at now: from minRamp when it
// joined, linearly to 1 at the end of the slow-start window.
func (b *base) ramp(ep *Endpoint, now int64) float64 {
	if b.slowStart <= 0 || ep.Joined == 0 {
		return 1
	}
	el := now - ep.Joined
	if el >= b.slowStart {
		return 1
	}
	if el < 0 {
		el = 0
	}
	return minRamp + (1-minRamp)*float64(el)/float64(b.slowStart)
}

// intn returns a random int in [0, n), for 0 < n < 2^32.
func (b *base) intn(n int) int {
	return int((b.rnd.Uint64() >> 32) * uint64(n) >> 32)
}

// float returns a random float64 in [0, 1).
func (b *base) float() float64 {
	return float64(b.rnd.Uint64()>>11) / (1 << 53)
}
