package meter

// Recent counts events over a short sliding window of one-second slots, for
// a rate that moves within a second of traffic starting or stopping (the
// Meter's averages fold in every TickInterval and take minutes to settle).
// It is not safe for concurrent use: the owner serializes calls, as for
// Window.
type Recent struct {
	counts []int64
	epochs []int64 // the second each slot counts, -1 if none
	first  int64   // time of the first event; 0 before it
}

// RecentSlot is the width of a Recent's slots.
const RecentSlot int64 = 1e9

// NewRecent returns a window of n one-second slots (at least 2).
func NewRecent(n int) *Recent {
	n = max(n, 2)
	r := &Recent{counts: make([]int64, n), epochs: make([]int64, n)}
	for i := range r.epochs {
		r.epochs[i] = -1
	}
	return r
}

// Mark records k events at now.
func (r *Recent) Mark(k, now int64) {
	e := now / RecentSlot
	i := int(e % int64(len(r.counts)))
	if r.epochs[i] != e {
		r.counts[i], r.epochs[i] = 0, e
	}
	r.counts[i] += k
	if r.first == 0 || now < r.first {
		r.first = now
	}
}

// Window returns the events of the window ending at now, and the time it
// covers in nanoseconds: the current second so far and the n-1 before it,
// or less when the first event came later than the window's start.
func (r *Recent) Window(now int64) (count, span int64) {
	e := now / RecentSlot
	n := int64(len(r.counts))
	for i, ep := range r.epochs {
		// The next second too: an event's time may run a little ahead of
		// the reader's clock.
		if ep > e-n && ep <= e+1 {
			count += r.counts[i]
		}
	}
	start := max((e-n+1)*RecentSlot, r.first)
	return count, now - start
}

// Rate returns the events per second over the window ending at now (see
// Window). While the window covers less than minSpan nanoseconds (the
// first events), it divides by minSpan, so that a single event does not
// read as a burst.
func (r *Recent) Rate(now, minSpan int64) float64 {
	c, span := r.Window(now)
	if c == 0 {
		return 0
	}
	return float64(c) / (float64(max(span, minSpan)) / 1e9)
}
