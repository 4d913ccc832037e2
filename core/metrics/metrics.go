// Package metrics derives every number from finished requests' passports:
// Prometheus counters and histograms, an HdrHistogram of overhead for the
// key numbers, and a ring of recent passports for the admin API. Nothing in
// the request path calls it except through the proxy.Observer interface.
package metrics

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// Metrics is the passport observer that feeds /metrics and the admin API.
type Metrics struct {
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	overhead *prometheus.HistogramVec

	cache sync.Map // counterKey → *series

	hmu sync.Mutex
	hdr *hdrhistogram.Histogram // overhead in microseconds since the last reset

	Recent *Ring
}

type counterKey struct {
	listener, route, service string
	outcome                  failure.Kind
	code                     int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
	overhead prometheus.Observer
}

// durationBuckets go from 50µs to about 100s, 16 per decade.
func durationBuckets() []float64 { return prometheus.ExponentialBucketsRange(50e-6, 100, 16*6+4) }

// overheadBuckets go from 1µs to 100ms, 16 per decade.
func overheadBuckets() []float64 { return prometheus.ExponentialBucketsRange(1e-6, 0.1, 16*5+1) }

// New registers the gateway's metrics, the Go runtime and process collectors
// on a fresh registry. inFlight reports requests being served.
func New(inFlight func() float64) *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry(), Recent: NewRing(256)}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gatehouse_requests_total", Help: "Finished requests by listener, route, service, outcome and status code.",
	}, []string{"listener", "route", "service", "outcome", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_request_duration_seconds", Help: "Total time of a request, from its first byte to its end.",
		Buckets: durationBuckets(), NativeHistogramBucketFactor: 1.05,
	}, []string{"route", "outcome"})
	m.overhead = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "gatehouse_overhead_seconds", Help: "Time the gateway added to a request: total minus waiting on the client, the endpoint and external hooks.",
		Buckets: overheadBuckets(), NativeHistogramBucketFactor: 1.05,
	}, []string{"route"})
	m.hdr = hdrhistogram.New(1, 60_000_000, 3)
	m.Registry.MustRegister(m.requests, m.duration, m.overhead,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_requests_in_flight", Help: "Requests being served."}, inFlight),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe records one finished request.
func (m *Metrics) Observe(r *proxy.Record) {
	k := counterKey{listener: r.Listener, route: r.Route, service: r.Service, outcome: r.Outcome, code: r.Status}
	s, ok := m.cache.Load(k)
	if !ok {
		code := itoa(r.Status)
		route := r.Route
		if route == "" {
			route = "-"
		}
		s, _ = m.cache.LoadOrStore(k, &series{
			requests: m.requests.WithLabelValues(r.Listener, route, orDash(r.Service), r.Outcome.String(), code),
			duration: m.duration.WithLabelValues(route, r.Outcome.String()),
			overhead: m.overhead.WithLabelValues(route),
		})
	}
	se := s.(*series)
	p := r.Passport
	total, over := p.Total(), p.Overhead()
	se.requests.Inc()
	se.duration.Observe(total.Seconds())
	se.overhead.Observe(over.Seconds())
	m.hmu.Lock()
	m.hdr.RecordValue(max(over.Microseconds(), 1))
	m.hmu.Unlock()
	m.Recent.Add(r)
}

// OverheadSnapshot is the overhead distribution since the last reset, in µs.
type OverheadSnapshot struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50_us"`
	P90   int64 `json:"p90_us"`
	P99   int64 `json:"p99_us"`
	P999  int64 `json:"p999_us"`
	Max   int64 `json:"max_us"`
}

// Overhead returns the overhead distribution, and with reset starts a new one.
func (m *Metrics) Overhead(reset bool) OverheadSnapshot {
	m.hmu.Lock()
	defer m.hmu.Unlock()
	h := m.hdr
	s := OverheadSnapshot{Count: h.TotalCount(), P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90),
		P99: h.ValueAtQuantile(99), P999: h.ValueAtQuantile(99.9), Max: h.Max()}
	if reset {
		h.Reset()
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [8]byte
	i := len(b)
	for n > 0 && i > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// Entry is a kept copy of a finished request.
type Entry struct {
	ID, Route, Service, Endpoint, Method, Path, Outcome, Err string
	Status                                                   int
	Start                                                    time.Time
	Total, Overhead                                          time.Duration
	stamps                                                   [passport.Capacity]passport.Stamp
	n                                                        int
}

// Passport returns the entry's passport in text form.
func (e *Entry) Passport() string {
	var b []byte
	for i := 0; i < e.n; i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = passport.AppendStamp(b, e.stamps[i])
	}
	return string(b)
}

// Ring keeps the most recent requests in preallocated slots: adding one
// copies its stamps and allocates nothing.
type Ring struct {
	mu    sync.Mutex
	slots []Entry
	next  int
	count int
}

// NewRing returns a ring of n entries.
func NewRing(n int) *Ring { return &Ring{slots: make([]Entry, n)} }

// Add copies r into the ring.
func (g *Ring) Add(r *proxy.Record) {
	p := r.Passport
	g.mu.Lock()
	e := &g.slots[g.next]
	g.next = (g.next + 1) % len(g.slots)
	g.count = min(g.count+1, len(g.slots))
	e.ID, e.Route, e.Service, e.Endpoint, e.Method, e.Path, e.Err = r.ID, r.Route, r.Service, r.Endpoint, r.Method, r.Path, r.Err
	e.Outcome, e.Status = r.Outcome.String(), r.Status
	e.Start, e.Total, e.Overhead = p.Start(), p.Total(), p.Overhead()
	e.n = min(p.Len(), passport.Capacity)
	for i := 0; i < e.n; i++ {
		e.stamps[i] = p.At(i)
	}
	g.mu.Unlock()
}

// Snapshot returns copies of the kept entries, newest first.
func (g *Ring) Snapshot() []Entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]Entry, 0, g.count)
	for i := 1; i <= g.count; i++ {
		out = append(out, g.slots[(g.next-i+len(g.slots))%len(g.slots)])
	}
	return out
}
