// Package balance picks an endpoint of a service for each request. A
// balancer is a one-method plug-in registered by name and chosen per service
// in the configuration ("balancer: p2c_ewma"):
//
//   - round_robin: smooth weighted round robin (nginx's algorithm);
//   - least_in_flight: fewest requests in flight, weighed by a time-decayed
//     failure rate, with a probe now and then to every endpoint;
//   - p2c_ewma: power of two random choices on peak-EWMA latency × (in
//     flight + 1), the recommended default.
//
// Whatever the balancer, the same machinery runs around it (base.go,
// outlier.go): passive outlier ejection with backed-off, jittered ejection
// times and a single probe on return; endpoints marked down by active health
// checks (package health) are skipped unless all are down; endpoints that
// just joined ramp up over an optional slow-start window. The state of an
// endpoint (latency and failure averages, ejection, health) lives in its
// Endpoint, so it survives a reload that keeps the *Endpoint.
//
// Balancers take their clock and randomness from Options, so tests run on
// fake pools with a fake clock and a seeded source. Pick and Done allocate
// nothing and are safe for concurrent use.
package balance

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Endpoint is one address of a service, with the live counters balancers
// read. The proxy engine calls Begin and End around each attempt. Addr,
// Weight and Joined must be set before the endpoint is handed to a balancer
// and not changed afterwards.
type Endpoint struct {
	// Addr is host:port.
	Addr string
	// InFlight is the number of requests currently sent to this endpoint.
	// Begin and End maintain it; a caller that does not need the age of
	// the attempts in flight may add to it directly.
	InFlight atomic.Int64
	// Weight is the endpoint's relative capacity: round_robin sends it
	// Weight shares of the requests, least_in_flight and p2c_ewma divide its
	// load score by it. Default (0) is 1; at most MaxWeight.
	Weight int
	// Joined is when the endpoint joined its service, on the balancer's clock
	// (Now for the real one). Zero means it was there from the start: no slow
	// start. Set it to Now() for an endpoint added by a reload or discovery.
	Joined int64

	st state // balancing state; see endpoint.go
}

// MaxWeight is the largest Endpoint.Weight.
const MaxWeight = 10000

// Result is what the engine reports back to the balancer after an attempt.
type Result struct {
	// Failed is true for a gateway-visible failure (connect error, reset,
	// timeout, 5xx from the endpoint).
	Failed bool
	// LatencyNanos is the time to response headers, or to the failure.
	LatencyNanos int64
	// Canceled is true when the attempt ended without a verdict on the
	// endpoint: the client went away, a kept-alive connection turned out
	// stale before anything was read, or the client's upload failed. The
	// attempt then counts neither as a success nor as a failure (an outlier
	// probe is handed back). Failed and LatencyNanos are ignored.
	Canceled bool
}

// Balancer chooses among the endpoints of one service. Implementations must
// be safe for concurrent use.
type Balancer interface {
	// Pick returns the endpoint for the next attempt, or nil when the
	// service has no endpoint. exclude, if non-nil, is an endpoint to avoid
	// (the one a retry just failed on) unless no other can be used.
	Pick(exclude *Endpoint) *Endpoint
	// Done reports the result of an attempt on ep. The engine calls it
	// exactly once for every endpoint Pick returned.
	Done(ep *Endpoint, r Result)
}

// Factory builds a balancer over a fixed set of endpoints. The options it
// gets are complete and valid (New and NewWithOptions check them).
type Factory func(endpoints []*Endpoint, o Options) Balancer

var (
	mu       sync.RWMutex
	registry = map[string]Factory{}
)

// Register makes a balancer available by name. Registering a name twice is
// a programming error and panics.
func Register(name string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("balance: balancer %q registered twice", name))
	}
	registry[name] = f
}

// New builds the balancer registered as name with DefaultOptions: the real
// clock and randomness.
func New(name string, endpoints []*Endpoint) (Balancer, error) {
	return NewWithOptions(name, endpoints, DefaultOptions())
}

// NewWithOptions builds the balancer registered as name with o. It reports
// an unknown name, invalid options and invalid endpoint weights.
func NewWithOptions(name string, endpoints []*Endpoint, o Options) (Balancer, error) {
	mu.RLock()
	f, ok := registry[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown balancer %q (known: %v)", name, Names())
	}
	if err := o.check(endpoints); err != nil {
		return nil, err
	}
	return f(endpoints, o.resolve()), nil
}

// Names lists the registered balancers, sorted.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
