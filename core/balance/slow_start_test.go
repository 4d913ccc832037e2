package balance

import (
	"testing"
	"time"
)

// With slow start, an endpoint that joins a busy service takes a growing
// share of the traffic over the window instead of the whole flood a
// load-aware balancer would send its empty queue at once.
func TestSlowStartRampsLoadAware(t *testing.T) {
	for _, name := range []string{"least_in_flight", "p2c_ewma"} {
		t.Run(name, func(t *testing.T) {
			clock := &fakeClock{}
			clock.set(int64(time.Hour))
			o := testOptions(clock, 3)
			o.SlowStart = 40 * time.Second
			e := eps("a", "b", "c", "d", "new")
			e[4].Joined = clock.now()
			b := mustNew(t, name, e, o)
			s := newSim(clock, b, e, time.Millisecond, func(int, int64) (time.Duration, bool) {
				return 10 * time.Millisecond, false
			})
			var shares []float64
			for k := 0; k < 5; k++ {
				s.reset()
				s.run(t, 10*time.Second)
				shares = append(shares, s.share(4))
			}
			t.Logf("share of the new endpoint per 10s: %.3f", shares)
			if shares[0] > 0.12 {
				t.Errorf("first 10s: share %.3f, want well below the full 0.2", shares[0])
			}
			for k := 1; k < 4; k++ {
				if shares[k] <= shares[k-1] {
					t.Errorf("share did not grow from window %d to %d: %.3f", k-1, k, shares)
				}
			}
			if shares[4] < 0.17 {
				t.Errorf("after the window: share %.3f, want about 0.2", shares[4])
			}
		})
	}
}
