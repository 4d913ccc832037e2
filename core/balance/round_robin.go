package balance

import "sync/atomic"

// RoundRobin hands out endpoints in turn.
type RoundRobin struct {
	eps  []*Endpoint
	next atomic.Uint64
}

var _ Balancer = (*RoundRobin)(nil)

func init() {
	Register("round_robin", func(eps []*Endpoint) Balancer { return NewRoundRobin(eps) })
}

// NewRoundRobin returns a round-robin balancer over eps.
func NewRoundRobin(eps []*Endpoint) *RoundRobin { return &RoundRobin{eps: eps} }

// Pick returns the next endpoint in turn, skipping exclude when there is another.
func (b *RoundRobin) Pick(exclude *Endpoint) *Endpoint {
	n := uint64(len(b.eps))
	if n == 0 {
		return nil
	}
	ep := b.eps[(b.next.Add(1)-1)%n]
	if ep == exclude && n > 1 {
		ep = b.eps[(b.next.Add(1)-1)%n]
	}
	return ep
}

// Done is a no-op: round robin ignores results.
func (b *RoundRobin) Done(*Endpoint, Result) {}
