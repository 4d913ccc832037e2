package hook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/sdk"
)

// hostOverloaded stands for a hook host's own error type (a plugin host
// over its max_concurrent): a registered classifier maps it.
type hostOverloaded struct{}

func (hostOverloaded) Error() string { return "host over its bound on calls in flight" }

func init() {
	RegisterErrorKinds(func(err error) (FailureKind, bool) {
		if errors.As(err, new(hostOverloaded)) {
			return FailOverloaded, true
		}
		return 0, false
	})
}

type responder struct {
	f func(context.Context, *sdk.Response) (sdk.RespondDecision, error)
}

func (r responder) Respond(ctx context.Context, _ *sdk.Request, resp *sdk.Response) (sdk.RespondDecision, error) {
	return r.f(ctx, resp)
}

// TestFailedCallIsStamped: the HOOK_EXIT of a failed call says how it
// failed and the policy applied, the out-of-process marker stays last, and
// the failure is in the request's snapshot with the same policy.
func TestFailedCallIsStamped(t *testing.T) {
	cases := []struct {
		name string
		impl sdk.Validator
		kind string
	}{
		{"error", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{}, errors.New("boom")
		}}, "error"},
		{"panic", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) { panic("oops") }}, "panic"},
		{"timeout", fn{validate: func(ctx context.Context, _ *sdk.Request) (sdk.ValidateDecision, error) {
			<-ctx.Done()
			return sdk.ValidateDecision{}, nil
		}}, "timeout"},
		{"invalid", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 999}}, nil
		}}, "invalid"},
		{"host", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{}, fmt.Errorf("call: %w", hostOverloaded{})
		}}, "overloaded"},
	}
	for _, c := range cases {
		for _, open := range []bool{true, false} {
			for _, wait := range []bool{false, true} {
				b := bind("h", c.impl, open)
				b.Source.(Static).V.Wait = wait
				ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
				var s Snapshot
				ch.Begin(&s)
				st := &stamps{}
				ch.Validate(context.Background(), &s, st, &sdk.Request{ID: "r1"}, time.Now().Add(time.Second))
				policy := map[bool]string{true: "open", false: "closed"}[open]
				want := "exit validate:h@v1,failed=" + c.kind + ",policy=" + policy
				if wait {
					want += "+wait"
				}
				if len(st.got) != 2 || st.got[0] != "enter validate:h@v1" || st.got[1] != want {
					t.Errorf("%s open=%v wait=%v: stamps %q, want enter, then %q", c.name, open, wait, st.got, want)
				}
				fs := s.Failures()
				if len(fs) != 1 || fs[0].Kind.String() != c.kind || fs[0].Policy != policy || fs[0].Phase != sdk.PhaseValidate || s.FailureCount() != 1 {
					t.Errorf("%s open=%v: snapshot failures %+v", c.name, open, fs)
				}
				x := ParseExit(strings.TrimPrefix(st.got[1], "exit "))
				if !x.Failed || x.Kind != c.kind || x.Policy != policy || x.Wait != wait || x.Label != "validate:h@v1" ||
					x.Phase != "validate" || x.Hook != "h" || x.Version != "v1" {
					t.Errorf("%s: ParseExit = %+v", c.name, x)
				}
				if got := b.Totals().Failures; got[fs[0].Kind] != 1 {
					t.Errorf("%s: counted %v", c.name, got)
				}
			}
		}
	}
}

// TestSucceededCallIsNotMarked: a call that succeeds keeps the plain label
// (and the wait marker), and leaves the snapshot empty.
func TestSucceededCallIsNotMarked(t *testing.T) {
	ok := fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) { return sdk.ValidateDecision{}, nil }}
	b := bind("h", ok, true)
	b.Source.(Static).V.Wait = true
	ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
	var s Snapshot
	ch.Begin(&s)
	st := &stamps{}
	ch.Validate(context.Background(), &s, st, &sdk.Request{}, time.Now().Add(time.Second))
	if got := strings.Join(st.got, ","); got != "enter validate:h@v1,exit validate:h@v1+wait" {
		t.Fatalf("stamps %s", got)
	}
	if x := ParseExit("validate:h@v1+wait"); x.Failed || !x.Wait || x.Label != "validate:h@v1" || ExitFailed("validate:h@v1+wait") {
		t.Fatalf("ParseExit = %+v", x)
	}
	if len(s.Failures()) != 0 {
		t.Fatalf("failures %+v", s.Failures())
	}
	if a := testing.AllocsPerRun(100, func() { v := b.Source.Current(); _ = v.exitNote(sdk.PhaseValidate, &Failure{Kind: FailTimeout}) }); a != 0 {
		t.Fatalf("an exit note costs %v allocations", a)
	}
}

// TestOverloadedCallIsStamped: a call refused over max_concurrent never
// starts, but the passport still shows it, failed as overloaded.
func TestOverloadedCallIsStamped(t *testing.T) {
	b := bind("h", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
		t.Error("called over the limit")
		return sdk.ValidateDecision{}, nil
	}}, true)
	b.MaxConcurrent = 0
	ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
	v, st := run(ch, &sdk.Request{})
	if v != nil {
		t.Fatalf("open: verdict %+v", v)
	}
	if got := strings.Join(st.got, ","); got != "enter validate:h@v1,exit validate:h@v1,failed=overloaded,policy=open" {
		t.Fatalf("stamps %s", got)
	}
}

// TestRespondFailureIsRecorded: a failing respond hook leaves the headers
// as they are (the response is decided: policy open, whatever the binding
// says), and the failure is stamped and recorded like any other.
func TestRespondFailureIsRecorded(t *testing.T) {
	b := bind("r", responder{f: func(context.Context, *sdk.Response) (sdk.RespondDecision, error) {
		return sdk.RespondDecision{SetHeader: map[string]string{"X-A": "1"}}, errors.New("respond broke")
	}}, false)
	ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
	var s Snapshot
	ch.Begin(&s)
	st := &stamps{}
	applied := false
	ch.Respond(context.Background(), &s, st, &sdk.Request{}, &sdk.Response{Status: 200, Header: sdk.Header{}}, time.Now().Add(time.Second),
		func(map[string]string, []string) { applied = true })
	if applied {
		t.Fatal("a failed respond hook's edits were applied")
	}
	if got := strings.Join(st.got, ","); got != "enter respond:r@v1,exit respond:r@v1,failed=error,policy=open" {
		t.Fatalf("stamps %s", got)
	}
	if fs := s.Failures(); len(fs) != 1 || fs[0].Phase != sdk.PhaseRespond || fs[0].Policy != PolicyOpen || fs[0].Err.Error() != "respond broke" {
		t.Fatalf("failures %+v", fs)
	}
	// The next request starts without them.
	ch.Begin(&s)
	if s.FailureCount() != 0 || len(s.Failures()) != 0 {
		t.Fatalf("failures after Begin: %d", s.FailureCount())
	}
}

// TestSnapshotBoundsFailures: a request lists at most MaxFailures failed
// calls and counts them all.
func TestSnapshotBoundsFailures(t *testing.T) {
	var bs []*Binding
	for i := 0; i < MaxFailures+3; i++ {
		bs = append(bs, bind(fmt.Sprint("h", i), fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{}, errors.New("boom")
		}}, true))
	}
	ch := &Chain{Bindings: bs, Log: zerolog.Nop()}
	var s Snapshot
	ch.Begin(&s)
	ch.Validate(context.Background(), &s, &stamps{}, &sdk.Request{}, time.Now().Add(time.Second))
	if len(s.Failures()) != MaxFailures || s.FailureCount() != MaxFailures+3 || s.Failures()[0].Hook != "h0" {
		t.Fatalf("%d listed, %d counted", len(s.Failures()), s.FailureCount())
	}
}

// TestCountersPerVersion: calls and failures are counted under the version
// that ran them, not the one current when they are read; the current
// version has counters before its first call; at most MaxVersions are kept,
// the current one always among them.
func TestCountersPerVersion(t *testing.T) {
	mk := func(id string, fail bool) *Version {
		return NewVersion("h", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			if fail {
				return sdk.ValidateDecision{}, errors.New("broken")
			}
			return sdk.ValidateDecision{}, nil
		}}, id)
	}
	src := &swapSource{v: mk("old", true)}
	b := &Binding{Name: "h", Source: src, Budget: time.Second, MaxConcurrent: 4, Policy: Policy{Open: true}}
	ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
	call := func() { run(ch, &sdk.Request{}) }
	for i := 0; i < 5; i++ {
		call()
	}
	src.mu.Lock()
	src.v = mk("new", false) // fixed
	src.mu.Unlock()
	counts := func() map[string]Counts {
		out := map[string]Counts{}
		for _, vs := range b.Versions() {
			out[vs.Version] = vs.Load()
		}
		return out
	}
	got := counts()
	if o, n := got["old"], got["new"]; o.Calls != 5 || o.Failures[FailError] != 5 || n.Calls != 0 || n.Failed() != 0 || len(got) != 2 {
		t.Fatalf("before any call to the new version: %+v", got)
	}
	if vs := b.Versions(); vs[0].Version != "new" {
		t.Fatalf("versions not newest first: %s, ...", vs[0].Version)
	}
	call()
	call()
	got = counts()
	if o, n := got["old"], got["new"]; o.Calls != 5 || o.Failed() != 5 || n.Calls != 2 || n.Failed() != 0 {
		t.Fatalf("after two calls to the new version: %+v", got)
	}
	if tot := b.Totals(); tot.Calls != 7 || tot.Failed() != 5 {
		t.Fatalf("totals %+v", tot)
	}
	// A request that began on the old version finishes on it, and counts there.
	var s Snapshot
	src.mu.Lock()
	src.v = mk("old", true)
	src.mu.Unlock()
	ch.Begin(&s)
	src.mu.Lock()
	src.v = mk("new", false)
	src.mu.Unlock()
	ch.Validate(context.Background(), &s, &stamps{}, &sdk.Request{}, time.Now().Add(time.Second))
	if o := counts()["old"]; o.Calls != 6 || o.Failed() != 6 {
		t.Fatalf("in-flight request on the old version: %+v", o)
	}
	// Many versions: the oldest ones are forgotten, never the current one.
	for i := 0; i < 2*MaxVersions; i++ {
		src.mu.Lock()
		src.v = mk(fmt.Sprint("v", i), false)
		src.mu.Unlock()
		call()
	}
	src.mu.Lock()
	src.v = mk("v0", false) // an old version comes back as the current one
	src.mu.Unlock()
	vs := b.Versions()
	if len(vs) != MaxVersions {
		t.Fatalf("%d versions kept, want %d", len(vs), MaxVersions)
	}
	ids := []string{}
	for _, v := range vs {
		ids = append(ids, v.Version)
	}
	if want := fmt.Sprintf("v0 v%d v%d v%d", 2*MaxVersions-1, 2*MaxVersions-2, 2*MaxVersions-3); strings.Join(ids, " ") != want {
		t.Fatalf("versions kept %q, want %q", ids, want)
	}
	// A call of a version that is not current when the table is full
	// forgets the oldest that is not current.
	b.stats(mk("straggler", false))
	ids = ids[:0]
	for _, v := range b.Versions() {
		ids = append(ids, v.Version)
	}
	if want := fmt.Sprintf("straggler v0 v%d v%d", 2*MaxVersions-1, 2*MaxVersions-2); strings.Join(ids, " ") != want {
		t.Fatalf("versions kept %q, want %q", ids, want)
	}
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// TestFailedExitStillWaits: the time of a failed out-of-process call is
// waiting on someone else, like a successful one's: the failure fields come
// before the wait marker the passport's overhead looks for.
func TestFailedExitStillWaits(t *testing.T) {
	v := NewVersion("p", nil, "1")
	v.Wait = true
	for _, f := range []*Failure{nil, {Kind: FailTimeout, Policy: PolicyOpen}, {Kind: FailOverloaded, Policy: PolicyClosed}} {
		start := time.Unix(1000, 0)
		clk := &clock{t: start}
		p := passport.New(clk)
		clk.t = start.Add(time.Millisecond)
		p.StampNote(passport.HookEnter, v.Label(sdk.PhaseValidate))
		clk.t = start.Add(51 * time.Millisecond)
		p.StampNote(passport.HookExit, v.exitNote(sdk.PhaseValidate, f))
		clk.t = start.Add(52 * time.Millisecond)
		p.Stamp(passport.Validated)
		if w := p.Waiting(); w != 50*time.Millisecond {
			t.Errorf("%s: waiting %v, want the call's 50ms", p, w)
		}
	}
}
