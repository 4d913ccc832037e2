// Package balance picks an endpoint of a service for each request. A
// balancer is a one-method plug-in registered by name and chosen per service
// in the configuration ("balancer: round_robin").
package balance

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Endpoint is one address of a service, with the live counters balancers
// read. The proxy engine maintains InFlight around each attempt.
type Endpoint struct {
	// Addr is host:port.
	Addr string
	// InFlight is the number of requests currently sent to this endpoint.
	InFlight atomic.Int64
}

// Result is what the engine reports back to the balancer after an attempt.
type Result struct {
	// Failed is true for a gateway-visible failure (connect error, reset,
	// timeout, 5xx from the endpoint).
	Failed bool
	// LatencyNanos is the time to response headers, or to the failure.
	LatencyNanos int64
}

// Balancer chooses among the endpoints of one service. Implementations must
// be safe for concurrent use.
type Balancer interface {
	// Pick returns the endpoint for the next attempt, or nil when none can
	// take it. exclude, if non-nil, is an endpoint to avoid (the one a retry
	// just failed on) unless it is the only one.
	Pick(exclude *Endpoint) *Endpoint
	// Done reports the result of an attempt on ep.
	Done(ep *Endpoint, r Result)
}

// Factory builds a balancer over a fixed set of endpoints.
type Factory func(endpoints []*Endpoint) Balancer

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

// New builds the balancer registered as name.
func New(name string, endpoints []*Endpoint) (Balancer, error) {
	mu.RLock()
	f, ok := registry[name]
	mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("unknown balancer %q (known: %v)", name, Names())
	}
	return f(endpoints), nil
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
