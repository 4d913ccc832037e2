package balance

import (
	"testing"
	"time"
)

// Regression: an endpoint with no latency sample cost 0 while idle, so
// p2c_ewma preferred a brand new endpoint over every measured one (it won
// every draw it was in). It now costs as much as the slowest sampled
// endpoint: it loses to faster ones, still wins some draws, and so gets
// the requests that give it a sample.
func TestP2CUnsampledEndpointPenalized(t *testing.T) {
	clock := &fakeClock{}
	clock.set(int64(time.Hour))
	e := eps("a", "b", "c", "new")
	b := mustNew(t, "p2c_ewma", e, testOptions(clock, 7)).(*P2CEWMA)
	for i, lat := range []time.Duration{5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond} {
		b.Done(e[i], Result{LatencyNanos: int64(lat)})
	}
	now := clock.now()
	unsampled := -1.0
	slowest, _ := b.cost(e[2], now, &unsampled)
	if got, _ := b.cost(e[3], now, &unsampled); got != slowest {
		t.Fatalf("idle unsampled endpoint costs %v, want the slowest sampled one's %v", got, slowest)
	}
	// With a request in flight, it costs twice that (and more as it ages).
	e[3].Begin(now)
	if got, _ := b.cost(e[3], now, &unsampled); got != 2*slowest {
		t.Fatalf("unsampled endpoint with one in flight costs %v, want %v", got, 2*slowest)
	}
	e[3].End(now)

	// Picks without results (nothing in flight, the averages stand still):
	// the old rule gave "new" every draw it was in, about half the picks;
	// now it wins only drawn first against the slowest, about 1 in 12.
	got := picks(b, e, 1200)
	share := float64(got[e[3]]) / 1200
	t.Logf("share of the unsampled endpoint: %.3f", share)
	if share > 0.15 {
		t.Fatalf("unsampled endpoint got %.3f of the picks: it is preferred, want well below the 0.25 fair share", share)
	}
	if got[e[3]] == 0 {
		t.Fatal("unsampled endpoint never picked: it can never obtain a sample")
	}
	// Once it has a sample, its own latency counts.
	b.Done(e[3], Result{LatencyNanos: int64(time.Millisecond)})
	gotCost, _ := b.cost(e[3], now, &unsampled)
	if a, _ := b.cost(e[0], now, &unsampled); gotCost >= a {
		t.Fatalf("sampled at 1ms it costs %v, want below a's 5ms cost", gotCost)
	}

	// With no sample anywhere, every endpoint costs the failure penalty
	// per request in flight: the picks spread over all of them.
	clock2 := &fakeClock{}
	clock2.set(int64(time.Hour))
	fresh := eps("a", "b", "c")
	bf := mustNew(t, "p2c_ewma", fresh, testOptions(clock2, 3)).(*P2CEWMA)
	unsampled = -1
	if got, _ := bf.cost(fresh[0], clock2.now(), &unsampled); got != float64(time.Second) {
		want := float64(time.Second)
		t.Fatalf("no sample anywhere: cost %v, want the failure penalty %v", got, want)
	}
	if n := picks(bf, fresh, 300); len(n) != 3 {
		t.Fatalf("no sample anywhere: picked %d distinct endpoints, want 3", len(n))
	}
}
