// Package hook runs extension hooks of any kind (compiled-in Go, JavaScript,
// go-plugin) under the core's bounds. A Binding ties a hook to the phases it
// runs in, with a time budget, a concurrency limit and a failure policy; a
// Chain is a route's bindings in order. Each call gets min(budget, time left
// in the request), is stamped in the passport with the hook's name and
// version, and its decision is validated before the core acts on it. A hook
// that errors, panics, overruns, is over its concurrency limit or returns an
// invalid decision follows its binding's failure policy, is counted, and never
// takes the gateway down.
package hook

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// Version is one immutable version of a hook implementation. Requests take
// the versions of their chain once, at the start (Chain.Begin), and finish
// on them even if a newer version is swapped in meanwhile.
type Version struct {
	Impl   any
	ID     string
	Phases sdk.PhaseSet
	// Wait marks an out-of-process hook: its calls count as waiting on
	// someone else, not as gateway overhead.
	Wait   bool
	labels [numPhases]string
}

const numPhases = int(sdk.PhaseObserve) + 1

// NewVersion describes impl as version id of the hook called name.
func NewVersion(name string, impl any, id string) *Version {
	v := &Version{Impl: impl, ID: id, Phases: sdk.PhasesOf(impl)}
	for p := sdk.PhaseValidate; int(p) < numPhases; p++ {
		v.labels[p] = p.String() + ":" + name + "@" + id
	}
	return v
}

// Label is the passport note of a call in phase p ("validate:auth@1a2b3c").
func (v *Version) Label(p sdk.Phase) string { return v.labels[p] }

// Source gives the current version of a hook; scripts and plugins swap
// versions on reload.
type Source interface {
	Current() *Version
}

// Static is a Source whose version never changes (compiled-in Go hooks).
type Static struct{ V *Version }

// Current returns the one version.
func (s Static) Current() *Version { return s.V }

// Policy is what happens when a hook fails.
type Policy struct {
	// Open: the request goes on as if the hook had no opinion.
	Open bool
	// Status is the response status when closed (400..599).
	Status int
}

// FailureKind says how a hook call failed.
type FailureKind uint8

// Ways a hook call fails.
const (
	FailError FailureKind = iota
	FailPanic
	FailTimeout
	FailInvalid
	FailOverloaded
	numFailureKinds
)

var failureNames = [...]string{"error", "panic", "timeout", "invalid", "overloaded"}

func (k FailureKind) String() string { return failureNames[k] }

// FailureKinds lists the kinds, for metrics.
func FailureKinds() []FailureKind {
	return []FailureKind{FailError, FailPanic, FailTimeout, FailInvalid, FailOverloaded}
}

// Stats are a binding's counters.
type Stats struct {
	Calls    atomic.Int64
	Failures [numFailureKinds]atomic.Int64
	Nanos    atomic.Int64 // total time in calls
}

// Binding is a hook bound to a route (or to every route) with its bounds.
type Binding struct {
	// Name is the hook's name (script, Go hook or plugin).
	Name   string
	Source Source
	// Phases restricts the phases this binding runs (empty: all the hook has).
	Phases sdk.PhaseSet
	// Budget bounds each call; the request's time left bounds it further.
	Budget time.Duration
	// MaxConcurrent bounds calls in flight; over it a call fails as overloaded.
	MaxConcurrent int64
	Policy        Policy
	// BodyBytes is how much of the request body the hook sees (0: none).
	BodyBytes int64
	// AllowHost lets route decisions rewrite the Host header.
	AllowHost bool

	inflight atomic.Int64
	Stats    Stats
	logs     logLimiter
}

// runs reports whether the binding runs phase p for version v.
func (b *Binding) runs(v *Version, p sdk.Phase) bool {
	return v != nil && v.Phases.Has(p) && (b.Phases.Empty() || b.Phases.Has(p))
}

// Failure describes one failed call.
type Failure struct {
	Hook    string
	Version string
	Phase   sdk.Phase
	Kind    FailureKind
	Err     error
}

func (f *Failure) Error() string {
	return fmt.Sprintf("hook %q (version %s) %s: %s: %v", f.Hook, f.Version, f.Phase, f.Kind, f.Err)
}

// logLimiter lets one log line per second through per binding.
type logLimiter struct {
	last       atomic.Int64
	suppressed atomic.Int64
}

// allow reports whether to log now, and how many lines were suppressed since.
func (l *logLimiter) allow(now int64) (bool, int64) {
	last := l.last.Load()
	if now-last < int64(time.Second) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
