package metrics

import (
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/meter"
	"github.com/gatehouse/gatehouse/core/proxy"
)

// The per-request Prometheus series are kept here rather than in the
// client library's vectors: a request finds its series with one lookup in
// a read-only map, and records its count and histograms with plain
// increments under the lock Observe takes once for everything. They are
// turned into Prometheus metrics only when scraped.

var (
	requestsDesc = prometheus.NewDesc("gatehouse_requests_total", "Finished requests by listener, route, service, outcome and status code.",
		[]string{"listener", "route", "service", "outcome", "code"}, nil)
	durationDesc = prometheus.NewDesc("gatehouse_request_duration_seconds", "Total time of a request, from its first byte to its end.",
		[]string{"route", "outcome"}, nil)
	overheadDesc = prometheus.NewDesc("gatehouse_overhead_seconds", "Time the gateway added to a request: total minus waiting on the client, the endpoint and external hooks.",
		[]string{"route"}, nil)
)

// durationBuckets go from 50µs to about 100s, 16 per decade.
func durationBuckets() []float64 { return prometheus.ExponentialBucketsRange(50e-6, 100, 16*6+4) }

// overheadBuckets go from 1µs to 100ms, 16 per decade.
func overheadBuckets() []float64 { return prometheus.ExponentialBucketsRange(1e-6, 0.1, 16*5+1) }

// layout is a histogram's bucket bounds with a table that finds a value's
// bucket without a search: the value's meter.Hist bucket (a few bit
// operations) gives the first bound that can hold it, and since those
// buckets are narrower (12.5%) than these (16 per decade, 15.5%), at most
// one step more finds the bound.
type layout struct {
	bounds []float64 // upper bounds in seconds, +Inf implied
	ns     []int64   // the same in ns: v is in bucket i when ns[i-1] < v <= ns[i]
	first  [meter.HistBuckets]uint16
}

func newLayout(bounds []float64) *layout {
	l := &layout{bounds: bounds, ns: make([]int64, len(bounds))}
	for i, b := range bounds {
		l.ns[i] = int64(math.Floor(b * 1e9))
	}
	i := 0
	for b := range l.first {
		var low int64 // the lowest value of Hist bucket b
		if b > 0 {
			low = int64(min(meter.BucketUpper(b-1), math.MaxInt64-1) + 1)
		}
		for i < len(l.ns) && l.ns[i] < low {
			i++
		}
		l.first[b] = uint16(i)
	}
	return l
}

// index returns the bucket of v (ns); len(bounds) is +Inf.
func (l *layout) index(v int64) int {
	i := int(l.first[meter.Bucket(v)])
	for i < len(l.ns) && v > l.ns[i] {
		i++
	}
	return i
}

// histo is one labelled histogram, written under Metrics.mu.
type histo struct {
	l      *layout
	desc   *prometheus.Desc
	labels []string
	counts []uint64 // per bucket, the last one +Inf
	sum    int64    // ns
}

func newHisto(l *layout, desc *prometheus.Desc, labels ...string) *histo {
	return &histo{l: l, desc: desc, labels: labels, counts: make([]uint64, len(l.bounds)+1)}
}

func (h *histo) record(d int64) {
	h.counts[h.l.index(d)]++
	h.sum += d
}

// series is one combination of request labels; its histograms are shared
// with the other series of the same route (and outcome).
type series struct {
	labels   []string
	requests uint64
	duration *histo
	overhead *histo
}

type counterKey struct {
	listener, route, service string
	outcome                  failure.Kind
	code                     int
}

type durationKey struct {
	route   string
	outcome failure.Kind
}

// seriesSet is the lookup side: replaced, never changed, when a new
// combination of labels appears, so that readers take no lock.
type seriesSet map[counterKey]*series

// registry creates series; it owns every histogram for scraping.
type registry struct {
	mu        sync.Mutex // serializes creation
	durations map[durationKey]*histo
	overheads map[string]*histo
	series    []*series
	hists     []*histo
}

// seriesOf returns r's series, creating it the first time its labels appear.
func (m *Metrics) seriesOf(r *proxy.Record) *series {
	// The key holds the label values as exported, so that two keys never
	// make the same series.
	k := counterKey{listener: r.Listener, route: orDash(r.Route), service: orDash(r.Service), outcome: r.Outcome, code: r.Status}
	if se := (*m.index.Load())[k]; se != nil {
		return se
	}
	g := &m.reg
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := *m.index.Load()
	if se := cur[k]; se != nil {
		return se
	}
	route, outcome := k.route, r.Outcome.String()
	dk := durationKey{route: route, outcome: r.Outcome}
	if g.durations[dk] == nil {
		h := newHisto(m.durLayout, durationDesc, route, outcome)
		g.durations[dk] = h
		g.hists = append(g.hists, h)
	}
	if g.overheads[route] == nil {
		h := newHisto(m.overLayout, overheadDesc, route)
		g.overheads[route] = h
		g.hists = append(g.hists, h)
	}
	se := &series{labels: []string{k.listener, route, k.service, outcome, itoa(k.code)},
		duration: g.durations[dk], overhead: g.overheads[route]}
	g.series = append(g.series, se)
	next := make(seriesSet, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	next[k] = se
	m.index.Store(&next)
	return se
}

// seriesCollector exports the request series.
type seriesCollector struct{ m *Metrics }

func (c seriesCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- durationDesc
	ch <- overheadDesc
}

func (c seriesCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	m.reg.mu.Lock()
	series, hists := m.reg.series, m.reg.hists // append-only: the prefix is stable
	m.reg.mu.Unlock()
	for _, se := range series {
		m.mu.Lock()
		n := se.requests
		m.mu.Unlock()
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), se.labels...)
	}
	var counts []uint64
	for _, h := range hists {
		m.mu.Lock()
		counts = append(counts[:0], h.counts...)
		sum := h.sum
		m.mu.Unlock()
		buckets := make(map[float64]uint64, len(h.l.bounds))
		var cum uint64
		for i, b := range h.l.bounds {
			cum += counts[i]
			buckets[b] = cum
		}
		cum += counts[len(counts)-1]
		ch <- prometheus.MustNewConstHistogram(h.desc, cum, float64(sum)/1e9, buckets, h.labels...)
	}
}
