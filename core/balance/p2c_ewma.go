package balance

import (
	"math"
	"sync/atomic"
)

// P2CEWMA is power of two random choices on peak-EWMA latency, as in
// Finagle and Linkerd: it draws two usable endpoints at random and takes the
// one with the lower cost = latency EWMA × (in flight + 1) / (weight ×
// slow-start ramp). The latency average jumps up at once on a slow answer
// and decays toward zero while an endpoint is not tried, so a slow endpoint
// is shunned but tried again now and then; a failure counts as at least
// Options.FailurePenalty of latency, so an endpoint failing fast is shunned
// too. An endpoint with no sample yet (one that just joined) is taken to be
// as slow as the slowest sampled endpoint (Options.FailurePenalty when none
// has a sample): it is not flooded for looking idle, yet it still wins
// draws against busier or equally slow endpoints, so it gets the requests
// that give it a sample. An endpoint's latency is at least the
// mean age of its attempts in flight, so one that stalls is shunned
// before its first slow answer arrives. The random draws keep concurrent
// gateways from herding onto the same best endpoint; only when every
// endpoint drawn is far slower than the typical pick does it look further
// (secondLook), so that while two of five endpoints are slow one request in
// ten is not sent to one of them.
type P2CEWMA struct {
	base
	choices int
	// typical is a moving average of the latency of the endpoints picked
	// (float64 bits): most picks go to healthy endpoints, so it follows
	// their latency. A pick whose winner is far slower than it (every
	// endpoint drawn was slow: with k of n endpoints slow, k(k−1)/n(n−1)
	// of the draws) takes a second look (see secondLook).
	typical atomic.Uint64
}

var _ Balancer = (*P2CEWMA)(nil)

func init() {
	Register("p2c_ewma", func(eps []*Endpoint, o Options) Balancer { return newP2CEWMA(eps, o) })
}

// NewP2CEWMA returns a power-of-two-choices peak-EWMA balancer over eps.
func NewP2CEWMA(eps []*Endpoint, o Options) (*P2CEWMA, error) {
	if err := o.check(eps); err != nil {
		return nil, err
	}
	return newP2CEWMA(eps, o.resolve()), nil
}

func newP2CEWMA(eps []*Endpoint, o Options) *P2CEWMA {
	b := &P2CEWMA{choices: o.Choices}
	if b.choices == 0 {
		b.choices = 2
	}
	b.init(eps, o)
	return b
}

// drawTries is how many random draws per choice Pick makes before it
// samples among the usable endpoints exactly.
const drawTries = 4

// MaxChoices bounds Options.Choices.
const MaxChoices = 8

// Pick returns the cheapest of Options.Choices (default two) distinct random
// usable endpoints.
func (b *P2CEWMA) Pick(exclude *Endpoint) *Endpoint {
	n := len(b.eps)
	if n == 0 {
		return nil
	}
	now := b.clock()
	if ep := b.probe(now, exclude); ep != nil {
		return ep
	}
	if n == 1 {
		return b.eps[0]
	}
	for _, r := range relaxations {
		if ep := b.cheapest(exclude, r, now); ep != nil {
			return ep
		}
	}
	return nil
}

// Second look: when the winner of a draw is slowFactor times slower than
// the typical pick (and slower by at least slowMargin), every endpoint drawn
// was in trouble. With at most fullScanMax endpoints the pick then compares
// them all; with more, it draws again, up to redraws times. Without it,
// while two of five endpoints are slow one pick in ten goes to a slow one,
// which is the whole p99.9 (see bench/results/slow_node.md).
const (
	slowFactor  = 4
	slowMargin  = 1e6 // ns
	fullScanMax = 16
	redraws     = 3
	// typicalWeight is the weight of each pick in the typical latency.
	typicalWeight = 1.0 / 32
)

// cheapest draws min(choices, usable) distinct random endpoints usable
// under r and returns the cheapest (the first drawn on a tie), or nil when
// none is usable.
func (b *P2CEWMA) cheapest(exclude *Endpoint, r uint8, now int64) *Endpoint {
	var unsampled = -1.0 // the latency of endpoints with no sample, once needed
	best, bestCost, bestLat := b.draw(exclude, r, now, &unsampled)
	if best == nil {
		return nil
	}
	typical := math.Float64frombits(b.typical.Load())
	if typical > 0 && bestLat > slowFactor*typical && bestLat > typical+slowMargin {
		best, bestLat = b.secondLook(best, bestCost, bestLat, exclude, r, now, &unsampled)
	}
	// A racy read-modify-write: a lost update only slows the average.
	if typical == 0 {
		typical = bestLat
	} else {
		typical += (bestLat - typical) * typicalWeight
	}
	b.typical.Store(math.Float64bits(typical))
	return best
}

// secondLook compares every usable endpoint (few of them) or draws again
// (many), and returns the cheapest found with its latency.
func (b *P2CEWMA) secondLook(best *Endpoint, bestCost, bestLat float64, exclude *Endpoint, r uint8, now int64, unsampled *float64) (*Endpoint, float64) {
	if len(b.eps) <= fullScanMax {
		for _, ep := range b.eps {
			if !usable(ep, exclude, r) {
				continue
			}
			if c, lat := b.cost(ep, now, unsampled); c < bestCost {
				best, bestCost, bestLat = ep, c, lat
			}
		}
		return best, bestLat
	}
	for range redraws {
		ep, c, lat := b.draw(exclude, r, now, unsampled)
		if ep != nil && c < bestCost {
			best, bestCost, bestLat = ep, c, lat
		}
		if bestLat <= slowFactor*math.Float64frombits(b.typical.Load()) {
			break
		}
	}
	return best, bestLat
}

// draw draws min(choices, usable) distinct random endpoints usable under r
// and returns the cheapest (the first drawn on a tie) with its cost and
// latency, or nil when none is usable.
func (b *P2CEWMA) draw(exclude *Endpoint, r uint8, now int64, unsampled *float64) (*Endpoint, float64, float64) {
	n := len(b.eps)
	d := min(b.choices, n)
	var drawn [MaxChoices]int
	var best *Endpoint
	var bestCost, bestLat float64
	consider := func(ep *Endpoint) {
		if c, lat := b.cost(ep, now, unsampled); best == nil || c < bestCost {
			best, bestCost, bestLat = ep, c, lat
		}
	}
	// Rejection sampling: uniform, and cheap when most endpoints are usable.
	got := 0
draw:
	for try := 0; try < drawTries*d && got < d; try++ {
		i := b.intn(n)
		for _, k := range drawn[:got] {
			if k == i {
				continue draw
			}
		}
		if ep := b.eps[i]; usable(ep, exclude, r) {
			drawn[got] = i
			got++
			consider(ep)
		}
	}
	if got == d {
		return best, bestCost, bestLat
	}
	// Most endpoints are unusable: reservoir-sample d of the usable ones.
	var res [MaxChoices]*Endpoint
	k := 0
	for _, ep := range b.eps {
		if !usable(ep, exclude, r) {
			continue
		}
		if k < d {
			res[k] = ep
		} else if j := b.intn(k + 1); j < d {
			res[j] = ep
		}
		k++
	}
	best = nil
	for _, ep := range res[:min(k, d)] {
		consider(ep)
	}
	return best, bestCost, bestLat
}

// cost is ep's expected load: latency × (in flight + 1), scaled down by
// weight and slow-start ramp. The latency is the larger of the EWMA and
// the mean age of the attempts in flight: an endpoint that has just turned
// slow looks slow as soon as its attempts outlast its average, before the
// first slow answer reaches the EWMA. An endpoint with no sample takes
// unsampledLatency, computed once per pick into *unsampled (negative until
// then).
func (b *P2CEWMA) cost(ep *Endpoint, now int64, unsampled *float64) (cost, latency float64) {
	inFlight := float64(max(ep.InFlight.Load(), 0))
	lat, ok := ep.latency(now, b.latTau)
	if !ok {
		if *unsampled < 0 {
			*unsampled = b.unsampledLatency(now)
		}
		lat = *unsampled
	}
	lat = max(lat, ep.pendingAge(now))
	return lat * (inFlight + 1) / (ep.weight() * b.ramp(ep, now)), lat
}

// unsampledLatency is the latency assumed for an endpoint with no sample:
// the highest peak-EWMA of the sampled endpoints, decayed to now, or
// Options.FailurePenalty when none has a sample. It scans the endpoints,
// which only picks that drew an unsampled endpoint pay.
func (b *P2CEWMA) unsampledLatency(now int64) float64 {
	worst, seen := 0.0, false
	for _, ep := range b.eps {
		if lat, ok := ep.latency(now, b.latTau); ok {
			worst, seen = max(worst, lat), true
		}
	}
	if !seen {
		return float64(b.penalty)
	}
	return worst
}
