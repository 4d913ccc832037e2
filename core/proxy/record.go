package proxy

import (
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/traceparent"
)

// Record is a finished request as observers see it. It and its passport are
// reused after the observers return: an observer that keeps anything must
// copy it (Passport.String, Passport.Stamps).
type Record struct {
	ID       string
	Listener string
	Method   string
	Host     string
	Path     string
	Proto    int
	ClientIP string
	Route    string
	Service  string
	Endpoint string
	// Status is the status sent (or, for client_gone, 499).
	Status  int
	Outcome failure.Kind
	// Err explains a failure: which limit, which knob, which endpoint.
	Err      string
	BytesIn  int64 // request body bytes read from the client
	BytesOut int64 // response body bytes written to the client
	Attempts int
	// HookFailures are the hook calls that failed during the request, in
	// order (the first hook.MaxFailures; HookFailureCount counts them all):
	// one whose policy was closed ended the request (outcome hook_failed),
	// the others let it go on, its outcome unchanged. Their HOOK_EXIT
	// stamps say the same (see package hook).
	HookFailures     []*hook.Failure
	HookFailureCount int
	Passport         *passport.Passport
	// Trace is the request's trace context; zero when tracing is off.
	Trace traceparent.Context
}

// Observer receives finished requests. Observe runs on the request's
// goroutine after the response is complete: it must not block.
type Observer interface {
	Observe(r *Record)
}

// ObserverFunc adapts a function to Observer.
type ObserverFunc func(*Record)

// Observe calls f(r).
func (f ObserverFunc) Observe(r *Record) { f(r) }
