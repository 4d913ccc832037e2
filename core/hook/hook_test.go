package hook

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/sdk"
)

type stamps struct{ got []string }

func (s *stamps) Hook(enter bool, label string) {
	if enter {
		s.got = append(s.got, "enter "+label)
	} else {
		s.got = append(s.got, "exit "+label)
	}
}

// fn adapts functions to the phase interfaces.
type fn struct {
	validate func(context.Context, *sdk.Request) (sdk.ValidateDecision, error)
	route    func(context.Context, *sdk.Request) (sdk.RouteDecision, error)
}

func (f fn) Validate(ctx context.Context, r *sdk.Request) (sdk.ValidateDecision, error) {
	return f.validate(ctx, r)
}

type router struct {
	f func(context.Context, *sdk.Request) (sdk.RouteDecision, error)
}

func (r router) Route(ctx context.Context, q *sdk.Request) (sdk.RouteDecision, error) {
	return r.f(ctx, q)
}

func bind(name string, impl any, open bool) *Binding {
	return &Binding{Name: name, Source: Static{NewVersion(name, impl, "v1")}, Budget: 50 * time.Millisecond,
		MaxConcurrent: 8, Policy: Policy{Open: open, Status: 503}}
}

func run(c *Chain, req *sdk.Request) (*Verdict, *stamps) {
	var s Snapshot
	c.Begin(&s)
	st := &stamps{}
	return c.Validate(context.Background(), &s, st, req, time.Now().Add(time.Second)), st
}

func TestValidateRejectsAndLabels(t *testing.T) {
	auth, err := NewGo("require_header", map[string]any{"header": "Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	tag := fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
		return sdk.ValidateDecision{Labels: map[string]string{"user": "u1"}}, nil
	}}
	c := &Chain{Bindings: []*Binding{bind("tag", tag, false), bind("auth", auth, false)}, Log: zerolog.Nop()}
	req := &sdk.Request{Header: sdk.Header{}}
	v, st := run(c, req)
	if v == nil || v.Reject == nil || v.Reject.Status != 401 || v.Failure != nil {
		t.Fatalf("verdict %+v", v)
	}
	if req.Labels["user"] != "u1" {
		t.Fatalf("labels %v", req.Labels)
	}
	want := "enter validate:tag@v1,exit validate:tag@v1,enter validate:auth@v1,exit validate:auth@v1"
	if got := strings.Join(st.got, ","); got != want {
		t.Fatalf("stamps %s", got)
	}
	req = &sdk.Request{Header: sdk.Header{"Authorization": {"Bearer x"}}}
	if v, _ := run(c, req); v != nil {
		t.Fatalf("authorized request got %+v", v)
	}
}

func TestFailuresFollowPolicy(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	cases := []struct {
		name string
		impl sdk.Validator
		kind FailureKind
	}{
		{"error", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{}, errors.New("boom")
		}}, FailError},
		{"panic", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) { panic("oops") }}, FailPanic},
		{"timeout", fn{validate: func(ctx context.Context, _ *sdk.Request) (sdk.ValidateDecision, error) {
			<-ctx.Done()
			return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 403}}, nil // ignored: too late
		}}, FailTimeout},
		{"status 999", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 999}}, nil
		}}, FailInvalid},
		{"hop-by-hop header", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 403, Header: map[string]string{"Connection": "close"}}}, nil
		}}, FailInvalid},
	}
	for _, c := range cases {
		for _, open := range []bool{true, false} {
			b := bind(c.name, c.impl, open)
			ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
			began := time.Now()
			v, _ := run(ch, &sdk.Request{})
			if d := time.Since(began); d > 2*time.Second {
				t.Fatalf("%s: took %v", c.name, d)
			}
			if b.Totals().Failures[c.kind] != 1 {
				t.Fatalf("%s: failure %s not counted", c.name, c.kind)
			}
			if open && v != nil {
				t.Fatalf("%s open: verdict %+v", c.name, v)
			}
			if !open && (v == nil || v.Failure == nil || v.Reject.Status != 503) {
				t.Fatalf("%s closed: verdict %+v", c.name, v)
			}
		}
	}
}

func TestRouteDecisionChecks(t *testing.T) {
	env := RouteEnv{ServiceExists: func(s string) bool { return s == "users-v2" }, Timeout: 2 * time.Second}
	cases := []struct {
		name  string
		d     sdk.RouteDecision
		valid bool
	}{
		{"known service", sdk.RouteDecision{Service: "users-v2", Path: "/v2/x", Timeout: time.Second}, true},
		{"unknown service", sdk.RouteDecision{Service: "nope"}, false},
		{"host rewrite", sdk.RouteDecision{SetHeader: map[string]string{"Host": "evil"}}, false},
		{"hop-by-hop", sdk.RouteDecision{SetHeader: map[string]string{"Transfer-Encoding": "chunked"}}, false},
		{"internal header", sdk.RouteDecision{RemoveHeader: []string{"X-Gatehouse-Timeout"}}, false},
		{"header injection", sdk.RouteDecision{SetHeader: map[string]string{"X-A": "1\r\nX-B: 2"}}, false},
		{"looser timeout", sdk.RouteDecision{Timeout: 5 * time.Second}, false},
		{"path with query", sdk.RouteDecision{Path: "/a?b"}, false},
	}
	for _, c := range cases {
		d := c.d
		b := bind("r", router{f: func(context.Context, *sdk.Request) (sdk.RouteDecision, error) { return d, nil }}, false)
		ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
		var s Snapshot
		ch.Begin(&s)
		var out Routing
		req := &sdk.Request{}
		v := ch.Route(context.Background(), &s, &stamps{}, req, time.Now().Add(time.Second), env, &out)
		if c.valid && (v != nil || out.Service != d.Service) {
			t.Errorf("%s: verdict %+v routing %+v", c.name, v, out)
		}
		if !c.valid && (v == nil || v.Failure == nil || v.Failure.Kind != FailInvalid) {
			t.Errorf("%s: want an invalid-decision failure, got %+v", c.name, v)
		}
	}
}

func TestConcurrencyLimit(t *testing.T) {
	entered := make(chan struct{}, 2)
	release := make(chan struct{})
	slow := fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
		entered <- struct{}{}
		<-release
		return sdk.ValidateDecision{}, nil
	}}
	b := bind("slow", slow, false)
	b.MaxConcurrent = 1
	b.Budget = 5 * time.Second
	c := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); run(c, &sdk.Request{}) }()
	<-entered
	v, _ := run(c, &sdk.Request{})
	close(release)
	wg.Wait()
	if v == nil || v.Failure == nil || v.Failure.Kind != FailOverloaded {
		t.Fatalf("second call over the limit: %+v", v)
	}
}

// swapSource changes version between requests.
type swapSource struct {
	mu sync.Mutex
	v  *Version
}

func (s *swapSource) Current() *Version { s.mu.Lock(); defer s.mu.Unlock(); return s.v }

func TestSnapshotKeepsVersion(t *testing.T) {
	mk := func(id string) *Version {
		return NewVersion("h", fn{validate: func(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
			return sdk.ValidateDecision{Labels: map[string]string{"v": id}}, nil
		}}, id)
	}
	src := &swapSource{v: mk("1")}
	c := &Chain{Bindings: []*Binding{{Name: "h", Source: src, Budget: time.Second, MaxConcurrent: 4, Policy: Policy{Open: true}}}}
	var s Snapshot
	c.Begin(&s)
	src.mu.Lock()
	src.v = mk("2") // a reload while the request is in flight
	src.mu.Unlock()
	req := &sdk.Request{}
	c.Validate(context.Background(), &s, &stamps{}, req, time.Now().Add(time.Second))
	if req.Labels["v"] != "1" {
		t.Fatalf("request ran on version %s, want the one it started with", req.Labels["v"])
	}
}

func TestObserversNeverBlock(t *testing.T) {
	got := make(chan string, 1)
	o := NewObservers(1)
	defer o.Close()
	obs := observer(func(_ context.Context, ob *sdk.Observation) { got <- ob.Outcome })
	c := &Chain{Bindings: []*Binding{bind("obs", obs, true)}, Log: zerolog.Nop()}
	var s Snapshot
	c.Begin(&s)
	o.Enqueue(c, &s, &sdk.Observation{Outcome: "success"})
	if v := <-got; v != "success" {
		t.Fatalf("observed %q", v)
	}
}

type observer func(context.Context, *sdk.Observation)

func (f observer) Observe(ctx context.Context, o *sdk.Observation) { f(ctx, o) }

type shaper struct{ d sdk.ShapeDecision }

func (s shaper) Shape(context.Context, *sdk.Request) (sdk.ShapeDecision, error) { return s.d, nil }

// TestShapeDecisionChecks: a shape decision outside the core's ranges
// (priority, rate key, cost, reject status) is the hook's failure, never
// applied.
func TestShapeDecisionChecks(t *testing.T) {
	cases := []struct {
		name  string
		d     sdk.ShapeDecision
		valid bool
	}{
		{"critical", sdk.ShapeDecision{Priority: sdk.PriorityCritical, RateKey: "user:1", Cost: 2}, true},
		{"priority too high", sdk.ShapeDecision{Priority: sdk.PriorityCritical + 1}, false},
		{"priority negative", sdk.ShapeDecision{Priority: -1}, false},
		{"rate key too long", sdk.ShapeDecision{RateKey: strings.Repeat("k", MaxRateKey+1)}, false},
		{"cost negative", sdk.ShapeDecision{Cost: -1}, false},
		{"cost too high", sdk.ShapeDecision{Cost: MaxCost + 1}, false},
		{"reject status 999", sdk.ShapeDecision{Reject: &sdk.Reject{Status: 999}}, false},
		{"reject status 200", sdk.ShapeDecision{Reject: &sdk.Reject{Status: 200}}, false},
	}
	for _, c := range cases {
		b := bind("s", shaper{d: c.d}, false)
		ch := &Chain{Bindings: []*Binding{b}, Log: zerolog.Nop()}
		var s Snapshot
		ch.Begin(&s)
		var out Shaping
		v := ch.Shape(context.Background(), &s, &stamps{}, &sdk.Request{}, time.Now().Add(time.Second), &out)
		if c.valid && (v != nil || out.Priority != c.d.Priority || out.RateKey != c.d.RateKey || out.Cost != c.d.Cost) {
			t.Errorf("%s: verdict %+v shaping %+v", c.name, v, out)
		}
		if !c.valid && (v == nil || v.Failure == nil || v.Failure.Kind != FailInvalid || v.Reject.Status != 503) {
			t.Errorf("%s: want an invalid-decision failure with the policy's 503, got %+v", c.name, v)
		}
	}
}
