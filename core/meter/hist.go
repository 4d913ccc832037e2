package meter

import "math/bits"

// HistBuckets is the number of buckets of a Hist: values 0 to 7 exactly,
// then 8 per power of two up to the top of the uint64 range.
const HistBuckets = 62 * 8

// Hist is a log-linear histogram of non-negative values (nanoseconds) with
// 8 buckets per power of two (within 12.5%); it takes 4 KiB. It is not safe
// for concurrent use: the owner serializes Record and Snapshot, so that
// recording several values under one lock costs plain increments, not an
// atomic add each.
type Hist struct {
	counts [HistBuckets]uint64
}

// bucketOf returns v's bucket: its power of two and the next three bits.
func bucketOf(v uint64) int {
	if v < 8 {
		return int(v)
	}
	e := bits.Len64(v) - 1 // v in [2^e, 2^(e+1))
	return e*8 + int(v>>(e-3))&7 - 16
}

// bucketUpper returns the largest value of bucket b.
func bucketUpper(b int) uint64 {
	if b < 8 {
		return uint64(b)
	}
	e := (b + 16) / 8
	m := uint64((b+16)%8) + 8 // 8..15: the top four bits
	if e == 63 && m == 15 {
		return ^uint64(0)
	}
	return (m+1)<<(e-3) - 1
}

// Record adds one value.
func (h *Hist) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(uint64(v))]++
}

// Bucket returns the bucket of Hist that v falls in (0 for v < 0), and
// BucketUpper the largest value that bucket holds: for mapping values onto
// coarser bucket layouts without a search.
func Bucket(v int64) int { return bucketOf(uint64(max(v, 0))) }

// BucketUpper returns the largest value of bucket b.
func BucketUpper(b int) uint64 { return bucketUpper(b) }

// Snapshot is a copy of a Hist's counts.
type Snapshot struct {
	Counts [HistBuckets]uint64
	Total  uint64
}

// Snapshot copies the counts.
func (h *Hist) Snapshot(s *Snapshot) {
	s.Counts = h.counts
	s.Total = 0
	for _, c := range s.Counts {
		s.Total += c
	}
}

// Sub sets s to s minus base (the values recorded since base was taken).
func (s *Snapshot) Sub(base *Snapshot) {
	s.Total = 0
	for i := range s.Counts {
		s.Counts[i] -= min(base.Counts[i], s.Counts[i])
		s.Total += s.Counts[i]
	}
}

// Quantile returns the upper bound of the bucket holding quantile q (0..1),
// or 0 for an empty snapshot.
func (s *Snapshot) Quantile(q float64) int64 {
	if s.Total == 0 {
		return 0
	}
	rank := uint64(q*float64(s.Total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range s.Counts {
		seen += c
		if seen >= rank {
			u := bucketUpper(i)
			if u > 1<<62 {
				u = 1 << 62
			}
			return int64(u)
		}
	}
	return int64(bucketUpper(HistBuckets - 1))
}
