package machine

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
)

// State is a request state; see package passport for the names.
type State = passport.State

// Edges lists every legal state change. FAILED is reachable from every
// non-terminal state and is added by init.
var Edges = map[State][]State{
	passport.Accepted:       {passport.HeadersRead},
	passport.HeadersRead:    {passport.Validated},
	passport.Validated:      {passport.Shaped},
	passport.Shaped:         {passport.Queued, passport.Admitted},
	passport.Queued:         {passport.Admitted},
	passport.Admitted:       {passport.Routed},
	passport.Routed:         {passport.EndpointPicked},
	passport.EndpointPicked: {passport.ConnAcquired, passport.AttemptFailed},
	passport.ConnAcquired:   {passport.ReqHeadersSent, passport.AttemptFailed},
	passport.ReqHeadersSent: {passport.RespHeadersReceived, passport.AttemptFailed},
	passport.AttemptFailed:  {passport.EndpointPicked},
	// A 502/503/504 answer may be discarded for a retry before anything of
	// it reached the client.
	passport.RespHeadersReceived: {passport.Responded, passport.Upgraded, passport.AttemptFailed},
	passport.Responded:           {passport.RespBodySent},
	passport.RespBodySent:        {passport.Done},
	passport.Upgraded:            {passport.Done},
}

// hookStates are the states in which hooks run (and may stamp enter/exit).
var hookStates = []State{passport.HeadersRead, passport.Validated, passport.Admitted, passport.RespHeadersReceived}

// bodyStates are the states in which the concurrent upload may finish.
var bodyStates = []State{passport.ReqHeadersSent, passport.RespHeadersReceived, passport.Responded,
	passport.RespBodySent, passport.Upgraded, passport.AttemptFailed}

var (
	legal     [passport.NumStates]uint32 // bit t set in legal[s]: s → t allowed
	hookOK    [passport.NumStates]bool
	bodyOK    [passport.NumStates]bool
	terminals = [passport.NumStates]bool{passport.Done: true, passport.Failed: true}
)

func init() {
	if passport.NumStates > 32 {
		panic("machine: transition bit set too small")
	}
	for from, tos := range Edges {
		for _, to := range tos {
			legal[from] |= 1 << to
		}
	}
	for s := passport.Accepted; s < passport.NumStates; s++ {
		if !terminals[s] && s != passport.HookEnter && s != passport.HookExit && s != passport.ReqBodySent {
			legal[s] |= 1 << passport.Failed
		}
	}
	for _, s := range hookStates {
		hookOK[s] = true
	}
	for _, s := range bodyStates {
		bodyOK[s] = true
	}
}

// Legal reports whether from → to is a legal transition.
func Legal(from, to State) bool {
	return from < passport.NumStates && to < passport.NumStates && legal[from]&(1<<to) != 0
}

// Terminal reports whether s ends a request.
func Terminal(s State) bool { return s < passport.NumStates && terminals[s] }

// strict makes illegal transitions panic; it is on in test binaries.
var strict = testing.Testing()

// Machine is one request's state machine. It owns the request's passport:
// every transition and event is stamped through it. A Machine is driven by
// one goroutine.
type Machine struct {
	P     *passport.Passport
	state State
	// Outcome is set when the machine reaches a terminal state.
	Outcome failure.Kind
	// bug records the first illegal transition attempted in production.
	bug error
}

// Start resets m for a new request on passport p, in state ACCEPTED stamped
// at offset 0 (when the request's first byte arrived).
func (m *Machine) Start(p *passport.Passport) {
	m.P = p
	m.state = passport.Accepted
	m.Outcome = failure.Success
	m.bug = nil
	p.StampAt(passport.Accepted, 0, "")
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Bug returns the illegal transition this request attempted, if any.
func (m *Machine) Bug() error { return m.bug }

func (m *Machine) illegal(what string, to State) bool {
	err := fmt.Errorf("machine: invalid %s [%s -> %s]", what, m.state, to)
	if strict {
		panic(err)
	}
	if m.bug == nil {
		m.bug = err
	}
	return false
}

// To moves to state s and stamps it. An illegal transition panics in tests;
// in production it returns false and the caller fails the request as
// internal (see Bug).
func (m *Machine) To(s State) bool {
	if !Legal(m.state, s) || s == passport.Failed {
		return m.illegal("transition", s)
	}
	m.state = s
	m.P.Stamp(s)
	return true
}

// ToNote is To with a note on the stamp (the endpoint, the attempt error).
func (m *Machine) ToNote(s State, note string) bool {
	if !Legal(m.state, s) || s == passport.Failed {
		return m.illegal("transition", s)
	}
	m.state = s
	m.P.StampNote(s, note)
	return true
}

// ToAt is ToNote for a transition measured elsewhere at offset off (by a
// transport's trace callbacks); the stamp is inserted in offset order.
func (m *Machine) ToAt(s State, off time.Duration, note string) bool {
	if !Legal(m.state, s) || s == passport.Failed {
		return m.illegal("transition", s)
	}
	m.state = s
	m.P.StampAt(s, off, note)
	return true
}

// Fail ends the request with outcome k. Failing an ended request is a bug.
func (m *Machine) Fail(k failure.Kind) {
	if Terminal(m.state) {
		m.illegal("transition", passport.Failed)
		return
	}
	if m.bug != nil {
		k = failure.Internal
	}
	m.state = passport.Failed
	m.Outcome = k
	m.P.StampNote(passport.Failed, k.String())
}

// Hook stamps a hook's enter (enter=true) or exit; label is "phase:name@version".
func (m *Machine) Hook(enter bool, label string) {
	if !hookOK[m.state] {
		m.illegal("hook stamp in state", passport.HookEnter)
		return
	}
	s := passport.HookExit
	if enter {
		s = passport.HookEnter
	}
	m.P.StampNote(s, label)
}

// BodySent stamps the end of the request body upload, measured at off by
// the goroutine that streamed it.
func (m *Machine) BodySent(off time.Duration) {
	if !bodyOK[m.state] && !Terminal(m.state) {
		m.illegal("body event in state", passport.ReqBodySent)
		return
	}
	m.P.StampAt(passport.ReqBodySent, off, "")
}
