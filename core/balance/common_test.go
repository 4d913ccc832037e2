package balance

import (
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every balancer avoids a retry's excluded endpoint when it can, and uses
// it when it is the only one.
func TestExclude(t *testing.T) {
	for _, name := range names {
		clock := &fakeClock{}
		e := eps("a", "b", "c")
		b := mustNew(t, name, e, testOptions(clock, 1))
		for i := 0; i < 200; i++ {
			ep := b.Pick(e[1])
			if ep == e[1] {
				t.Fatalf("%s: picked the excluded endpoint although others exist", name)
			}
			b.Done(ep, Result{LatencyNanos: int64(time.Millisecond)})
			clock.advance(time.Millisecond)
		}
		one := mustNew(t, name, e[:1], testOptions(clock, 1))
		if one.Pick(e[0]) != e[0] {
			t.Fatalf("%s: the only endpoint must be picked even when excluded", name)
		}
		empty := mustNew(t, name, nil, testOptions(clock, 1))
		if empty.Pick(nil) != nil {
			t.Fatalf("%s: empty balancer must return nil", name)
		}
	}
}

// Endpoints marked down by a health check are skipped, unless all are down:
// then all are used.
func TestHealthDownSkipped(t *testing.T) {
	for _, name := range names {
		clock := &fakeClock{}
		e := eps("a", "b", "c")
		b := mustNew(t, name, e, testOptions(clock, 1))
		e[1].SetHealthy(false)
		got := map[*Endpoint]int{}
		for i := 0; i < 300; i++ {
			ep := b.Pick(nil)
			got[ep]++
			b.Done(ep, Result{LatencyNanos: int64(time.Millisecond)})
			clock.advance(time.Millisecond)
		}
		if got[e[1]] != 0 || got[e[0]] == 0 || got[e[2]] == 0 {
			t.Fatalf("%s with b down: picks %d %d %d, want b never, a and c both", name, got[e[0]], got[e[1]], got[e[2]])
		}
		for _, ep := range e {
			ep.SetHealthy(false)
		}
		clear(got)
		for i := 0; i < 300; i++ {
			ep := b.Pick(nil)
			got[ep]++
			b.Done(ep, Result{LatencyNanos: int64(time.Millisecond)})
			clock.advance(time.Millisecond)
		}
		if len(got) != 3 || got[nil] != 0 {
			t.Fatalf("%s with all down: picked %d distinct endpoints, want all 3", name, len(got))
		}
	}
}

// Weights scale the share of the load-aware balancers too.
func TestWeightsLoadAware(t *testing.T) {
	for _, name := range []string{"least_in_flight", "p2c_ewma"} {
		clock := &fakeClock{}
		clock.set(int64(time.Hour))
		e := eps("a", "b", "heavy")
		e[2].Weight = 4
		b := mustNew(t, name, e, testOptions(clock, 9))
		s := newSim(clock, b, e, time.Millisecond, func(int, int64) (time.Duration, bool) {
			return 10 * time.Millisecond, false
		})
		s.run(t, 20*time.Second)
		t.Logf("%s: weight 4 of 6 gets %.3f", name, s.share(2))
		if got := s.share(2); got < 0.5 {
			t.Errorf("%s: weight-4 endpoint share %.3f, want well above a third", name, got)
		}
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, c := range []struct {
		edit func(*Options, []*Endpoint)
		want string
	}{
		{func(o *Options, _ []*Endpoint) { o.LatencyTau = 0 }, "balancing.latency_tau"},
		{func(o *Options, _ []*Endpoint) { o.FailureTau = -1 }, "balancing.failure_tau"},
		{func(o *Options, _ []*Endpoint) { o.SlowStart = -1 }, "slow_start"},
		{func(o *Options, _ []*Endpoint) { o.Choices = 1 }, "balancing.choices"},
		{func(o *Options, _ []*Endpoint) { o.Choices = MaxChoices + 1 }, "balancing.choices"},
		{func(o *Options, _ []*Endpoint) { o.Outlier.ConsecutiveFailures = -1 }, "outlier.consecutive_failures"},
		{func(o *Options, _ []*Endpoint) { o.Outlier.MinSuccessRate = 1.5 }, "outlier.min_success_rate"},
		{func(o *Options, _ []*Endpoint) { o.Outlier.MaxEjection = time.Second }, "outlier.max_ejection"},
		{func(o *Options, _ []*Endpoint) { o.Outlier.Jitter = 1 }, "outlier.jitter"},
		{func(o *Options, _ []*Endpoint) { o.Outlier.MaxEjectedShare = 0 }, "outlier.max_ejected_share"},
		{func(o *Options, _ []*Endpoint) { o.Outlier.ProbeTimeout = 0 }, "outlier.probe_timeout"},
		{func(_ *Options, e []*Endpoint) { e[0].Weight = -1 }, "weight"},
		{func(_ *Options, e []*Endpoint) { e[0].Weight = MaxWeight + 1 }, "weight"},
	} {
		o, e := DefaultOptions(), eps("a")
		c.edit(&o, e)
		for _, name := range names {
			_, err := NewWithOptions(name, e, o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want one naming %s", name, err, c.want)
			}
		}
	}
	if _, err := NewP2CEWMA(eps("a"), Options{}); err == nil {
		t.Error("zero Options accepted: bounds must be given (start from DefaultOptions)")
	}
	if b, err := NewLeastInFlight(eps("a"), DefaultOptions()); err != nil || b.Pick(nil) == nil {
		t.Errorf("NewLeastInFlight: %v", err)
	}
	if b, err := NewRoundRobin(eps("a"), DefaultOptions()); err != nil || b.Pick(nil) == nil {
		t.Errorf("NewRoundRobin: %v", err)
	}
	if got := strings.Join(Names(), ","); got != "least_in_flight,p2c_ewma,round_robin" {
		t.Errorf("Names() = %s", got)
	}
}

// Pick and Done from many goroutines, with ejections, probes and health
// changes going on: run with -race.
func TestConcurrent(t *testing.T) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			e := eps("a", "b", "c", "d", "e")
			o := DefaultOptions()
			o.Outlier.BaseEjection = time.Millisecond
			o.Outlier.MaxEjection = 5 * time.Millisecond
			o.SlowStart = time.Second
			e[4].Joined = Now()
			b := mustNew(t, name, e, o)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					e[i%5].SetHealthy(i%3 != 0)
					_ = e[i%5].Stats()
				}
			}()
			var workers sync.WaitGroup
			for g := 0; g < 4; g++ {
				workers.Add(1)
				go func(seed uint64) {
					defer workers.Done()
					r := rand.New(rand.NewPCG(seed, 1))
					var exclude *Endpoint
					for i := 0; i < 20000; i++ {
						ep := b.Pick(exclude)
						if ep == nil {
							t.Error("nil endpoint")
							return
						}
						ep.InFlight.Add(1)
						failed := ep == e[0] || r.IntN(10) == 0
						ep.InFlight.Add(-1)
						b.Done(ep, Result{Failed: failed, LatencyNanos: int64(r.IntN(1e6)), Canceled: r.IntN(100) == 0})
						exclude = nil
						if failed {
							exclude = ep
						}
					}
				}(uint64(g))
			}
			workers.Wait()
			close(stop)
			wg.Wait()
			// Round robin keeps sending e[0] its share until ejection; the
			// load-aware ones may not give it 5 attempts in a row at all.
			if name == "round_robin" && e[0].Stats().Ejections == 0 {
				t.Error("the always-failing endpoint was never ejected")
			}
			for _, ep := range e {
				if n := ep.InFlight.Load(); n != 0 {
					t.Errorf("%s: %d in flight at the end", ep.Addr, n)
				}
			}
		})
	}
}

// Pick and Done allocate nothing.
func TestNoAllocs(t *testing.T) {
	for _, name := range names {
		clock := &fakeClock{}
		o := testOptions(clock, 1)
		o.SlowStart = time.Minute
		e := eps("a", "b", "c", "d", "e")
		e[1].Joined = 1
		b := mustNew(t, name, e, o)
		i := 0
		allocs := testing.AllocsPerRun(1000, func() {
			i++
			clock.advance(time.Millisecond)
			ep := b.Pick(nil)
			ep.InFlight.Add(1)
			ep.InFlight.Add(-1)
			b.Done(ep, Result{Failed: i%7 == 0, LatencyNanos: int64(i % 1000 * 1000)})
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Pick+Done, want 0", name, allocs)
		}
	}
}
