package hook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/sdk"
)

// MaxBindings bounds the hooks of one route (global ones included).
const MaxBindings = 16

// Chain is a route's bindings, in order: global bindings first.
type Chain struct {
	Bindings []*Binding
	Log      zerolog.Logger
}

// MaxFailures bounds the failed calls a request's record lists (the
// passport marks every one).
const MaxFailures = 8

// Snapshot holds the versions one request runs with, and the calls that
// failed during it.
type Snapshot struct {
	v        [MaxBindings]*Version
	failures [MaxFailures]*Failure
	nfail    int
}

// Begin takes the current version of every binding for one request.
func (c *Chain) Begin(s *Snapshot) {
	for i, b := range c.Bindings {
		s.v[i] = b.Source.Current()
	}
	s.ClearFailures()
}

// Failures returns the calls that failed during the request, in order (the
// first MaxFailures of them; FailureCount counts them all). The slice is
// the snapshot's own: copy what must outlive the next Begin.
func (s *Snapshot) Failures() []*Failure { return s.failures[:min(s.nfail, MaxFailures)] }

// FailureCount is the number of calls that failed during the request.
func (s *Snapshot) FailureCount() int { return s.nfail }

// ClearFailures forgets the failed calls (Begin does it too).
func (s *Snapshot) ClearFailures() {
	clear(s.failures[:min(s.nfail, MaxFailures)])
	s.nfail = 0
}

func (s *Snapshot) addFailure(f *Failure) {
	if s == nil {
		return
	}
	if s.nfail < MaxFailures {
		s.failures[s.nfail] = f
	}
	s.nfail++
}

// Has reports whether some binding of the chain runs phase p.
func (c *Chain) Has(s *Snapshot, p sdk.Phase) bool {
	for i, b := range c.Bindings {
		if b.runs(s.v[i], p) {
			return true
		}
	}
	return false
}

// BodyBytes is the most request body any binding of the chain asks for.
func (c *Chain) BodyBytes() int64 {
	var n int64
	for _, b := range c.Bindings {
		n = max(n, b.BodyBytes)
	}
	return n
}

// Stamper stamps a hook call's enter and exit in the passport.
type Stamper interface {
	Hook(enter bool, label string)
}

// Verdict ends a phase early: answer the client with Reject. Failure is set
// when the answer comes from a closed failure policy (outcome hook_failed)
// rather than from a hook's own decision (outcome rejected).
type Verdict struct {
	Reject  *sdk.Reject
	Failure *Failure
}

var (
	errOverloaded = errors.New("over its concurrency limit (max_concurrent)")
	errTimeout    = errors.New("did not answer within its time budget")
)

// call is one hook call in progress.
type call struct {
	ctx   *callCtx
	start time.Time
	stats *Stats
}

// enter checks the concurrency limit, stamps the call and gives it its
// deadline. A call over the limit never starts: it is stamped as entered
// and failed at once (see done).
func (c *Chain) enter(parent context.Context, deadline time.Time, b *Binding, v *Version, p sdk.Phase, m Stamper) (call, *Failure) {
	if b.inflight.Add(1) > b.MaxConcurrent {
		b.inflight.Add(-1)
		m.Hook(true, v.labels[p])
		return call{}, c.failed(b, v, p, FailOverloaded, errOverloaded)
	}
	now := time.Now()
	dl := now.Add(b.Budget)
	if deadline.Before(dl) {
		dl = deadline
	}
	m.Hook(true, v.labels[p])
	return call{ctx: newCallCtx(parent, dl), start: now, stats: b.stats(v)}, nil
}

// exit ends the call, counts it and classifies its failure, if any. The
// caller checks the decision, then stamps the exit with done (so that the
// stamp can say the decision was invalid; the checks take microseconds).
func (c *Chain) exit(cl call, b *Binding, v *Version, p sdk.Phase, err error, panicked bool) *Failure {
	el := time.Since(cl.start)
	timedOut := cl.ctx.Err() != nil
	cl.ctx.release()
	b.inflight.Add(-1)
	cl.stats.Calls.Add(1)
	cl.stats.Nanos.Add(int64(el))
	switch {
	case panicked:
		return c.failed(b, v, p, FailPanic, err)
	case timedOut:
		return c.failed(b, v, p, FailTimeout, fmt.Errorf("%w (%s)", errTimeout, el.Round(time.Microsecond)))
	case err != nil:
		return c.failed(b, v, p, kindOf(err), err)
	}
	return nil
}

// failed counts a failure of version v's call.
func (c *Chain) failed(b *Binding, v *Version, p sdk.Phase, k FailureKind, err error) *Failure {
	b.stats(v).Failures[k].Add(1)
	return &Failure{Hook: b.Name, Version: v.ID, Phase: p, Kind: k, Err: err}
}

// done stamps the call's exit: how it failed and the policy that applies
// when f is set (open: the request goes on). A failure is also added to the
// request's snapshot (s may be nil) and logged, at most once a second per
// binding.
func (c *Chain) done(s *Snapshot, m Stamper, b *Binding, v *Version, p sdk.Phase, f *Failure, open bool, reqID string) {
	if f == nil {
		m.Hook(false, v.exitNote(p, nil))
		return
	}
	f.Policy = PolicyClosed
	if open {
		f.Policy = PolicyOpen
	}
	m.Hook(false, v.exitNote(p, f))
	s.addFailure(f)
	if ok, dropped := b.logs.allow(time.Now().UnixNano()); ok {
		ev := c.Log.Warn().Str("hook", b.Name).Str("version", f.Version).Str("phase", p.String()).
			Str("failure", f.Kind.String()).Str("policy", f.Policy).Err(f.Err)
		if reqID != "" {
			ev = ev.Str("id", reqID)
		}
		if dropped > 0 {
			ev = ev.Int64("suppressed", dropped)
		}
		ev.Msg("hook failed; its failure policy applies")
	}
}

// policy applies b's failure policy: nil to go on (open), or a verdict.
func policy(b *Binding, f *Failure) *Verdict {
	if b.Policy.Open {
		return nil
	}
	return &Verdict{Failure: f, Reject: &sdk.Reject{Status: b.Policy.Status, Body: "request refused: hook " + b.Name + " failed\n"}}
}

// invalid turns a rejected decision into a failure of the call.
func (c *Chain) invalid(b *Binding, v *Version, p sdk.Phase, err error) *Failure {
	return c.failed(b, v, p, FailInvalid, err)
}

// Validate runs the validate phase. It returns a verdict when the request
// must be answered now.
func (c *Chain) Validate(ctx context.Context, s *Snapshot, m Stamper, req *sdk.Request, deadline time.Time) *Verdict {
	for i, b := range c.Bindings {
		v := s.v[i]
		if !b.runs(v, sdk.PhaseValidate) {
			continue
		}
		cl, f := c.enter(ctx, deadline, b, v, sdk.PhaseValidate, m)
		var d sdk.ValidateDecision
		if f == nil {
			var err error
			var panicked bool
			d, err, panicked = callValidate(cl.ctx, v.Impl.(sdk.Validator), req)
			f = c.exit(cl, b, v, sdk.PhaseValidate, err, panicked)
		}
		if f == nil {
			if err := checkReject(d.Reject); err != nil {
				f = c.invalid(b, v, sdk.PhaseValidate, err)
			} else if err := mergeLabels(req, d.Labels); err != nil {
				f = c.invalid(b, v, sdk.PhaseValidate, err)
			}
		}
		c.done(s, m, b, v, sdk.PhaseValidate, f, b.Policy.Open, req.ID)
		if f != nil {
			if vd := policy(b, f); vd != nil {
				return vd
			}
			continue
		}
		if d.Reject != nil {
			return &Verdict{Reject: d.Reject}
		}
	}
	return nil
}

// Shaping is what the shape phase decided (the last hook with an opinion wins).
type Shaping struct {
	Priority sdk.Priority
	RateKey  string
	Cost     int
}

// Shape runs the shape phase.
func (c *Chain) Shape(ctx context.Context, s *Snapshot, m Stamper, req *sdk.Request, deadline time.Time, out *Shaping) *Verdict {
	for i, b := range c.Bindings {
		v := s.v[i]
		if !b.runs(v, sdk.PhaseShape) {
			continue
		}
		cl, f := c.enter(ctx, deadline, b, v, sdk.PhaseShape, m)
		var d sdk.ShapeDecision
		if f == nil {
			var err error
			var panicked bool
			d, err, panicked = callShape(cl.ctx, v.Impl.(sdk.Shaper), req)
			f = c.exit(cl, b, v, sdk.PhaseShape, err, panicked)
		}
		if f == nil {
			if err := checkShape(&d); err != nil {
				f = c.invalid(b, v, sdk.PhaseShape, err)
			} else if err := mergeLabels(req, d.Labels); err != nil {
				f = c.invalid(b, v, sdk.PhaseShape, err)
			}
		}
		c.done(s, m, b, v, sdk.PhaseShape, f, b.Policy.Open, req.ID)
		if f != nil {
			if vd := policy(b, f); vd != nil {
				return vd
			}
			continue
		}
		if d.Reject != nil {
			return &Verdict{Reject: d.Reject}
		}
		if d.Priority != sdk.PriorityUnset {
			out.Priority = d.Priority
		}
		if d.RateKey != "" {
			out.RateKey, out.Cost = d.RateKey, max(d.Cost, 1)
		}
	}
	return nil
}

// Routing is what the route phase decided, merged over the chain.
type Routing struct {
	Service      string
	Path         string
	SetHeader    map[string]string
	RemoveHeader []string
	// Timeout is the tightest upstream timeout asked for (0: none).
	Timeout time.Duration
}

// RouteEnv is what route decisions are checked against.
type RouteEnv struct {
	// ServiceExists reports whether a service is configured.
	ServiceExists func(string) bool
	// Timeout is the time the request has left; a decision may only ask for less.
	Timeout time.Duration
}

// Route runs the route phase.
func (c *Chain) Route(ctx context.Context, s *Snapshot, m Stamper, req *sdk.Request, deadline time.Time, env RouteEnv, out *Routing) *Verdict {
	for i, b := range c.Bindings {
		v := s.v[i]
		if !b.runs(v, sdk.PhaseRoute) {
			continue
		}
		cl, f := c.enter(ctx, deadline, b, v, sdk.PhaseRoute, m)
		var d sdk.RouteDecision
		if f == nil {
			var err error
			var panicked bool
			d, err, panicked = callRoute(cl.ctx, v.Impl.(sdk.Router), req)
			f = c.exit(cl, b, v, sdk.PhaseRoute, err, panicked)
		}
		if f == nil {
			limit := env.Timeout
			if out.Timeout > 0 && out.Timeout < limit {
				limit = out.Timeout
			}
			if err := checkRoute(&d, env.ServiceExists, limit, b.AllowHost); err != nil {
				f = c.invalid(b, v, sdk.PhaseRoute, err)
			} else if err := mergeLabels(req, d.Labels); err != nil {
				f = c.invalid(b, v, sdk.PhaseRoute, err)
			}
		}
		c.done(s, m, b, v, sdk.PhaseRoute, f, b.Policy.Open, req.ID)
		if f != nil {
			if vd := policy(b, f); vd != nil {
				return vd
			}
			continue
		}
		if d.Service != "" {
			out.Service = d.Service
			req.Service = d.Service
		}
		if d.Path != "" {
			out.Path = d.Path
		}
		for k, val := range d.SetHeader {
			if out.SetHeader == nil {
				out.SetHeader = map[string]string{}
			}
			out.SetHeader[k] = val
		}
		out.RemoveHeader = append(out.RemoveHeader, d.RemoveHeader...)
		if d.Timeout > 0 {
			out.Timeout = d.Timeout
		}
	}
	return nil
}

// Respond runs the respond phase; the edits are applied by the caller in
// order (removals, then sets).
func (c *Chain) Respond(ctx context.Context, s *Snapshot, m Stamper, req *sdk.Request, resp *sdk.Response, deadline time.Time, apply func(set map[string]string, remove []string)) {
	for i, b := range c.Bindings {
		v := s.v[i]
		if !b.runs(v, sdk.PhaseRespond) {
			continue
		}
		cl, f := c.enter(ctx, deadline, b, v, sdk.PhaseRespond, m)
		var d sdk.RespondDecision
		if f == nil {
			var err error
			var panicked bool
			d, err, panicked = callRespond(cl.ctx, v.Impl.(sdk.Responder), req, resp)
			f = c.exit(cl, b, v, sdk.PhaseRespond, err, panicked)
		}
		if f == nil {
			if err := checkResponseEdits(d.SetHeader, d.RemoveHeader); err != nil {
				f = c.invalid(b, v, sdk.PhaseRespond, err)
			}
		}
		// The response is already decided: a failing respond hook can only
		// leave the headers as they are, whatever its policy (open).
		c.done(s, m, b, v, sdk.PhaseRespond, f, true, req.ID)
		if f != nil {
			continue
		}
		apply(d.SetHeader, d.RemoveHeader)
	}
}

func callValidate(ctx context.Context, h sdk.Validator, req *sdk.Request) (d sdk.ValidateDecision, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("panic: %v", r), true
		}
	}()
	d, err = h.Validate(ctx, req)
	return d, err, false
}

func callShape(ctx context.Context, h sdk.Shaper, req *sdk.Request) (d sdk.ShapeDecision, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("panic: %v", r), true
		}
	}()
	d, err = h.Shape(ctx, req)
	return d, err, false
}

func callRoute(ctx context.Context, h sdk.Router, req *sdk.Request) (d sdk.RouteDecision, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("panic: %v", r), true
		}
	}()
	d, err = h.Route(ctx, req)
	return d, err, false
}

func callRespond(ctx context.Context, h sdk.Responder, req *sdk.Request, resp *sdk.Response) (d sdk.RespondDecision, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("panic: %v", r), true
		}
	}()
	d, err = h.Respond(ctx, req, resp)
	return d, err, false
}
