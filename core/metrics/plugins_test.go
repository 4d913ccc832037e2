package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestPluginCollector: the plugin counters come out under their names and
// labels, and the latency counts become a cumulative histogram.
func TestPluginCollector(t *testing.T) {
	stats := []PluginStat{{
		Name: "authz", Version: "abc123", Up: true, Calls: 10,
		Failures: map[string]int64{"timeout": 2, "unavailable": 1},
		Restarts: 1, Reloads: 2, Refusals: 3, CacheHits: 4, CacheMisses: 6,
		LatencyBuckets: []time.Duration{50 * time.Microsecond, time.Millisecond},
		LatencyCounts:  []int64{5, 4, 1},
		LatencySum:     3 * time.Millisecond,
	}}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(PluginCollector{Plugins: func() []PluginStat { return stats }})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{} // name{label=value,...} -> value
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + "{"
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + ","
			}
			key += "}"
			switch {
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				h := m.GetHistogram()
				got[key+"count"] = float64(h.GetSampleCount())
				got[key+"sum"] = h.GetSampleSum()
				for _, b := range h.GetBucket() {
					got[key+"le="+time.Duration(b.GetUpperBound()*1e9).String()] = float64(b.GetCumulativeCount())
				}
			}
		}
	}
	want := map[string]float64{
		"gatehouse_plugin_calls_total{plugin=authz,}":                     10,
		"gatehouse_plugin_failures_total{kind=timeout,plugin=authz,}":     2,
		"gatehouse_plugin_failures_total{kind=unavailable,plugin=authz,}": 1,
		"gatehouse_plugin_restarts_total{plugin=authz,}":                  1,
		"gatehouse_plugin_reloads_total{plugin=authz,}":                   2,
		"gatehouse_plugin_refusals_total{plugin=authz,}":                  3,
		"gatehouse_plugin_cache_lookups_total{plugin=authz,result=hit,}":  4,
		"gatehouse_plugin_cache_lookups_total{plugin=authz,result=miss,}": 6,
		"gatehouse_plugin_up{plugin=authz,version=abc123,}":               1,
		"gatehouse_plugin_call_seconds{plugin=authz,}count":               10,
		"gatehouse_plugin_call_seconds{plugin=authz,}sum":                 0.003,
		"gatehouse_plugin_call_seconds{plugin=authz,}le=50µs":             5,
		"gatehouse_plugin_call_seconds{plugin=authz,}le=1ms":              9,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d series, want %d: %v", len(got), len(want), got)
	}
}
