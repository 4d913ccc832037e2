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

func overhead(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	return harness.Compare(ctx, e, harness.CompareSpec{
		Name:  "overhead",
		Title: "Gatehouse benchmark: proxy overhead",
		Peers: harness.StandardPeers(),
		Plan:  overheadPlans[e.Mode],
	})
}
