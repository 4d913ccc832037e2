package scenario

import (
	"context"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
)

func init() {
	Register(Scenario{
		Name:    "smoke",
		Summary: "every installed peer for a few seconds at a low fixed rate: keeps the harness from rotting (run by the test suite)",
		Run:     smoke,
		Scratch: true,
	})
}

// smokePlan exercises every code path (closed loop, open loop, delayed
// backend) once, briefly, whatever the mode.
var smokePlan = harness.Plan{
	Reps: 1, Conns: 8,
	Closed: 2 * time.Second, Open: 500 * time.Millisecond,
	FixedRates: []float64{200},
	Delay:      time.Millisecond,
	Timeout:    5 * time.Second,
	MaxLagP99:  5 * time.Millisecond, MaxLag: 50 * time.Millisecond,
}

func smoke(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	return harness.Compare(ctx, e, harness.CompareSpec{
		Name:  "smoke",
		Title: "Gatehouse benchmark: smoke run (not a measurement)",
		Peers: harness.StandardPeers(),
		Plan:  smokePlan,
		Notes: []string{"A few hundred requests per peer: this checks that the harness works, its numbers mean nothing."},
	})
}
