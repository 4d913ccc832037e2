package machine

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
)

type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time { c.t = c.t.Add(time.Microsecond); return c.t }

func newMachine() *Machine {
	c := &stepClock{t: time.Unix(0, 0)}
	m := &Machine{}
	m.Start(passport.New(c))
	return m
}

func TestTransitionTable(t *testing.T) {
	P := passport.Accepted
	cases := []struct {
		from, to State
		ok       bool
	}{
		{P, passport.HeadersRead, true},
		{P, passport.Validated, false},
		{passport.HeadersRead, passport.Validated, true},
		{passport.Shaped, passport.Queued, true},
		{passport.Shaped, passport.Admitted, true},
		{passport.Queued, passport.Routed, false},
		{passport.Admitted, passport.Routed, true},
		{passport.EndpointPicked, passport.ConnAcquired, true},
		{passport.EndpointPicked, passport.AttemptFailed, true},
		{passport.AttemptFailed, passport.EndpointPicked, true},
		{passport.ReqHeadersSent, passport.RespHeadersReceived, true},
		{passport.RespHeadersReceived, passport.Upgraded, true},
		{passport.RespHeadersReceived, passport.AttemptFailed, true}, // a 503 discarded for a retry
		{passport.Responded, passport.ReqHeadersSent, false},
		{passport.Responded, passport.AttemptFailed, false}, // never retry after response bytes reached the client
		{passport.RespBodySent, passport.Done, true},
		{passport.Done, passport.Failed, false},
		{passport.Failed, passport.Done, false},
		{passport.Routed, passport.Failed, true},
		{passport.Responded, passport.Failed, true},
	}
	for _, c := range cases {
		if got := Legal(c.from, c.to); got != c.ok {
			t.Errorf("Legal(%s -> %s) = %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}

func TestHappyPathTimeline(t *testing.T) {
	m := newMachine()
	for _, s := range []State{passport.HeadersRead} {
		m.To(s)
	}
	m.Hook(true, "validate:auth@1")
	m.Hook(false, "validate:auth@1")
	for _, s := range []State{passport.Validated, passport.Shaped, passport.Admitted, passport.Routed} {
		m.To(s)
	}
	m.ToNote(passport.EndpointPicked, "127.0.0.1:9001")
	m.ToNote(passport.ConnAcquired, "reused")
	m.To(passport.ReqHeadersSent)
	m.To(passport.RespHeadersReceived)
	m.BodySent(m.P.Now())
	m.To(passport.Responded)
	m.To(passport.RespBodySent)
	m.To(passport.Done)
	const want = "+0.000ms=ACCEPTED +0.001ms=HEADERS_READ +0.002ms=HOOK_ENTER(validate:auth@1) +0.003ms=HOOK_EXIT(validate:auth@1) " +
		"+0.004ms=VALIDATED +0.005ms=SHAPED +0.006ms=ADMITTED +0.007ms=ROUTED +0.008ms=ENDPOINT_PICKED(127.0.0.1:9001) " +
		"+0.009ms=CONN_ACQUIRED(reused) +0.010ms=REQ_HEADERS_SENT +0.011ms=RESP_HEADERS_RECEIVED +0.012ms=REQ_BODY_SENT " +
		"+0.013ms=RESPONDED +0.014ms=RESP_BODY_SENT +0.015ms=DONE"
	if got := m.P.String(); got != want {
		t.Fatalf("timeline\n got %s\nwant %s", got, want)
	}
	if m.Outcome != failure.Success || !Terminal(m.State()) {
		t.Fatalf("outcome %s state %s", m.Outcome, m.State())
	}
}

func TestFailureExit(t *testing.T) {
	m := newMachine()
	m.To(passport.HeadersRead)
	m.Fail(failure.NoRoute)
	if m.State() != passport.Failed || m.Outcome != failure.NoRoute {
		t.Fatalf("state %s outcome %s", m.State(), m.Outcome)
	}
	if !strings.HasSuffix(m.P.String(), "=FAILED(no_route)") {
		t.Fatalf("passport %s", m.P)
	}
}

func TestIllegalTransitionPanicsInTests(t *testing.T) {
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(error).Error(), "invalid transition [ACCEPTED -> ROUTED]") {
			t.Fatalf("recover() = %v", r)
		}
	}()
	m := newMachine()
	m.To(passport.Routed)
}

func TestIllegalTransitionInProductionFailsInternal(t *testing.T) {
	strict = false
	defer func() { strict = true }()
	m := newMachine()
	if m.To(passport.Routed) {
		t.Fatal("illegal transition reported success")
	}
	if m.Bug() == nil || m.State() != passport.Accepted {
		t.Fatalf("bug %v state %s", m.Bug(), m.State())
	}
	m.Fail(failure.NoRoute)
	if m.Outcome != failure.Internal {
		t.Fatalf("outcome after a bug = %s, want internal", m.Outcome)
	}
	m.Fail(failure.Internal) // failing twice is a bug too, but must not panic in production
}

func TestEveryStateReachableFromAccepted(t *testing.T) {
	seen := map[State]bool{passport.Accepted: true}
	queue := []State{passport.Accepted}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for to := passport.Accepted; to < passport.NumStates; to++ {
			if Legal(s, to) && !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	for s := passport.Accepted; s < passport.NumStates; s++ {
		if s == passport.HookEnter || s == passport.HookExit || s == passport.ReqBodySent {
			continue
		}
		if !seen[s] {
			t.Errorf("state %s unreachable", s)
		}
	}
}
