package proxy

import "time"

// rateRule bounds a body transfer in one direction. After the transfer has
// started, the next byte must move before the earliest of:
//
//   - start + grace + moved/rate: the average rate since the start must stay
//     at least rate once the grace has passed;
//   - lastProgress + grace: no single stall may last longer than the grace;
//   - the request deadline.
type rateRule struct {
	rate  int64 // bytes per second, > 0
	grace time.Duration
	hard  time.Time // request deadline
}

// next returns the deadline for the next byte, and whether it is the request
// deadline (rather than the rate) that binds.
func (r rateRule) next(start, lastProgress time.Time, moved int64) (time.Time, bool) {
	byAvg := start.Add(r.grace + time.Duration(float64(moved)/float64(r.rate)*float64(time.Second)))
	byStall := lastProgress.Add(r.grace)
	d := byAvg
	if byStall.Before(d) {
		d = byStall
	}
	if !r.hard.After(d) {
		return r.hard, true
	}
	return d, false
}
