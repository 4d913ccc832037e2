package balance

import "math"

// failPrior is the number of successes the failure rate starts from, so
// that one early failure reads as 50%, not 100%.
const failPrior = 1

// Done records the result of an attempt on ep: its latency and failure
// averages, and the outlier verdict. Every balancer embeds it.
func (b *base) Done(ep *Endpoint, r Result) {
	if ep == nil {
		return
	}
	now := b.clock()
	s := &ep.st
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Canceled {
		// No verdict: a probe that was in flight goes back, due at once.
		if phase, _ := splitOut(s.out.Load()); phase == phaseProbing {
			s.out.Store(outWord(phaseEjected, now))
			b.lowerNextProbe(now)
		}
		return
	}
	lat := float64(r.LatencyNanos)
	if lat < 0 {
		lat = 0
	}
	if r.Failed && lat < float64(b.penalty) {
		lat = float64(b.penalty)
	}
	s.lat.Observe(now, lat, b.latTau)
	v, stamp, _ := s.lat.Last()
	s.latBits.Store(math.Float64bits(v))
	s.latStamp.Store(stamp)
	s.latSeen.Store(true)
	s.fail.Observe(now, r.Failed, b.failTau)
	s.failBits.Store(math.Float64bits(s.fail.Value(now, b.failTau, failPrior)))
	if b.o.Outlier.Enabled {
		b.judge(ep, now, r.Failed)
	}
}

// judge applies the outlier rules to one attempt's result. Called under
// ep.st.mu.
func (b *base) judge(ep *Endpoint, now int64, failed bool) {
	s := &ep.st
	oo := &b.o.Outlier
	switch phase, _ := splitOut(s.out.Load()); phase {
	case phaseEjected:
		return // an attempt begun before the ejection
	case phaseProbing:
		// Any result while probing is taken as the probe's: an attempt
		// begun before the ejection is long over by then.
		if failed {
			b.eject(ep, now, true)
			return
		}
		s.out.Store(outWord(phaseIn, 0))
		s.readmitted = now
		s.consecutive = 0
		s.cur, s.prev = window{}, window{}
		return
	}
	if w := int64(oo.Window); now-s.winStart >= w {
		if now-s.winStart < 2*w {
			s.prev = s.cur
		} else {
			s.prev = window{}
		}
		s.cur = window{}
		s.winStart = now
	}
	s.cur.attempts++
	if !failed {
		s.consecutive = 0
		return
	}
	s.cur.failures++
	s.consecutive++
	trip := oo.ConsecutiveFailures > 0 && s.consecutive >= oo.ConsecutiveFailures
	if !trip && oo.MinSuccessRate > 0 {
		n := s.cur.attempts + s.prev.attempts
		f := s.cur.failures + s.prev.failures
		trip = n >= oo.MinRequests && float64(n-f) < oo.MinSuccessRate*float64(n)
	}
	if trip {
		b.eject(ep, now, false)
	}
}

// eject takes ep out of rotation, unless that would eject more than the
// allowed share of the service (again is false: ep is in rotation) —
// then ep stays in and the next failure tries again. again is true when
// a probe failed: ep is counted as ejected already. Called under ep.st.mu.
func (b *base) eject(ep *Endpoint, now int64, again bool) {
	s := &ep.st
	oo := &b.o.Outlier
	if !again {
		b.ejectMu.Lock()
		defer b.ejectMu.Unlock()
		if !b.mayEject() {
			return
		}
		// One step of backoff is forgiven per BaseEjection spent in rotation.
		if s.readmitted != 0 && s.level > 0 {
			s.level -= int(min((now-s.readmitted)/int64(oo.BaseEjection), int64(s.level)))
		}
	}
	d := int64(oo.BaseEjection)
	for i := 0; i < s.level && d < int64(oo.MaxEjection); i++ {
		d *= 2
	}
	d = min(d, int64(oo.MaxEjection))
	d -= int64(float64(d) * oo.Jitter * b.float())
	until := now + d
	s.out.Store(outWord(phaseEjected, until))
	if s.level < 62 {
		s.level++
	}
	s.ejections.Add(1)
	s.consecutive = 0
	s.cur, s.prev = window{}, window{}
	b.lowerNextProbe(until)
}

// mayEject reports whether one more endpoint may be ejected: fewer than
// floor(MaxEjectedShare × n) of them are out, and one would stay. Called
// under b.ejectMu.
func (b *base) mayEject() bool {
	n := len(b.eps)
	// The epsilon keeps 0.3 × 10 from flooring to 2.
	allowed := min(int(b.o.Outlier.MaxEjectedShare*float64(n)+1e-9), n-1)
	out := 0
	for _, ep := range b.eps {
		if ep.phase() != phaseIn {
			out++
		}
	}
	return out < allowed
}
