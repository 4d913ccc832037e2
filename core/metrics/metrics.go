// Package metrics derives every number from finished requests' passports:
// Prometheus counters and histograms, the three key numbers (overhead p99.9,
// request rate, error rate) from in-process meters and a sliding-window
// HdrHistogram, the state machine's per-edge counts and times, and rings of
// recent, slowest and failed passports, and of passports on which a hook
// call failed, for the admin API. Nothing in the
// request path calls it except through the proxy.Observer interface.
package metrics

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/meter"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// Options configure Metrics.
type Options struct {
	// InFlight reports requests being served (a gauge read at scrape time).
	InFlight func() float64
	// Passports is the size of each ring of kept passports (recent,
	// slowest, failed, hook failed). Default 256.
	Passports int
	// SlowestWindow is how long a slow request stays among the slowest
	// before newer ones may replace it even when faster. Default 5m.
	SlowestWindow time.Duration
	// Now tells the time for reading the key numbers. Default time.Now.
	Now func() time.Time
}

// Metrics is the passport observer that feeds /metrics and the admin API.
//
// Observe takes one lock for everything a request adds to (its series'
// count and histograms, the overhead window, the state machine's edges):
// one lock and plain increments cost less than an atomic operation per
// number, and keep Observe's share of a request's CPU small.
type Metrics struct {
	Registry *prometheus.Registry

	index      atomic.Pointer[seriesSet] // read without a lock
	reg        registry
	durLayout  *layout
	overLayout *layout

	// Rates, counted with atomic adds outside the lock.
	now     func() time.Time
	reqs    meter.Meter
	errs    meter.Meter
	history history

	emu   sync.Mutex
	ebase []edgeBase // snapshots for windowed per-edge quantiles, oldest first

	// mu guards window and edges, and every series' counts and histograms.
	mu sync.Mutex
	// window is the overhead in µs over the last minute (the key number)
	// and since the last reset (/admin/api/overhead).
	window *meter.Window
	// live and liveErrs count requests and errors over the last few
	// seconds: the page's rate moves within a second of traffic starting,
	// where the meters' averages fold in every 5s.
	live, liveErrs *meter.Recent
	// Edges of the state machine: time from one state to the next.
	edges [int(passport.NumStates) * int(passport.NumStates)]*meter.Hist

	Recent  *Ring
	Slowest *Slowest
	Failed  *Ring
	// HookFailed keeps the requests on which a hook call failed, whatever
	// their outcome: an open failure lets the request succeed, and must not
	// crowd the failed ring.
	HookFailed *Ring
}

// New registers the gateway's metrics, the Go runtime and process collectors
// on a fresh registry, with default options. inFlight reports requests being served.
func New(inFlight func() float64) *Metrics { return NewWithOptions(Options{InFlight: inFlight}) }

// NewWithOptions is New with options.
func NewWithOptions(o Options) *Metrics {
	if o.Passports <= 0 {
		o.Passports = 256
	}
	if o.SlowestWindow <= 0 {
		o.SlowestWindow = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.InFlight == nil {
		o.InFlight = func() float64 { return 0 }
	}
	m := &Metrics{Registry: prometheus.NewRegistry(), now: o.Now,
		Recent: NewRing(o.Passports), Failed: NewRing(o.Passports), HookFailed: NewRing(o.Passports),
		Slowest: NewSlowest(o.Passports, o.SlowestWindow),
		window:  meter.NewWindow(6, int64(10*time.Second), 60_000_000),
		live:    meter.NewRecent(LiveWindow), liveErrs: meter.NewRecent(LiveWindow),
		durLayout: newLayout(durationBuckets()), overLayout: newLayout(overheadBuckets()),
	}
	m.reg.durations, m.reg.overheads = map[durationKey]*histo{}, map[string]*histo{}
	m.index.Store(&seriesSet{})
	m.Registry.MustRegister(seriesCollector{m},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gatehouse_requests_in_flight", Help: "Requests being served."}, o.InFlight),
		keyCollector{m}, edgeCollector{m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// IsError reports whether a finished request counts against the error
// rate: answered with a 5xx (the gateway's or the endpoint's), or cut short
// by the endpoint after its head was sent. Client mistakes, hook rejections
// and unknown routes are not errors of the gateway.
func IsError(r *proxy.Record) bool {
	return r.Status >= 500 || r.Outcome != failure.Success && failure.SourceOf(r.Outcome) == failure.SourceUpstream
}

// Observe records one finished request. It allocates nothing once the
// request's labels have been seen.
func (m *Metrics) Observe(r *proxy.Record) {
	se := m.seriesOf(r)
	p := r.Passport
	total, over := p.Total(), p.Overhead()
	// The request's end, on the passport's clock: no extra clock read.
	end := p.Start().Add(total).UnixNano()
	m.reqs.Mark(1, end)
	isErr := IsError(r)
	if isErr {
		m.errs.Mark(1, end)
	}

	m.mu.Lock()
	m.live.Mark(1, end)
	if isErr {
		m.liveErrs.Mark(1, end)
	}
	se.requests++
	se.duration.record(int64(total))
	se.overhead.record(int64(over))
	m.window.Record(max(over.Microseconds(), 1), end)
	m.observeEdges(p)
	m.mu.Unlock()

	m.Recent.Add(r)
	if r.Outcome != failure.Success {
		m.Failed.Add(r)
	}
	if r.HookFailureCount > 0 {
		m.HookFailed.Add(r)
	}
	m.Slowest.Add(r)
}

// observeEdges records the time of every transition in p, under m.mu.
// Events inside a state (hook enter/exit, the upload's end) do not cut
// transitions.
func (m *Metrics) observeEdges(p *passport.Passport) {
	prev := passport.Invalid
	var at time.Duration
	for i, n := 0, p.Len(); i < n; i++ {
		st := p.At(i)
		switch st.State {
		case passport.HookEnter, passport.HookExit, passport.ReqBodySent:
			continue
		}
		if prev != passport.Invalid && st.State < passport.NumStates {
			e := &m.edges[int(prev)*int(passport.NumStates)+int(st.State)]
			if *e == nil {
				*e = new(meter.Hist)
			}
			(*e).Record(int64(st.Offset - at))
		}
		prev, at = st.State, st.Offset
	}
}

// edgeSnapshot copies edge i's histogram into s, reporting false when no
// request took the edge yet.
func (m *Metrics) edgeSnapshot(i int, s *meter.Snapshot) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h := m.edges[i]; h != nil {
		h.Snapshot(s)
		return true
	}
	return false
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
	m.mu.Lock()
	q := m.window.SinceReset(reset)
	m.mu.Unlock()
	return OverheadSnapshot{Count: q.Count, P50: q.P50, P90: q.P90, P99: q.P99, P999: q.P999, Max: q.Max}
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
