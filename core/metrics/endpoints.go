package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/core/balance"
)

// EndpointStat is one endpoint's balancing state as read at scrape time.
type EndpointStat struct {
	Service, Addr string
	Stats         balance.Stats
}

// EndpointCollector exports per-endpoint state read from the balancers at
// scrape time (nothing on the request path).
type EndpointCollector struct {
	Endpoints func() []EndpointStat
}

var (
	epInFlight  = prometheus.NewDesc("gatehouse_endpoint_in_flight", "Attempts in progress to the endpoint.", []string{"service", "endpoint"}, nil)
	epLatency   = prometheus.NewDesc("gatehouse_endpoint_latency_ewma_seconds", "The endpoint's peak latency moving average as the balancer sees it (failures count as at least the failure penalty).", []string{"service", "endpoint"}, nil)
	epFailure   = prometheus.NewDesc("gatehouse_endpoint_failure_ratio", "The endpoint's time-decayed share of failed attempts.", []string{"service", "endpoint"}, nil)
	epEjections = prometheus.NewDesc("gatehouse_endpoint_ejections_total", "Times passive outlier detection took the endpoint out of rotation.", []string{"service", "endpoint"}, nil)
	epEjected   = prometheus.NewDesc("gatehouse_endpoint_ejected", "1 while the endpoint is ejected (or its return probe is in flight).", []string{"service", "endpoint"}, nil)
	epHealthy   = prometheus.NewDesc("gatehouse_endpoint_healthy", "0 while an active health check has the endpoint marked down.", []string{"service", "endpoint"}, nil)
)

// Describe sends the descriptors.
func (c EndpointCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{epInFlight, epLatency, epFailure, epEjections, epEjected, epHealthy} {
		ch <- d
	}
}

// Collect reads the endpoints.
func (c EndpointCollector) Collect(ch chan<- prometheus.Metric) {
	if c.Endpoints == nil {
		return
	}
	b := func(x bool) float64 {
		if x {
			return 1
		}
		return 0
	}
	for _, e := range c.Endpoints() {
		s := e.Stats
		ch <- prometheus.MustNewConstMetric(epInFlight, prometheus.GaugeValue, float64(s.InFlight), e.Service, e.Addr)
		ch <- prometheus.MustNewConstMetric(epLatency, prometheus.GaugeValue, s.Latency.Seconds(), e.Service, e.Addr)
		ch <- prometheus.MustNewConstMetric(epFailure, prometheus.GaugeValue, s.FailureRate, e.Service, e.Addr)
		ch <- prometheus.MustNewConstMetric(epEjections, prometheus.CounterValue, float64(s.Ejections), e.Service, e.Addr)
		ch <- prometheus.MustNewConstMetric(epEjected, prometheus.GaugeValue, b(s.Ejected), e.Service, e.Addr)
		ch <- prometheus.MustNewConstMetric(epHealthy, prometheus.GaugeValue, b(s.Healthy), e.Service, e.Addr)
	}
}

// TraceStat is the tracer's counters.
type TraceStat struct {
	Built, Dropped   uint64
	Queued, Capacity int
}

// TraceCollector exports the tracer's counters.
type TraceCollector struct {
	Stats func() TraceStat
}

var (
	traceBuilt   = prometheus.NewDesc("gatehouse_trace_requests_total", "Sampled requests turned into spans.", nil, nil)
	traceDropped = prometheus.NewDesc("gatehouse_trace_dropped_total", "Sampled requests dropped because the span queue was full.", nil, nil)
	traceQueued  = prometheus.NewDesc("gatehouse_trace_queue_length", "Sampled requests waiting to become spans.", nil, nil)
)

// Describe sends the descriptors.
func (c TraceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- traceBuilt
	ch <- traceDropped
	ch <- traceQueued
}

// Collect reads the counters.
func (c TraceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.Stats == nil {
		return
	}
	s := c.Stats()
	ch <- prometheus.MustNewConstMetric(traceBuilt, prometheus.CounterValue, float64(s.Built))
	ch <- prometheus.MustNewConstMetric(traceDropped, prometheus.CounterValue, float64(s.Dropped))
	ch <- prometheus.MustNewConstMetric(traceQueued, prometheus.GaugeValue, float64(s.Queued))
}
