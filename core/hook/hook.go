// Package hook runs extension hooks of any kind (compiled-in Go, JavaScript,
// go-plugin) under the core's bounds. A Binding ties a hook to the phases it
// runs in, with a time budget, a concurrency limit and a failure policy; a
// Chain is a route's bindings in order. Each call gets min(budget, time left
// in the request), is stamped in the passport with the hook's name and
// version, and its decision is validated before the core acts on it. A hook
// that errors, panics, overruns, is over its concurrency limit or returns an
// invalid decision follows its binding's failure policy, is counted (per
// binding and version), is marked in the passport and in the request's
// record, and never takes the gateway down.
//
// A call's HOOK_EXIT note is its label ("validate:auth@1a2b"); a call that
// failed adds how it failed and the policy that applied,
// ",failed=KIND,policy=open|closed"; an out-of-process call ends in "+wait"
// (always last, after the failure fields):
//
//	HOOK_EXIT(validate:auth@1a2b)
//	HOOK_EXIT(validate:auth@1a2b,failed=timeout,policy=open)
//	HOOK_EXIT(validate:auth@1a2b,failed=overloaded,policy=closed+wait)
//
// A call refused over its concurrency limit never starts: its HOOK_ENTER and
// HOOK_EXIT are stamped together. ParseExit reads a note back.
package hook

import (
	"fmt"
	"strings"
	"sync"
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
	// someone else, not as gateway overhead. Set it before the version is
	// published (its exit notes are built once, from its first call on).
	Wait   bool
	labels [numPhases]string
	notes  atomic.Pointer[exitNotes]
}

// exitNotes are a version's HOOK_EXIT notes, built once so that stamping a
// call's exit allocates nothing, whatever its result.
type exitNotes struct {
	ok     [numPhases]string
	failed [numPhases][numFailureKinds][2]string // [phase][kind][open]
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

// exitNotes returns the version's exit notes, building them on first use.
func (v *Version) exitNotes() *exitNotes {
	if n := v.notes.Load(); n != nil {
		return n
	}
	n := &exitNotes{}
	wait := ""
	if v.Wait {
		wait = waitMarker
	}
	for p := range numPhases {
		n.ok[p] = v.labels[p] + wait
		for k := range numFailureKinds {
			for open := range 2 {
				n.failed[p][k][open] = v.labels[p] + failedField + failureNames[k] + policyField + policyNames[open] + wait
			}
		}
	}
	v.notes.CompareAndSwap(nil, n)
	return v.notes.Load()
}

// exitNote is the HOOK_EXIT note of a call in phase p: its label, how it
// failed and the policy that applied when f is set, and the wait marker.
func (v *Version) exitNote(p sdk.Phase, f *Failure) string {
	n := v.exitNotes()
	if f == nil {
		return n.ok[p]
	}
	open := 0
	if f.Policy == PolicyOpen {
		open = 1
	}
	return n.failed[p][f.Kind][open]
}

// The parts of a HOOK_EXIT note after the label.
const (
	failedField = ",failed="
	policyField = ",policy="
	waitMarker  = "+wait"
)

// Exit is what a HOOK_EXIT note says.
type Exit struct {
	// Label is "phase:hook@version".
	Label string
	// Phase, Hook and Version are the label's parts.
	Phase, Hook, Version string
	// Failed is set for a failed call; Kind names how it failed (a
	// FailureKind's name) and Policy the policy applied ("open", "closed").
	Failed       bool
	Kind, Policy string
	// Wait marks an out-of-process call.
	Wait bool
}

// ParseExit reads a HOOK_EXIT note. It allocates nothing: the strings are
// parts of note.
func ParseExit(note string) Exit {
	var e Exit
	note, e.Wait = strings.CutSuffix(note, waitMarker)
	if i := strings.LastIndex(note, failedField); i >= 0 {
		e.Failed = true
		rest := note[i+len(failedField):]
		note = note[:i]
		e.Kind, e.Policy, _ = strings.Cut(rest, policyField)
	}
	e.Label = note
	e.Phase, e.Hook, _ = strings.Cut(note, ":")
	if i := strings.LastIndexByte(e.Hook, '@'); i >= 0 {
		e.Hook, e.Version = e.Hook[:i], e.Hook[i+1:]
	}
	return e
}

// ExitFailed reports whether a HOOK_EXIT note is that of a failed call.
func ExitFailed(note string) bool { return strings.Contains(note, failedField) }

// Source gives the current version of a hook; scripts and plugins swap
// versions on reload.
type Source interface {
	Current() *Version
}

// Static is a Source whose version never changes (compiled-in Go hooks).
type Static struct{ V *Version }

// Current returns the one version.
func (s Static) Current() *Version { return s.V }

// The failure policies, as the passport, the access log and the failure
// log name them. A respond or observe hook's failure always goes on (open):
// the response is already decided.
const (
	PolicyOpen   = "open"
	PolicyClosed = "closed"
)

var policyNames = [2]string{PolicyClosed, PolicyOpen}

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
	// FailError: the hook returned an error (a script's exception, a
	// plugin's error).
	FailError FailureKind = iota
	// FailPanic: the hook panicked.
	FailPanic
	// FailTimeout: the call's budget (or the request's deadline) passed first.
	FailTimeout
	// FailInvalid: the decision broke the core's rules, or an
	// out-of-process hook answered with something that is not a decision.
	FailInvalid
	// FailOverloaded: the binding's max_concurrent, or the plugin's, was reached.
	FailOverloaded
	// FailUnavailable: the hook's process is down or restarting.
	FailUnavailable
	numFailureKinds
)

var failureNames = [numFailureKinds]string{"error", "panic", "timeout", "invalid", "overloaded", "unavailable"}

func (k FailureKind) String() string {
	if k < numFailureKinds {
		return failureNames[k]
	}
	return "error"
}

// FailureKinds lists the kinds, for metrics.
func FailureKinds() []FailureKind {
	out := make([]FailureKind, numFailureKinds)
	for i := range out {
		out[i] = FailureKind(i)
	}
	return out
}

// ErrorKinds classifies a hook's error: the kind of failure err stands for,
// and ok=false when it does not know err. Hosts of out-of-process and
// script hooks have error types of their own (a plugin host's overload, a
// plugin that is down); the program registers how they map with
// RegisterErrorKinds, so that core/hook needs to import none of them.
type ErrorKinds func(err error) (k FailureKind, ok bool)

var errorKinds []ErrorKinds

// RegisterErrorKinds adds a classifier of hook errors. Call it from an init
// function: classifiers are read without a lock. An error no classifier
// knows is FailError (FailTimeout when the call's deadline had passed).
func RegisterErrorKinds(f ErrorKinds) { errorKinds = append(errorKinds, f) }

// kindOf classifies an error a hook call returned before its deadline.
func kindOf(err error) FailureKind {
	for _, f := range errorKinds {
		if k, ok := f(err); ok && k < numFailureKinds {
			return k
		}
	}
	return FailError
}

// Stats are a binding's counters for one version of its hook.
type Stats struct {
	Calls    atomic.Int64
	Failures [numFailureKinds]atomic.Int64
	Nanos    atomic.Int64 // total time in calls
}

// Counts are Stats read at one time.
type Counts struct {
	Calls    int64
	Failures [numFailureKinds]int64
	Nanos    int64
}

// Load reads the counters.
func (s *Stats) Load() Counts {
	c := Counts{Calls: s.Calls.Load(), Nanos: s.Nanos.Load()}
	for k := range s.Failures {
		c.Failures[k] = s.Failures[k].Load()
	}
	return c
}

// Failed is the number of failed calls, all kinds.
func (c Counts) Failed() int64 {
	var n int64
	for _, f := range c.Failures {
		n += f
	}
	return n
}

// MaxVersions bounds the versions of its hook whose counters a binding
// keeps: the current version and the last ones before it. When one more
// version runs, the oldest one that is not current is forgotten (its
// Prometheus series end; a version that runs again later starts from zero).
const MaxVersions = 4

// VersionStats are a binding's counters for calls to one version.
type VersionStats struct {
	Version string // the version's ID
	Stats
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
	// versions are the counters per version, newest first (at most
	// MaxVersions); replaced as a whole under vmu, read without it.
	versions atomic.Pointer[[]*VersionStats]
	vmu      sync.Mutex
	logs     logLimiter
}

// stats returns the counters of version v, adding them when v is new.
func (b *Binding) stats(v *Version) *Stats {
	if t := b.versions.Load(); t != nil {
		for _, vs := range *t {
			if vs.Version == v.ID {
				return &vs.Stats
			}
		}
	}
	return b.addVersion(v.ID)
}

// addVersion adds counters for version id (or returns those a concurrent
// call added), forgetting the oldest version that is not current when
// MaxVersions are kept.
func (b *Binding) addVersion(id string) *Stats {
	b.vmu.Lock()
	defer b.vmu.Unlock()
	var old []*VersionStats
	if t := b.versions.Load(); t != nil {
		old = *t
	}
	for _, vs := range old {
		if vs.Version == id {
			return &vs.Stats
		}
	}
	vs := &VersionStats{Version: id}
	next := make([]*VersionStats, 0, min(len(old)+1, MaxVersions))
	next = append(next, vs)
	drop := -1
	if len(old)+1 > MaxVersions {
		cur := ""
		if b.Source != nil {
			if c := b.Source.Current(); c != nil {
				cur = c.ID
			}
		}
		drop = len(old) - 1
		for i := len(old) - 1; i >= 0; i-- {
			if old[i].Version != cur {
				drop = i
				break
			}
		}
	}
	for i, o := range old {
		if i != drop {
			next = append(next, o)
		}
	}
	b.versions.Store(&next)
	return &vs.Stats
}

// Versions returns the binding's counters per version, newest first; the
// current version is always among them (with zero counters before its
// first call), so that its series exist from the moment it serves.
func (b *Binding) Versions() []*VersionStats {
	if b.Source != nil {
		if cur := b.Source.Current(); cur != nil {
			b.stats(cur)
		}
	}
	if t := b.versions.Load(); t != nil {
		return *t
	}
	return nil
}

// Totals adds up the counters of the versions the binding keeps.
func (b *Binding) Totals() Counts {
	var c Counts
	if t := b.versions.Load(); t != nil {
		for _, vs := range *t {
			n := vs.Load()
			c.Calls += n.Calls
			c.Nanos += n.Nanos
			for k := range c.Failures {
				c.Failures[k] += n.Failures[k]
			}
		}
	}
	return c
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
	// Policy is the failure policy that applied: PolicyOpen (the request
	// went on) or PolicyClosed (it was answered with the binding's status).
	Policy string
	Err    error
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
