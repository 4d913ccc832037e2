package balance

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Options tune a balancer and the machinery around it. Start from
// DefaultOptions and change what differs; NewWithOptions rejects a zero or
// negative bound (there is no "0 means unlimited") except where a field says
// 0 turns something off.
type Options struct {
	// Clock returns monotonic nanoseconds, never negative, never going back.
	// Default (nil): Now. Tests inject a fake one.
	Clock func() int64
	// Rand supplies randomness (p2c's choices, ties, ejection jitter). It
	// must be safe for concurrent use if the balancer is used concurrently.
	// Default (nil): the runtime's generator (math/rand/v2's global one).
	Rand rand.Source

	// LatencyTau is the time constant of each endpoint's peak latency EWMA:
	// a lower sample moves it 63% of the way after LatencyTau, and an
	// untried endpoint's value decays toward zero likewise. Default 2s.
	//
	// It is how long a slow answer (or a failure's penalty) is remembered.
	// A shunned endpoint gets few samples, so it recovers its traffic only
	// as fast as this decay: with 10s (Finagle's decay time) a 1s penalty
	// or a cold start's 200ms still read 100–500ms twenty seconds after a
	// rolling restart, so every recently restarted endpoint looked slower
	// than one that was slow now, and p2c_ewma sent the slow ones 1.6% of
	// all requests in the deploy simulation (TestDeploySlowShare; 0.02% at
	// 2s). A short memory costs little: the age of the attempts in flight
	// catches an endpoint that turns slow again before its first answer.
	LatencyTau time.Duration
	// FailureTau is the time constant of each endpoint's failure rate: a
	// failure FailureTau old weighs 37%, 3×FailureTau old 5%. Default 60s.
	FailureTau time.Duration
	// FailurePenalty is the least latency a failed attempt counts as in the
	// latency EWMA, so that an endpoint failing fast does not look fast to
	// p2c_ewma. Default 1s.
	FailurePenalty time.Duration
	// ProbeInterval (least_in_flight): an endpoint with nothing in flight
	// that was not picked for this long gets the next request whatever its
	// failure rate, so that its recovery is noticed. Default 1s.
	ProbeInterval time.Duration
	// Choices (p2c_ewma) is how many distinct random endpoints each pick
	// compares, 2..MaxChoices. Default 2. While k of n endpoints are slow, all
	// the draws are slow k(k−1)…/n(n−1)… of the time whatever their averages
	// (1 in 10 with 2 of 5 and two choices, 0 with three); more choices
	// shun a slow minority better in small services at the cost of more
	// herding onto the cheapest endpoints.
	Choices int
	// SlowStart is how long an endpoint that joined (Endpoint.Joined set)
	// takes to ramp up linearly from 10% to its full weight. Default 0: off.
	SlowStart time.Duration

	// Outlier configures passive outlier ejection.
	Outlier OutlierOptions
}

// OutlierOptions configure passive outlier ejection: an endpoint whose
// attempts fail is taken out of rotation for a while, then sent a single
// probe request; its success readmits it, its failure ejects it again for
// longer. Never more than MaxEjectedShare of a service's endpoints, never
// the last one.
type OutlierOptions struct {
	// Enabled turns passive outlier ejection on. Default true.
	Enabled bool
	// ConsecutiveFailures ejects an endpoint after this many failed attempts
	// in a row. Default 5; 0 turns this check off.
	ConsecutiveFailures int
	// MinSuccessRate ejects an endpoint whose share of successful attempts
	// over the current and previous Window falls below it, once those hold
	// at least MinRequests attempts. Default 0.5; 0 turns this check off.
	MinSuccessRate float64
	// MinRequests is the least number of attempts the success rate is
	// judged on. Default 20.
	MinRequests int
	// Window is the length of the success-rate buckets; the rate covers
	// between one and two windows. Default 10s.
	Window time.Duration
	// BaseEjection is how long a first ejection lasts; each further
	// ejection doubles it, up to MaxEjection. The doubling is forgiven one
	// step per BaseEjection the endpoint stays in. Default 10s.
	BaseEjection time.Duration
	// MaxEjection caps an ejection's length. Default 5m.
	MaxEjection time.Duration
	// Jitter is the share of an ejection's length removed at random, so
	// that endpoints ejected together do not return together. In [0, 1).
	// Default 0.25 (a 10s ejection lasts 7.5s to 10s).
	Jitter float64
	// MaxEjectedShare is the largest share of a service's endpoints ejected
	// at once, in (0, 1]: at most floor(MaxEjectedShare × endpoints) are out,
	// so a share below 1/n ejects none of n; never the last one. Default 0.5.
	MaxEjectedShare float64
	// ProbeTimeout is how long a returning endpoint's probe may go without
	// a result (Done) before another request may probe it. Default 30s.
	ProbeTimeout time.Duration
}

// DefaultOptions returns the defaults documented on each field, with the
// real clock and randomness.
func DefaultOptions() Options {
	return Options{
		LatencyTau:     2 * time.Second,
		FailureTau:     60 * time.Second,
		FailurePenalty: time.Second,
		ProbeInterval:  time.Second,
		Choices:        2,
		Outlier: OutlierOptions{
			Enabled:             true,
			ConsecutiveFailures: 5,
			MinSuccessRate:      0.5,
			MinRequests:         20,
			Window:              10 * time.Second,
			BaseEjection:        10 * time.Second,
			MaxEjection:         5 * time.Minute,
			Jitter:              0.25,
			MaxEjectedShare:     0.5,
			ProbeTimeout:        30 * time.Second,
		},
	}
}

// check reports the first invalid option or endpoint, naming its config key.
func (o *Options) check(eps []*Endpoint) error {
	pos := func(key string, d time.Duration) error {
		if d <= 0 {
			return fmt.Errorf("%s must be positive; got %v", key, d)
		}
		return nil
	}
	oo := &o.Outlier
	for _, err := range []error{
		pos("balancing.latency_tau", o.LatencyTau),
		pos("balancing.failure_tau", o.FailureTau),
		pos("balancing.failure_penalty", o.FailurePenalty),
		pos("balancing.probe_interval", o.ProbeInterval),
		pos("outlier.window", oo.Window),
		pos("outlier.base_ejection", oo.BaseEjection),
		pos("outlier.max_ejection", oo.MaxEjection),
		pos("outlier.probe_timeout", oo.ProbeTimeout),
	} {
		if err != nil {
			return err
		}
	}
	switch {
	case o.Choices != 0 && (o.Choices < 2 || o.Choices > MaxChoices):
		return fmt.Errorf("balancing.choices must be in [2, %d]; got %d", MaxChoices, o.Choices)
	case o.SlowStart < 0:
		return fmt.Errorf("slow_start must not be negative (0 or absent turns it off); got %v", o.SlowStart)
	case oo.ConsecutiveFailures < 0:
		return fmt.Errorf("outlier.consecutive_failures must not be negative (0 turns the check off); got %d", oo.ConsecutiveFailures)
	case !(oo.MinSuccessRate >= 0 && oo.MinSuccessRate <= 1):
		return fmt.Errorf("outlier.min_success_rate must be in [0, 1] (0 turns the check off); got %v", oo.MinSuccessRate)
	case oo.MinRequests <= 0:
		return fmt.Errorf("outlier.min_requests must be positive; got %d", oo.MinRequests)
	case oo.MaxEjection < oo.BaseEjection:
		return fmt.Errorf("outlier.max_ejection (%v) must be at least outlier.base_ejection (%v)", oo.MaxEjection, oo.BaseEjection)
	case !(oo.Jitter >= 0 && oo.Jitter < 1):
		return fmt.Errorf("outlier.jitter must be in [0, 1); got %v", oo.Jitter)
	case !(oo.MaxEjectedShare > 0 && oo.MaxEjectedShare <= 1):
		return fmt.Errorf("outlier.max_ejected_share must be in (0, 1]; got %v", oo.MaxEjectedShare)
	}
	for i, ep := range eps {
		if ep == nil {
			return fmt.Errorf("endpoints[%d] is nil", i)
		}
		if ep.Weight < 0 || ep.Weight > MaxWeight {
			return fmt.Errorf("endpoint %s: weight must be in [1, %d] (absent means 1); got %d", ep.Addr, MaxWeight, ep.Weight)
		}
	}
	return nil
}

// resolve fills in the real clock and randomness.
func (o Options) resolve() Options {
	if o.Clock == nil {
		o.Clock = Now
	}
	if o.Rand == nil {
		o.Rand = runtimeSource{}
	}
	return o
}

// epoch is the origin of Now.
var epoch = time.Now()

// Now is the real clock of balancers: monotonic nanoseconds since the
// process started, plus one so that it is never zero.
func Now() int64 { return int64(time.Since(epoch)) + 1 }

// runtimeSource is the runtime's generator: safe for concurrent use, no lock.
type runtimeSource struct{}

func (runtimeSource) Uint64() uint64 { return rand.Uint64() }
