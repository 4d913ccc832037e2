package metrics

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PluginStat is one plugin host's counters, as read at scrape time (the
// gateway converts the plugin host's own statistics; this package imports
// nothing of it).
type PluginStat struct {
	// Name is the plugin's name; Version the ID of the version serving new
	// calls; Up whether that version has a live process.
	Name, Version string
	Up            bool
	// Calls counts calls that reached the plugin or failed before it;
	// Failures counts failed calls by kind (plugin_error, timeout,
	// unavailable, invalid, too_large, overloaded, transport).
	Calls    int64
	Failures map[string]int64
	// Restarts counts restarts after a crash or a hang; Reloads versions
	// swapped in after the first; Refusals new versions that failed to start.
	Restarts, Reloads, Refusals int64
	// CacheHits and CacheMisses count decision cache lookups.
	CacheHits, CacheMisses int64
	// LatencyCounts[i] counts calls that took at most LatencyBuckets[i]; the
	// one extra last count is over every bucket. LatencySum is their total.
	LatencyBuckets []time.Duration
	LatencyCounts  []int64
	LatencySum     time.Duration
}

// PluginCollector exports plugin counters, read from the plugin hosts at
// scrape time (nothing on the request path).
type PluginCollector struct {
	Plugins func() []PluginStat
}

var (
	pluginCalls    = prometheus.NewDesc("gatehouse_plugin_calls_total", "Plugin calls (cache hits excluded), by plugin.", []string{"plugin"}, nil)
	pluginFailures = prometheus.NewDesc("gatehouse_plugin_failures_total", "Failed plugin calls by kind (plugin_error, timeout, unavailable, invalid, too_large, overloaded, transport).", []string{"plugin", "kind"}, nil)
	pluginLatency  = prometheus.NewDesc("gatehouse_plugin_call_seconds", "Plugin call round trips, from the gateway's side.", []string{"plugin"}, nil)
	pluginRestarts = prometheus.NewDesc("gatehouse_plugin_restarts_total", "Plugin processes restarted after a crash or a hang.", []string{"plugin"}, nil)
	pluginReloads  = prometheus.NewDesc("gatehouse_plugin_reloads_total", "Plugin versions swapped in after the first (hot reloads).", []string{"plugin"}, nil)
	pluginRefusals = prometheus.NewDesc("gatehouse_plugin_refusals_total", "New plugin versions refused because they failed to start.", []string{"plugin"}, nil)
	pluginCache    = prometheus.NewDesc("gatehouse_plugin_cache_lookups_total", "Plugin decision cache lookups, by result (hit, miss).", []string{"plugin", "result"}, nil)
	pluginUp       = prometheus.NewDesc("gatehouse_plugin_up", "1 when the plugin's serving version has a live process, 0 while it restarts.", []string{"plugin", "version"}, nil)
)

// Describe sends the descriptors.
func (c PluginCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pluginCalls, pluginFailures, pluginLatency, pluginRestarts, pluginReloads, pluginRefusals, pluginCache, pluginUp} {
		ch <- d
	}
}

// Collect reads the counters.
func (c PluginCollector) Collect(ch chan<- prometheus.Metric) {
	if c.Plugins == nil {
		return
	}
	for _, p := range c.Plugins() {
		ch <- prometheus.MustNewConstMetric(pluginCalls, prometheus.CounterValue, float64(p.Calls), p.Name)
		kinds := make([]string, 0, len(p.Failures))
		for k := range p.Failures {
			kinds = append(kinds, k)
		}
		slices.Sort(kinds)
		for _, k := range kinds {
			ch <- prometheus.MustNewConstMetric(pluginFailures, prometheus.CounterValue, float64(p.Failures[k]), p.Name, k)
		}
		ch <- prometheus.MustNewConstMetric(pluginRestarts, prometheus.CounterValue, float64(p.Restarts), p.Name)
		ch <- prometheus.MustNewConstMetric(pluginReloads, prometheus.CounterValue, float64(p.Reloads), p.Name)
		ch <- prometheus.MustNewConstMetric(pluginRefusals, prometheus.CounterValue, float64(p.Refusals), p.Name)
		ch <- prometheus.MustNewConstMetric(pluginCache, prometheus.CounterValue, float64(p.CacheHits), p.Name, "hit")
		ch <- prometheus.MustNewConstMetric(pluginCache, prometheus.CounterValue, float64(p.CacheMisses), p.Name, "miss")
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(pluginUp, prometheus.GaugeValue, up, p.Name, p.Version)
		if h, ok := latencyHistogram(p); ok {
			ch <- h
		}
	}
}

// latencyHistogram turns the per-bucket counts into Prometheus's
// cumulative histogram.
func latencyHistogram(p PluginStat) (prometheus.Metric, bool) {
	if len(p.LatencyCounts) != len(p.LatencyBuckets)+1 {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(p.LatencyBuckets))
	var cum uint64
	for i, b := range p.LatencyBuckets {
		cum += uint64(p.LatencyCounts[i])
		buckets[b.Seconds()] = cum
	}
	cum += uint64(p.LatencyCounts[len(p.LatencyBuckets)])
	m, err := prometheus.NewConstHistogram(pluginLatency, cum, p.LatencySum.Seconds(), buckets, p.Name)
	return m, err == nil
}
