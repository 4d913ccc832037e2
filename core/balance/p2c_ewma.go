package balance

// P2CEWMA is power of two random choices on peak-EWMA latency, as in
// Finagle and Linkerd: it draws two usable endpoints at random and takes the
// one with the lower cost = latency EWMA × (in flight + 1) / (weight ×
// slow-start ramp). The latency average jumps up at once on a slow answer
// and decays toward zero while an endpoint is not tried, so a slow endpoint
// is shunned but tried again now and then; a failure counts as at least
// Options.FailurePenalty of latency, so an endpoint failing fast is shunned
// too. An endpoint with no sample yet costs nothing while idle (it gets a
// first request at once) and a penalty while that request is in flight (it
// gets no more before it answers). The random draws keep concurrent
// gateways from herding onto the same best endpoint.
type P2CEWMA struct {
	base
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
	b := &P2CEWMA{}
	b.init(eps, o)
	return b
}

// unsampledPenalty is the cost of an endpoint with no latency sample and
// a request in flight: more than any measured cost (about 18 minutes ×
// requests in flight).
const unsampledPenalty = float64(1 << 40)

// drawTries is how many random pairs Pick draws before it counts the
// usable endpoints to draw among them exactly.
const drawTries = 4

// Pick returns the cheaper of two random usable endpoints.
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
		x, y := b.draw(exclude, r)
		switch {
		case x == nil:
			continue
		case y == nil:
			return x
		case b.cost(y, now) < b.cost(x, now):
			return y
		default:
			return x
		}
	}
	return nil
}

// draw returns two distinct random endpoints usable under r, one if only
// one is, none if none is.
func (b *P2CEWMA) draw(exclude *Endpoint, r uint8) (x, y *Endpoint) {
	n := len(b.eps)
	// Rejection sampling: uniform over usable pairs, and cheap when most
	// endpoints are usable.
	for try := 0; try < drawTries; try++ {
		i, j := b.intn(n), b.intn(n-1)
		if j >= i {
			j++
		}
		if x, y = b.eps[i], b.eps[j]; usable(x, exclude, r) && usable(y, exclude, r) {
			return x, y
		}
	}
	count := 0
	for _, ep := range b.eps {
		if usable(ep, exclude, r) {
			count++
		}
	}
	if count == 0 {
		return nil, nil
	}
	i, j := b.intn(count), -1
	if count > 1 {
		if j = b.intn(count - 1); j >= i {
			j++
		}
	}
	x, y = nil, nil
	k := 0
	for _, ep := range b.eps {
		if !usable(ep, exclude, r) {
			continue
		}
		switch k {
		case i:
			x = ep
		case j:
			y = ep
		}
		k++
	}
	return x, y
}

// cost is ep's expected load: latency × (in flight + 1), scaled down by
// weight and slow-start ramp.
func (b *P2CEWMA) cost(ep *Endpoint, now int64) float64 {
	inFlight := float64(max(ep.InFlight.Load(), 0))
	lat, ok := ep.latency(now, b.latTau)
	if !ok {
		if inFlight == 0 {
			return 0
		}
		return unsampledPenalty + inFlight
	}
	return lat * (inFlight + 1) / (ep.weight() * b.ramp(ep, now))
}
