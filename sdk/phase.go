package sdk

import (
	"fmt"
	"strings"
)

// Phase is one hook point of the request state machine. Phases run in the
// order of their values.
type Phase uint8

// The hook phases, in the order a request passes them.
const (
	// PhaseValidate allows or rejects a request and may attach labels.
	PhaseValidate Phase = iota
	// PhaseShape assigns a priority tier, a rate-limit key and a cost, or rejects.
	PhaseShape
	// PhaseRoute picks the service, rewrites the path and edits request headers.
	PhaseRoute
	// PhaseRespond edits the response headers.
	PhaseRespond
	// PhaseObserve sees the finished request; it cannot change or delay it.
	PhaseObserve

	numPhases = iota
)

var phaseNames = [numPhases]string{"validate", "shape", "route", "respond", "observe"}

// Phases lists every phase in the order a request passes them.
var Phases = [numPhases]Phase{PhaseValidate, PhaseShape, PhaseRoute, PhaseRespond, PhaseObserve}

// String returns the phase's lower-case name, as used in configuration and
// as the name of the JavaScript phase function ("validate", "shape", ...).
func (p Phase) String() string {
	if p < numPhases {
		return phaseNames[p]
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// Valid reports whether p is one of the defined phases.
func (p Phase) Valid() bool { return p < numPhases }

// ParsePhase returns the phase named s (case-insensitive, surrounding space
// ignored), or an error listing the valid names.
func ParsePhase(s string) (Phase, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for i, n := range phaseNames {
		if n == t {
			return Phase(i), nil
		}
	}
	return 0, fmt.Errorf("sdk: unknown phase %q (want one of %s)", s, strings.Join(phaseNames[:], ", "))
}

// PhaseSet is a set of phases, one bit per Phase. The zero value is empty.
type PhaseSet uint8

// AllPhases holds every phase.
const AllPhases PhaseSet = 1<<numPhases - 1

// PhaseSetOf returns the set holding the given phases.
func PhaseSetOf(phases ...Phase) PhaseSet {
	var s PhaseSet
	for _, p := range phases {
		s = s.With(p)
	}
	return s
}

// Has reports whether p is in the set.
func (s PhaseSet) Has(p Phase) bool { return p < numPhases && s&(1<<p) != 0 }

// With returns the set with p added. An invalid phase is ignored.
func (s PhaseSet) With(p Phase) PhaseSet {
	if p >= numPhases {
		return s
	}
	return s | 1<<p
}

// Empty reports whether the set holds no phase.
func (s PhaseSet) Empty() bool { return s&AllPhases == 0 }

// List returns the phases in the set, in phase order.
func (s PhaseSet) List() []Phase {
	var out []Phase
	for _, p := range Phases {
		if s.Has(p) {
			out = append(out, p)
		}
	}
	return out
}

// String returns the phase names joined by "|" in phase order, e.g.
// "validate|route", or "none" for the empty set.
func (s PhaseSet) String() string {
	if s.Empty() {
		return "none"
	}
	var b strings.Builder
	for _, p := range Phases {
		if s.Has(p) {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(p.String())
		}
	}
	return b.String()
}

// PhaseReporter is implemented by hooks whose phase set is only known at run
// time, such as scripts (which implement every phase interface in Go but
// define only some phase functions): the runner calls only the phases
// reported, and PhasesOf trusts the report over the interfaces.
type PhaseReporter interface {
	// Phases returns the phases the hook takes part in. It must not change
	// over the hook's lifetime.
	Phases() PhaseSet
}

// PhasesOf returns the phases impl takes part in: the phase interfaces it
// implements, found by type assertion, narrowed to its own report when it is
// a PhaseReporter (a reported phase whose interface is missing is dropped).
// The core calls it once, when a hook is bound.
func PhasesOf(impl any) PhaseSet {
	var s PhaseSet
	if _, ok := impl.(Validator); ok {
		s = s.With(PhaseValidate)
	}
	if _, ok := impl.(Shaper); ok {
		s = s.With(PhaseShape)
	}
	if _, ok := impl.(Router); ok {
		s = s.With(PhaseRoute)
	}
	if _, ok := impl.(Responder); ok {
		s = s.With(PhaseRespond)
	}
	if _, ok := impl.(Observer); ok {
		s = s.With(PhaseObserve)
	}
	if r, ok := impl.(PhaseReporter); ok {
		s &= r.Phases()
	}
	return s
}
