package scenario

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
)

func init() {
	Register(Scenario{
		Name:    "overhead",
		Summary: "Gatehouse vs nginx, HAProxy, Caddy, httputil.ReverseProxy and the direct path: saturation, CPU/request, latency at 25/50/75% load",
		Run:     overhead,
	})
}

// overheadPlans: quick finishes in under two minutes on two cores; full in
// about fourteen.
var overheadPlans = map[harness.Mode]harness.Plan{
	harness.Quick: {
		Reps: 3, Conns: 64,
		Warmup: 200 * time.Millisecond, Closed: time.Second, Open: 600 * time.Millisecond,
		Loads: []float64{0.25, 0.5, 0.75},
		Delay: time.Millisecond, DelayLoads: []float64{0.5},
		Timeout:   5 * time.Second,
		MaxLagP99: time.Millisecond, MaxLag: 20 * time.Millisecond,
	},
	harness.Full: {
		Reps: 3, Conns: 64,
		Warmup: 2 * time.Second, Closed: 5 * time.Second, Open: 8 * time.Second,
		Loads: []float64{0.25, 0.5, 0.75},
		Delay: time.Millisecond, DelayLoads: []float64{0.5},
		Timeout:   5 * time.Second,
		MaxLagP99: time.Millisecond, MaxLag: 20 * time.Millisecond,
	},
}

// The observability variants: gatehouse-obs-off derives nothing from
// passports (observe.metrics: false, no tracing); gatehouse-obs-on derives
// everything (metrics, key numbers, state-machine edges, the passport rings)
// and traces 1% of requests. Its spans go to an OTLP endpoint that refuses
// connections, so the cost measured includes building and encoding the
// spans but not a collector's answers. The plain "gatehouse" peer is the
// default configuration (metrics on, tracing off).
const (
	obsOff = "gatehouse-obs-off"
	obsOn  = "gatehouse-obs-on"
)

func observabilityPeers() []harness.Peer {
	return []harness.Peer{
		&harness.Gatehouse{Label: obsOff, Config: func(c harness.GatehouseConfig) string {
			return harness.DefaultGatehouseConfig(c) + "observe: {metrics: false}\n"
		}},
		&harness.Gatehouse{Label: obsOn, Config: func(c harness.GatehouseConfig) string {
			return harness.DefaultGatehouseConfig(c) + `observe:
  metrics: true
  tracing: {enabled: true, sample_per_million: 10000, endpoint: "http://127.0.0.1:9/v1/traces"}
`
		}},
	}
}

func overhead(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	return harness.Compare(ctx, e, harness.CompareSpec{
		Name:  "overhead",
		Title: "Gatehouse benchmark: proxy overhead",
		Peers: append(harness.StandardPeers(), observabilityPeers()...),
		Plan:  overheadPlans[e.Mode],
	})
}
