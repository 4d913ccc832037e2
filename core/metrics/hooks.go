package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/core/hook"
)

// HookStat is one binding's counters for one version of its hook, as the
// hook collector reads them: calls and failures are counted under the
// version that ran them. Current marks the version serving new requests.
type HookStat struct {
	Hook, Scope, Version string
	Current              bool
	Stats                *hook.Stats
}

// ScriptStat is one script host's reload counters.
type ScriptStat struct {
	Name, Version     string
	Reloads, Refusals uint64
	Missing           bool
}

// HookCollector exports hook and script counters, read from the running
// configuration at scrape time (nothing on the request path). Hook series
// are per binding and version (see hook.MaxVersions: the series of a
// version retired long ago end).
type HookCollector struct {
	Hooks   func() []HookStat
	Scripts func() []ScriptStat
}

var (
	hookCalls    = prometheus.NewDesc("gatehouse_hook_calls_total", "Hook calls, by hook, binding scope and the version that ran them.", []string{"hook", "scope", "version"}, nil)
	hookFailures = prometheus.NewDesc("gatehouse_hook_failures_total", "Failed hook calls, by the version that ran them and kind (error, panic, timeout, invalid, overloaded, unavailable).", []string{"hook", "scope", "version", "kind"}, nil)
	hookSeconds  = prometheus.NewDesc("gatehouse_hook_seconds_total", "Time spent in hook calls.", []string{"hook", "scope", "version"}, nil)
	scriptLoads  = prometheus.NewDesc("gatehouse_script_reloads_total", "Script versions swapped in after the first.", []string{"script"}, nil)
	scriptRefuse = prometheus.NewDesc("gatehouse_script_refusals_total", "Changed script versions refused (compile error or failing cases).", []string{"script"}, nil)
	scriptInfo   = prometheus.NewDesc("gatehouse_script_version_info", "The version serving now (1), and whether its file is missing (missing=\"true\").", []string{"script", "version", "missing"}, nil)
)

// Describe sends the descriptors.
func (c HookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{hookCalls, hookFailures, hookSeconds, scriptLoads, scriptRefuse, scriptInfo} {
		ch <- d
	}
}

// Collect reads the counters.
func (c HookCollector) Collect(ch chan<- prometheus.Metric) {
	if c.Hooks != nil {
		// A hook bound more than once in a scope (one binding per phase,
		// say) has one series per scope and version, the bindings' sum: a
		// series collected twice fails the whole scrape.
		type key struct{ hook, scope, version string }
		var order []key
		sums := map[key]*hook.Counts{}
		for _, h := range c.Hooks() {
			k := key{h.Hook, h.Scope, h.Version}
			sum := sums[k]
			if sum == nil {
				sum = &hook.Counts{}
				sums[k] = sum
				order = append(order, k)
			}
			sum.Calls += h.Stats.Calls.Load()
			sum.Nanos += h.Stats.Nanos.Load()
			for _, fk := range hook.FailureKinds() {
				sum.Failures[fk] += h.Stats.Failures[fk].Load()
			}
		}
		for _, k := range order {
			sum := sums[k]
			ch <- prometheus.MustNewConstMetric(hookCalls, prometheus.CounterValue, float64(sum.Calls), k.hook, k.scope, k.version)
			ch <- prometheus.MustNewConstMetric(hookSeconds, prometheus.CounterValue, float64(sum.Nanos)/1e9, k.hook, k.scope, k.version)
			for _, fk := range hook.FailureKinds() {
				ch <- prometheus.MustNewConstMetric(hookFailures, prometheus.CounterValue, float64(sum.Failures[fk]), k.hook, k.scope, k.version, fk.String())
			}
		}
	}
	if c.Scripts != nil {
		for _, s := range c.Scripts() {
			ch <- prometheus.MustNewConstMetric(scriptLoads, prometheus.CounterValue, float64(s.Reloads), s.Name)
			ch <- prometheus.MustNewConstMetric(scriptRefuse, prometheus.CounterValue, float64(s.Refusals), s.Name)
			missing := "false"
			if s.Missing {
				missing = "true"
			}
			ch <- prometheus.MustNewConstMetric(scriptInfo, prometheus.GaugeValue, 1, s.Name, s.Version, missing)
		}
	}
}
