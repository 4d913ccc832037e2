package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/core/meter"
)

// Key is the three numbers an operator alerts on, with their recent history.
type Key struct {
	Time time.Time `json:"time"`
	// Overhead is the time the gateway added, over the last minute, in µs.
	Overhead meter.Quantiles `json:"overhead_us"`
	// Rate is requests per second, as 1-, 5- and 15-minute moving averages.
	Rate meter.Rates `json:"rate"`
	// Errors is errors per second (see IsError), likewise.
	Errors meter.Rates `json:"errors"`
	// ErrorRatio is Errors.M1 / Rate.M1 (0 without traffic).
	ErrorRatio float64 `json:"error_ratio"`
	// Live is the rates over the last LiveWindow seconds: it shows traffic
	// within a second of its start, where the moving averages fold events
	// in every 5s and take a minute to settle.
	Live Live `json:"live"`
	// Requests and ErrorCount count since start.
	Requests   int64 `json:"requests_total"`
	ErrorCount int64 `json:"errors_total"`
	// History is one point per sample (every SampleInterval), oldest first.
	History []KeyPoint `json:"history,omitempty"`
}

// Live is the request and error rates over a short window.
type Live struct {
	// RPS is requests per second, Errors errors per second.
	RPS    float64 `json:"rps"`
	Errors float64 `json:"errors_per_s"`
	// ErrorRatio is Errors / RPS (0 without traffic).
	ErrorRatio float64 `json:"error_ratio"`
	// WindowS is the time the rates cover, in seconds: the current second
	// so far and the LiveWindow-1 before it, or since the first request when
	// that is later (at least 1).
	WindowS float64 `json:"window_s"`
}

// LiveWindow is the span of Key.Live, in seconds.
const LiveWindow = 5

// KeyPoint is one sample of the key numbers; its rate and error ratio are
// the live ones (Key.Live), so that the sparklines move within a second.
type KeyPoint struct {
	Time       time.Time `json:"t"`
	P999us     int64     `json:"p999_us"`
	Rate       float64   `json:"rps"`
	ErrorRatio float64   `json:"error_ratio"`
}

// SampleInterval is how often Run samples the key numbers for history.
const SampleInterval = time.Second

// historyLen keeps 5 minutes of samples.
const historyLen = 300

type history struct {
	mu     sync.Mutex
	points []KeyPoint
}

// Key returns the key numbers now, with history when withHistory.
func (m *Metrics) Key(withHistory bool) Key {
	now := m.now()
	ns := now.UnixNano()
	m.mu.Lock()
	over := m.window.Quantiles(ns)
	reqs, span := m.live.Window(ns)
	errs, _ := m.liveErrs.Window(ns)
	m.mu.Unlock()
	k := Key{Time: now, Overhead: over, Rate: m.reqs.Rates(ns), Errors: m.errs.Rates(ns),
		Requests: m.reqs.Count(), ErrorCount: m.errs.Count()}
	if k.Rate.M1 > 0 {
		k.ErrorRatio = min(k.Errors.M1/k.Rate.M1, 1)
	}
	// Divide by at least a second, so that the first request does not read as a burst.
	secs := float64(max(span, int64(time.Second))) / 1e9
	k.Live.WindowS = secs
	if reqs > 0 {
		k.Live.RPS, k.Live.Errors = float64(reqs)/secs, float64(errs)/secs
		k.Live.ErrorRatio = min(float64(errs)/float64(reqs), 1)
	}
	if withHistory {
		m.history.mu.Lock()
		k.History = append([]KeyPoint(nil), m.history.points...)
		m.history.mu.Unlock()
	}
	return k
}

// Sample appends the key numbers as of now to the history.
func (m *Metrics) Sample() {
	k := m.Key(false)
	m.history.mu.Lock()
	defer m.history.mu.Unlock()
	if len(m.history.points) == historyLen {
		copy(m.history.points, m.history.points[1:])
		m.history.points = m.history.points[:historyLen-1]
	}
	m.history.points = append(m.history.points, KeyPoint{Time: k.Time, P999us: k.Overhead.P999, Rate: k.Live.RPS, ErrorRatio: k.Live.ErrorRatio})
}

// Run samples the key numbers every SampleInterval until stop is closed.
func (m *Metrics) Run(stop <-chan struct{}) {
	t := time.NewTicker(SampleInterval)
	defer t.Stop()
	m.Sample()
	for {
		select {
		case <-t.C:
			m.Sample()
		case <-stop:
			return
		}
	}
}

// keyCollector exports the in-process meters, so that a dashboard shows
// the same numbers as the admin page.
type keyCollector struct{ m *Metrics }

var (
	keyRate     = prometheus.NewDesc("gatehouse_request_rate", "Requests per second, moving average over the window (1m, 5m, 15m).", []string{"window"}, nil)
	keyErrors   = prometheus.NewDesc("gatehouse_error_rate", "Errors per second (5xx, or cut short by the endpoint), moving average over the window.", []string{"window"}, nil)
	keyOverhead = prometheus.NewDesc("gatehouse_overhead_window_seconds", "Overhead quantiles over the last minute (HdrHistogram, 3 significant digits).", []string{"quantile"}, nil)
)

func (c keyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- keyRate
	ch <- keyErrors
	ch <- keyOverhead
}

func (c keyCollector) Collect(ch chan<- prometheus.Metric) {
	k := c.m.Key(false)
	for _, x := range []struct {
		d *prometheus.Desc
		r meter.Rates
	}{{keyRate, k.Rate}, {keyErrors, k.Errors}} {
		ch <- prometheus.MustNewConstMetric(x.d, prometheus.GaugeValue, x.r.M1, "1m")
		ch <- prometheus.MustNewConstMetric(x.d, prometheus.GaugeValue, x.r.M5, "5m")
		ch <- prometheus.MustNewConstMetric(x.d, prometheus.GaugeValue, x.r.M15, "15m")
	}
	for _, q := range []struct {
		name string
		v    int64
	}{{"0.5", k.Overhead.P50}, {"0.99", k.Overhead.P99}, {"0.999", k.Overhead.P999}, {"1", k.Overhead.Max}} {
		ch <- prometheus.MustNewConstMetric(keyOverhead, prometheus.GaugeValue, float64(q.v)/1e6, q.name)
	}
}
