package meter

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*want }

func TestMeterSteadyRateAndDecay(t *testing.T) {
	var m Meter
	now := int64(0)
	step := int64(100 * time.Millisecond)
	for ; now < int64(10*time.Minute); now += step {
		m.Mark(50, now) // 500 per second
	}
	r := m.Rates(now)
	if !near(r.M1, 500, 0.01) || !near(r.M5, 500, 0.01) || !near(r.M15, 500, 0.01) {
		t.Fatalf("steady 500/s: %+v", r)
	}
	if m.Count() != 50*6000 {
		t.Fatalf("count %d", m.Count())
	}
	// One quiet minute: the 1-minute rate keeps 1/e, the 5-minute e^-1/5.
	r = m.Rates(now + int64(time.Minute))
	if !near(r.M1, 500*math.Exp(-1), 0.03) || !near(r.M5, 500*math.Exp(-0.2), 0.03) || !near(r.M15, 500*math.Exp(-1.0/15), 0.03) {
		t.Fatalf("after a quiet minute: %+v", r)
	}
	// Hours later everything is gone.
	if r = m.Rates(now + int64(5*time.Hour)); r.M1 != 0 || r.M15 > 1e-6 {
		t.Fatalf("after hours: %+v", r)
	}
}

func TestMeterRampUp(t *testing.T) {
	var m Meter
	m.Mark(1, 0) // first event starts the clock
	now := int64(0)
	for now < int64(5*time.Minute) {
		now += int64(10 * time.Millisecond)
		m.Mark(1, now) // 100 per second
	}
	if r := m.Rates(now); !near(r.M1, 100, 0.01) || !near(r.M5, 100, 0.01) || !near(r.M15, 100, 0.01) {
		t.Fatalf("rates %+v", r)
	}
}

func TestWindowSlidesOut(t *testing.T) {
	w := NewWindow(6, int64(10*time.Second), 60_000_000)
	for i := int64(1); i <= 1000; i++ {
		w.Record(i, 0)
	}
	w.Record(50_000, int64(15*time.Second))
	q := w.Quantiles(int64(20 * time.Second))
	if q.Count != 1001 || q.P50 < 500 || q.P50 > 501 || q.P99 != 991 || q.Max < 49_950 || q.Max > 50_050 {
		t.Fatalf("quantiles %+v", q)
	}
	if q.P999 < 999 || q.P999 > 1001 {
		t.Fatalf("p99.9 %d", q.P999)
	}
	// 60s later the first slot is out of the window, the second not yet.
	q = w.Quantiles(int64(65 * time.Second))
	if q.Count != 1 {
		t.Fatalf("after 65s: %+v", q)
	}
	// Reusing a slot clears it.
	w.Record(7, int64(60*time.Second))
	if q = w.Quantiles(int64(60 * time.Second)); q.Count != 2 {
		t.Fatalf("after reuse: %+v", q)
	}
}

func TestHistBuckets(t *testing.T) {
	prev := uint64(0)
	for b := 0; b < HistBuckets; b++ {
		u := bucketUpper(b)
		if b > 0 && u <= prev {
			t.Fatalf("bucket %d upper %d not above %d", b, u, prev)
		}
		if got := bucketOf(u); got != b {
			t.Fatalf("bucketOf(upper(%d)=%d) = %d", b, u, got)
		}
		if got := bucketOf(u + 1); u != ^uint64(0) && got != b+1 {
			t.Fatalf("bucketOf(%d) = %d, want %d", u+1, got, b+1)
		}
		prev = u
	}
	if bucketUpper(HistBuckets-1) != ^uint64(0) {
		t.Fatalf("last bucket ends at %d", bucketUpper(HistBuckets-1))
	}
}

func TestHistQuantileWithinABucket(t *testing.T) {
	var h Hist
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]int64, 10000)
	for i := range vals {
		vals[i] = int64(r.ExpFloat64() * 1e6) // about 1ms
		h.Record(vals[i])
	}
	var s Snapshot
	h.Snapshot(&s)
	exact := exactQuantile(vals, 0.99)
	got := s.Quantile(0.99)
	if got < exact || float64(got) > float64(exact)*1.13 {
		t.Fatalf("p99 %d, exact %d: want within one bucket above", got, exact)
	}
	var base Snapshot
	h.Snapshot(&base)
	h.Record(5 * int64(time.Second))
	h.Snapshot(&s)
	s.Sub(&base)
	if s.Total != 1 || s.Quantile(0.5) < 5*int64(time.Second) {
		t.Fatalf("since base: total %d p50 %d", s.Total, s.Quantile(0.5))
	}
}

func exactQuantile(v []int64, q float64) int64 {
	c := append([]int64(nil), v...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c[int(q*float64(len(c)))-1]
}

func BenchmarkHistRecord(b *testing.B) {
	var h Hist
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.Record(int64(i))
	}
}

// TestRecentRateIsLiveWithinASecond pins why Recent exists: the admin page
// showed 0.00 req/s for the first seconds of traffic because a Meter folds
// events in only every TickInterval.
func TestRecentRateIsLiveWithinASecond(t *testing.T) {
	r := NewRecent(5)
	var m Meter
	base := int64(1000 * time.Second)
	now := base
	for ; now < base+int64(500*time.Millisecond); now += int64(10 * time.Millisecond) {
		r.Mark(1, now) // 100 per second
		m.Mark(1, now)
	}
	if got := m.Rates(now).M1; got != 0 {
		t.Fatalf("meter after half a second: %v (the reason for Recent)", got)
	}
	// Half a second in: 50 events over at least minSpan (1s).
	if got := r.Rate(now, int64(time.Second)); !near(got, 50, 0.05) {
		t.Fatalf("after 0.5s: %v/s, want 50 (divided by the 1s minimum span)", got)
	}
	for ; now < base+int64(3*time.Second); now += int64(10 * time.Millisecond) {
		r.Mark(1, now)
	}
	if got := r.Rate(now, int64(time.Second)); !near(got, 100, 0.02) {
		t.Fatalf("after 3s: %v/s, want 100", got)
	}
	// Steady for a minute: the window forgets what is older than 5s.
	for ; now < base+int64(time.Minute); now += int64(10 * time.Millisecond) {
		n := int64(1)
		if now >= base+int64(55*time.Second) {
			n = 3 // 300 per second for the last 5s
		}
		r.Mark(n, now)
	}
	if got := r.Rate(now, int64(time.Second)); !near(got, 300, 0.05) {
		t.Fatalf("after 5s at 300/s: %v/s", got)
	}
	if c, span := r.Window(now); span < int64(4*time.Second) || span > int64(5*time.Second) || c < 1200 || c > 1500 {
		t.Fatalf("window: %d events over %v", c, time.Duration(span))
	}
	// Quiet: gone within the window.
	if got := r.Rate(now+int64(6*time.Second), int64(time.Second)); got != 0 {
		t.Fatalf("6s after the traffic stopped: %v/s", got)
	}
}
