package balance

import "math"

// LeastInFlight picks the endpoint with the fewest attempts in flight,
// weighed by its failure rate: score = (in flight + 1) / (1 - failure
// rate)² / (weight × slow-start ramp), lowest wins, ties at random. It
// routes around slow endpoints (their requests pile up), and the failure
// rate keeps an endpoint that fails fast — so never has anything in flight
// — from attracting the traffic. So that a recovered endpoint is noticed,
// one with nothing in flight that was not picked for ProbeInterval gets the
// next request whatever its score.
type LeastInFlight struct {
	base
}

var _ Balancer = (*LeastInFlight)(nil)

func init() {
	Register("least_in_flight", func(eps []*Endpoint, o Options) Balancer { return newLeastInFlight(eps, o) })
}

// NewLeastInFlight returns a least-in-flight balancer over eps.
func NewLeastInFlight(eps []*Endpoint, o Options) (*LeastInFlight, error) {
	if err := o.check(eps); err != nil {
		return nil, err
	}
	return newLeastInFlight(eps, o.resolve()), nil
}

func newLeastInFlight(eps []*Endpoint, o Options) *LeastInFlight {
	b := &LeastInFlight{}
	b.init(eps, o)
	return b
}

// maxFailureRate caps the failure rate in the score, which makes an
// endpoint that always fails count as 10⁴ requests in flight.
const maxFailureRate = 0.99

// Pick returns the usable endpoint with the lowest score, or one due for
// its periodic request.
func (b *LeastInFlight) Pick(exclude *Endpoint) *Endpoint {
	if len(b.eps) == 0 {
		return nil
	}
	now := b.clock()
	if ep := b.probe(now, exclude); ep != nil {
		return ep
	}
	// Ties are broken by reservoir sampling, each tied endpoint ending up
	// chosen with the same probability, on a xorshift generator seeded once
	// per pick: an idle service ties everywhere.
	x := b.rnd.Uint64() | 1
	for _, r := range relaxations {
		var best *Endpoint
		bestScore, ties := math.Inf(1), uint64(0)
		for _, ep := range b.eps {
			if !usable(ep, exclude, r) {
				continue
			}
			inFlight := ep.InFlight.Load()
			if inFlight <= 0 {
				if last := ep.st.lastPick.Load(); now-last >= b.probeInterval && ep.st.lastPick.CompareAndSwap(last, now) {
					return ep
				}
				inFlight = 0
			}
			ok := 1 - min(ep.failureRate(), maxFailureRate)
			score := float64(inFlight+1) / (ok * ok * ep.weight() * b.ramp(ep, now))
			switch {
			case score < bestScore:
				best, bestScore, ties = ep, score, 1
			case score == bestScore:
				ties++
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				if (x>>32)*ties>>32 == 0 {
					best = ep
				}
			}
		}
		if best != nil {
			best.st.lastPick.Store(now)
			return best
		}
	}
	return nil
}
