// Package ewma holds exponentially weighted moving averages that decay with
// elapsed time rather than with the number of samples: a sample's weight
// depends on how long ago it was taken, so a quiet minute ages the past as
// much as a busy one does.
//
// Times are monotonic nanoseconds from any fixed origin, and time constants
// (tau) are nanoseconds too: after tau a value keeps 1/e (37%) of its
// weight, after 3·tau 5%. Nothing here is safe for concurrent use; callers
// hold their own lock. The package imports nothing but the standard library.
package ewma

import "math"

// Weight returns exp(-elapsed/tau), the share of its weight a value keeps
// after elapsed nanoseconds. It is 1 for elapsed <= 0 (a clock that did not
// advance, or went backwards, ages nothing) and 0 for tau <= 0.
func Weight(elapsed, tau int64) float64 {
	if elapsed <= 0 {
		return 1
	}
	if tau <= 0 {
		return 0
	}
	return math.Exp(-float64(elapsed) / float64(tau))
}

// Peak is a peak-sensitive moving average, as in Finagle's and Linkerd's
// PeakEwma load balancers: a sample above the current value replaces it at
// once (a slowdown is believed immediately), a sample below pulls it down
// with the time-decayed weight, and reading it decays it toward zero since
// the last sample (an endpoint nobody tried for a while looks better, and so
// gets tried again). The zero value has no sample.
type Peak struct {
	value float64
	stamp int64
	seen  bool
}

// Observe adds sample x taken at now, with time constant tau.
func (p *Peak) Observe(now int64, x float64, tau int64) {
	switch {
	case !p.seen:
		p.value, p.stamp, p.seen = x, now, true
		return
	case x > p.value:
		p.value = x
	default:
		w := Weight(now-p.stamp, tau)
		p.value = p.value*w + x*(1-w)
	}
	if now > p.stamp {
		p.stamp = now
	}
}

// Value returns the average at now: the value at the last sample decayed
// toward zero by the time since, with time constant tau. It is 0 before the
// first sample.
func (p *Peak) Value(now, tau int64) float64 {
	return p.value * Weight(now-p.stamp, tau)
}

// Last returns the value as of the last sample, without decay, and the time
// of that sample. ok is false before the first sample.
func (p *Peak) Last() (value float64, stamp int64, ok bool) {
	return p.value, p.stamp, p.seen
}

// Ratio is the time-decayed share of events that were hits (failures, say):
// every event weighs exp(-age/tau), and Value divides the decayed hits by the
// decayed events plus a prior of successes, so that one early failure does
// not read as a 100% failure rate and a long-quiet ratio fades toward zero.
// Unlike a time-weighted average, a burst of events at the same instant
// counts in full. The zero value has seen nothing.
type Ratio struct {
	hits, events float64
	stamp        int64
}

// Observe records one event at now, a hit or not, with time constant tau.
func (r *Ratio) Observe(now int64, hit bool, tau int64) {
	r.decay(now, tau)
	r.events++
	if hit {
		r.hits++
	}
}

func (r *Ratio) decay(now, tau int64) {
	if now <= r.stamp {
		return
	}
	w := Weight(now-r.stamp, tau)
	r.hits *= w
	r.events *= w
	r.stamp = now
}

// Value returns hits / (events + prior) at now, with time constant tau: in
// [0, 1] for prior >= 0, and 0 before the first event.
func (r *Ratio) Value(now, tau int64, prior float64) float64 {
	w := 1.0
	if now > r.stamp {
		w = Weight(now-r.stamp, tau)
	}
	d := r.events*w + prior
	if d <= 0 {
		return 0
	}
	return r.hits * w / d
}

// Events returns the decayed number of events as of the last one.
func (r *Ratio) Events() float64 { return r.events }
