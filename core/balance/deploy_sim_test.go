package balance

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// deployStep is one change of an endpoint's behaviour in a deploy
// simulation, at an offset from its start.
type deployStep struct {
	at    time.Duration
	ep    int
	down  bool          // refused at once (failed, 100µs)
	delay time.Duration // added to every answer while it lasts
}

// deploySchedule is bench/scenario's slow_node schedule, fixed: a rolling
// restart (down 1s, then cold: +200ms for 1s, +100ms for 1s, +50ms for 2s),
// then slow episodes every 5s, every other one of two endpoints at once.
func deploySchedule() ([]deployStep, []struct{ from, to time.Duration }) {
	s := time.Second
	var steps []deployStep
	for k, ep := range []int{3, 0, 4, 1, 2} {
		t := 2*s + time.Duration(k)*4*s
		steps = append(steps,
			deployStep{at: t, ep: ep, down: true},
			deployStep{at: t + s, ep: ep, delay: 200 * time.Millisecond},
			deployStep{at: t + 2*s, ep: ep, delay: 100 * time.Millisecond},
			deployStep{at: t + 3*s, ep: ep, delay: 50 * time.Millisecond},
			deployStep{at: t + 5*s, ep: ep})
	}
	var episodes []struct{ from, to time.Duration }
	delays := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	for k, t := 0, 25*s; t <= 55*s; k, t = k+1, t+5*s {
		eps := []int{k % 5}
		if k%2 == 0 {
			eps = append(eps, (k+2)%5)
		}
		for _, ep := range eps {
			steps = append(steps, deployStep{at: t, ep: ep, delay: delays[k%3]},
				deployStep{at: t + 2500*time.Millisecond, ep: ep})
		}
		episodes = append(episodes, struct{ from, to time.Duration }{t, t + 2500*time.Millisecond})
	}
	slices.SortStableFunc(steps, func(a, b deployStep) int { return int(a.at - b.at) })
	return steps, episodes
}

// During a deploy (endpoints restarting cold) and the slow episodes after
// it, the load-aware balancers send few requests to an endpoint while it is
// slow. The failures of a restart and a cold start's slow answers must not
// make the endpoints look slow for long after they have recovered: if they
// do, a later episode's slow endpoints look no worse than the rest and get
// their share anyway.
func TestDeploySlowShare(t *testing.T) {
	for _, c := range []struct {
		name     string
		choices  int
		min, max float64
	}{
		// Round robin meets every slow endpoint's share: 10.9%.
		{"round_robin", 0, 0.08, 1},
		// least_in_flight: 0.21%, its probes of each slow endpoint
		// (ProbeInterval) and a request whenever the last one is back.
		{"least_in_flight", 0, 0, 0.005},
		// p2c_ewma: 0.02% with either choices (1.6% and 0.25% with a
		// 10s LatencyTau).
		{"p2c_ewma", 2, 0, 0.002},
		{"p2c_ewma", 3, 0, 0.002},
	} {
		t.Run(c.name, func(t *testing.T) {
			clock := &fakeClock{}
			start := int64(time.Hour)
			clock.set(start)
			o := testOptions(clock, 7)
			o.Choices = c.choices
			e := eps("a", "b", "c", "d", "e")
			b := mustNew(t, c.name, e, o)
			steps, episodes := deploySchedule()
			const warmup = 2 * time.Second // no faults
			state := make([]deployStep, len(e))
			applied := 0
			slow, total := 0, 0
			s := newSim(clock, b, e, 667*time.Microsecond, func(i int, now int64) (time.Duration, bool) {
				for applied < len(steps) && start+int64(warmup+steps[applied].at) <= now {
					st := steps[applied]
					state[st.ep] = st
					applied++
				}
				total++
				switch st := state[i]; {
				case st.down:
					return 100 * time.Microsecond, true
				case st.delay > 0:
					slow++
					return 400*time.Microsecond + st.delay, false
				}
				return 400 * time.Microsecond, false
			})
			s.run(t, warmup)
			var line string
			for _, ep := range episodes {
				s.run(t, time.Duration(start+int64(warmup+ep.from)-clock.now()))
				before := slow
				s.run(t, ep.to-ep.from)
				n := int((ep.to - ep.from) / (667 * time.Microsecond))
				line += " " + strconv.Itoa(slow-before) + "/" + strconv.Itoa(n)
			}
			share := float64(slow) / float64(total)
			t.Logf("%s choices %d: met a slow endpoint %.4f (%d of %d); per episode:%s", c.name, c.choices, share, slow, total, line)
			if share < c.min || share > c.max {
				t.Errorf("met a slow endpoint on %.4f of requests, want in [%v, %v]", share, c.min, c.max)
			}
		})
	}
}
