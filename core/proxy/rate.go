package proxy

import "time"

// rateRule bounds a body transfer in one direction by the peer's own pace:
// only the time spent blocked on that peer counts (waiting for the other
// side, say a slow endpoint while streaming to the client, is not the
// client's fault). With moved bytes moved and waited spent blocked so far,
// the next read or write may block until the earliest of:
//
//   - waited reaching grace + moved/rate: on average the peer must keep up
//     at least rate once the grace is used;
//   - grace more: no single stall may last longer than the grace;
//   - the request deadline.
type rateRule struct {
	rate  int64 // bytes per second, > 0
	grace time.Duration
	hard  time.Time // request deadline
}

// next returns the deadline of an operation starting at now, and whether it
// is the request deadline (rather than the rate) that binds.
func (r rateRule) next(now time.Time, moved int64, waited time.Duration) (time.Time, bool) {
	budget := r.grace + time.Duration(float64(moved)/float64(r.rate)*float64(time.Second)) - waited
	d := now.Add(min(max(budget, 0), r.grace))
	if !r.hard.After(d) {
		return r.hard, true
	}
	return d, false
}
