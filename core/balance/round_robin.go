package balance

import "sync"

// RoundRobin is smooth weighted round robin, nginx's algorithm: each pick
// adds every usable endpoint's weight to its current score, takes the
// highest score and subtracts the total from it. Weights 5, 1, 1 give
// a a b a c a a: each endpoint gets its share, spread out rather than in
// runs. It ignores latency and failures, so a slow endpoint keeps its share;
// outlier ejection and health checks still apply.
type RoundRobin struct {
	base
	mu  sync.Mutex
	cur []int64 // current scores, by endpoint index; under mu
}

var _ Balancer = (*RoundRobin)(nil)

func init() {
	Register("round_robin", func(eps []*Endpoint, o Options) Balancer { return newRoundRobin(eps, o) })
}

// NewRoundRobin returns a smooth weighted round-robin balancer over eps.
func NewRoundRobin(eps []*Endpoint, o Options) (*RoundRobin, error) {
	if err := o.check(eps); err != nil {
		return nil, err
	}
	return newRoundRobin(eps, o.resolve()), nil
}

func newRoundRobin(eps []*Endpoint, o Options) *RoundRobin {
	b := &RoundRobin{cur: make([]int64, len(eps))}
	b.init(eps, o)
	return b
}

// rrScale turns weights into integers fine enough for slow start's ramp.
const rrScale = 1000

// Pick returns the endpoint with the highest current score among the
// usable ones.
func (b *RoundRobin) Pick(exclude *Endpoint) *Endpoint {
	if len(b.eps) == 0 {
		return nil
	}
	now := b.clock()
	if ep := b.probe(now, exclude); ep != nil {
		return ep
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range relaxations {
		best, total := -1, int64(0)
		for i, ep := range b.eps {
			if !usable(ep, exclude, r) {
				continue
			}
			w := int64(max(ep.Weight, 1)) * rrScale
			if b.slowStart > 0 && ep.Joined != 0 {
				w = int64(float64(w) * b.ramp(ep, now))
			}
			b.cur[i] += w
			total += w
			if best < 0 || b.cur[i] > b.cur[best] {
				best = i
			}
		}
		if best >= 0 {
			b.cur[best] -= total
			return b.eps[best]
		}
	}
	return nil
}
