package proxy

import (
	"bytes"
	"io"
	"maps"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/admission"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/machine"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/sdk"
)

// reqState is the per-request working set, pooled.
type reqState struct {
	m        machine.Machine
	rec      Record
	rt       *Runtime
	req      *Request
	cs       ClientSide
	route    *Route
	svc      *Service // the route's service, or the one a route hook chose
	deadline time.Time

	// Hooks: the versions this request runs with, its view, and what the
	// shape and route phases decided. rejected is the hook's answer.
	snap     hook.Snapshot
	view     sdk.Request
	shaping  hook.Shaping
	routing  hook.Routing
	rejected *sdk.Reject
	rewrote  bool // a route hook rewrote the path
	// upgrade is the protocol the client asked to switch to, taken with
	// the hop-by-hop fields before the route hooks' header edits.
	upgrade string
	// clientIP is the client's address (Request.clientIP), taken before
	// the gateway adds to X-Forwarded-For.
	clientIP string
	// admitted is the limiter holding this request's slot (see admit);
	// retryAfter, when set, goes with a 429/503 as Retry-After.
	admitted   *admission.Limiter
	retryAfter time.Duration

	x       exchange  // the current attempt
	idValue [1]string // X-Request-Id's value, both ways
	// responded is true once the response head went to the client: from then
	// on a failure can only cut the response short.
	responded bool
	err       *failure.Error
	// uploadErr, while a body upload runs, stops it and returns its
	// client-side failure (see exchange.preferUpload).
	uploadErr func() *failure.Error
	// selfStopped is set before the engine cuts a client read itself
	// (net/http then cancels the request context, which is not the client
	// going away); clientGone is set when the context ended otherwise.
	selfStopped, clientGone atomic.Bool

	// The request body kept for a retry: replay holds what was read while it
	// fits retry.replay_body_bytes (replayOK); replayable is set once the
	// whole body is kept.
	replay       []byte
	bodyRead     bool // an attempt started reading the body
	replayOK     bool
	replayable   bool
	replayReader bytes.Reader
	// wait is the jittered backoff before the next attempt, drawn before
	// the current one (see forward).
	wait time.Duration
}

// keep appends a piece of the request body to the replay copy, while the
// total (n bytes so far) fits the service's bound.
func (st *reqState) keep(p []byte, n int64) {
	if st.req.Body == &st.replayReader {
		return // replaying the kept copy
	}
	max := st.svc.ReplayBodyBytes
	if n == int64(len(p)) { // the first piece of this body
		st.replay, st.replayOK = st.replay[:0], st.svc.Retry.MaxAttempts > 1
	}
	if !st.replayOK {
		return
	}
	if n > max {
		st.replayOK, st.replay = false, st.replay[:0]
		return
	}
	st.replay = append(st.replay, p...)
}

// gone reports whether the client went away (as opposed to the engine
// cutting its own read).
func (st *reqState) gone() bool {
	return st.clientGone.Load() || st.req.Ctx.Err() != nil && !st.selfStopped.Load()
}

var (
	statePool   = sync.Pool{New: func() any { return new(reqState) }}
	machineZero machine.Machine
)

// Serve runs one request to its end. It returns abort=true when the response
// was cut short after its head was sent; the adapter must then abort the
// client stream (so the client sees a truncated response, not a short one).
func (rt *Runtime) Serve(cs ClientSide, req *Request) (abort bool) {
	st := statePool.Get().(*reqState)
	st.rt, st.req, st.cs = rt, req, cs
	st.clientIP = req.clientIP()
	st.m.Start(rt.shared.passports.Get(rt.shared.Clock, req.Start))
	st.m.To(passport.HeadersRead)
	if s := rt.shared.Tracing.Load(); s != nil {
		s.Start(&st.rec.Trace, req.Header)
	}

	st.serve()

	// Cut a response that started and failed; and never let the server
	// answer for us when we decided the client was gone.
	abort = st.responded && st.m.Outcome != failure.Success || st.m.Outcome == failure.ClientGone
	st.finish()
	rt.shared.passports.Put(st.m.P)
	st.reset()
	statePool.Put(st)
	return abort
}

func (st *reqState) serve() {
	rt, req := st.rt, st.req
	sh := rt.shared
	if sh.inflight.Add(1) > rt.maxRequests {
		sh.inflight.Add(-1)
		st.fail(failure.New(failure.Overloaded, "%d requests in flight (limits.server.max_requests = %d)", rt.maxRequests, rt.maxRequests))
		return
	}
	defer sh.inflight.Add(-1)

	if req.HeadTooLarge {
		st.fail(failure.New(failure.HeaderTooLarge, "request head over limits.server.max_header_bytes"))
		return
	}
	if req.BadFraming != "" {
		st.fail(failure.New(failure.Malformed, "%s", req.BadFraming))
		return
	}
	if req.Method == http.MethodConnect {
		st.fail(&failure.Error{Kind: failure.Malformed, Status: http.StatusMethodNotAllowed, Msg: "CONNECT is not supported"})
		return
	}
	path, why := checkTarget(req.Method, req.Host, req.Path, req.RawQuery, req.KeepEscapedSlashes)
	if why != "" {
		st.fail(failure.New(failure.Malformed, "request target refused: %s", why))
		return
	}
	req.Path = path
	rule := rt.routes.Match(req.Method, req.Host, req.Path)
	if rule == nil {
		st.fail(failure.New(failure.NoRoute, "no route for %s %s%s", req.Method, req.Host, req.Path))
		return
	}
	r := rule.Target
	st.route, st.svc = r, r.Service
	st.rec.Route, st.rec.Service = r.Name, r.Service.Name
	st.deadline = req.Start.Add(r.Limits.Deadline)
	// A client may tighten the deadline, never loosen it.
	if dl, ok := clientDeadline(req.Header, req.Start); ok && dl.Before(st.deadline) {
		st.deadline = dl
	}
	if req.ContentLength > r.Limits.MaxBodyBytes {
		st.fail(failure.New(failure.BodyTooLarge, "route %q: Content-Length %d over limits.request.max_body_bytes = %d",
			r.Name, req.ContentLength, r.Limits.MaxBodyBytes))
		return
	}
	chain := r.Hooks
	if chain != nil {
		chain.Begin(&st.snap)
		st.buildView()
		if n := chain.BodyBytes(); n > 0 && req.Body != nil && req.ContentLength != 0 {
			if err := st.peekBody(n); err != nil {
				st.fail(err)
				return
			}
		}
		if vd := chain.Validate(req.Ctx, &st.snap, &st.m, &st.view, st.deadline); vd != nil {
			st.reject(vd)
			return
		}
	}
	st.m.To(passport.Validated)
	if chain != nil {
		if vd := chain.Shape(req.Ctx, &st.snap, &st.m, &st.view, st.deadline, &st.shaping); vd != nil {
			st.reject(vd)
			return
		}
	}
	st.m.To(passport.Shaped)
	if !st.admit() {
		return
	}
	defer st.release()
	// The client's hop-by-hop fields go before the route hooks edit the
	// headers: a "Connection: X-Authenticated-User" of the client's must
	// not remove a header a hook sets for the endpoint.
	st.upgrade = stripHopByHop(req.Header)
	if chain != nil {
		env := hook.RouteEnv{ServiceExists: rt.serviceExists, Timeout: time.Until(st.deadline)}
		if vd := chain.Route(req.Ctx, &st.snap, &st.m, &st.view, st.deadline, env, &st.routing); vd != nil {
			st.reject(vd)
			return
		}
		st.applyRouting()
	}
	st.m.To(passport.Routed)
	st.forward()
}

func (rt *Runtime) serviceExists(name string) bool { return rt.services[name] != nil }

// buildView fills the hooks' view of the request. Header is the request's
// own map: hooks read it and must not change it (decisions carry edits).
func (st *reqState) buildView() {
	req := st.req
	scheme := "http"
	if req.TLS {
		scheme = "https"
	}
	st.view = sdk.Request{ID: req.ID, Method: req.Method, Scheme: scheme, Host: req.Host, Path: req.Path,
		RawQuery: req.RawQuery, Header: sdk.Header(req.Header), ClientIP: st.clientIP,
		TLS: req.TLSInfo, Route: st.route.Name, Service: st.svc.Name}
}

// peekBody reads up to n bytes of the request body for the hooks; the
// upload later sends those bytes and the rest.
func (st *reqState) peekBody(n int64) *failure.Error {
	req := st.req
	buf := make([]byte, 0, min(n, 64<<10))
	st.cs.SetReadDeadline(st.deadline)
	b, err := io.ReadAll(io.LimitReader(req.Body, n+1))
	buf = append(buf, b...)
	if err != nil {
		if isTimeout(err) {
			return failure.New(failure.DeadlineExceeded, "route %q: deadline exceeded reading the body for hooks", st.route.Name)
		}
		return bodyReadFailure(err)
	}
	if int64(len(buf)) > n {
		st.view.Body, st.view.BodyTruncated = buf[:n], true
		req.Body = io.MultiReader(bytes.NewReader(buf), req.Body)
		return nil
	}
	st.view.Body = buf
	st.cs.SetReadDeadline(time.Time{})
	req.Body = bytes.NewReader(buf)
	req.ContentLength = int64(len(buf))
	return nil
}

// reject answers with a hook's verdict.
func (st *reqState) reject(vd *hook.Verdict) {
	st.rejected = vd.Reject
	if vd.Failure != nil {
		st.fail(&failure.Error{Kind: failure.HookFailed, Status: vd.Reject.Status, Err: vd.Failure})
		return
	}
	st.fail(&failure.Error{Kind: failure.Rejected, Status: vd.Reject.Status, Msg: "rejected by a hook"})
}

// applyRouting applies what the route hooks decided.
func (st *reqState) applyRouting() {
	d := &st.routing
	if d.Service != "" && d.Service != st.svc.Name {
		st.svc = st.rt.services[d.Service]
		st.rec.Service = st.svc.Name
	}
	if d.Path != "" {
		st.req.Path, st.rewrote = d.Path, true
	}
	h := st.req.Header
	for _, k := range d.RemoveHeader {
		h.Del(k)
	}
	for k, v := range d.SetHeader {
		h.Set(k, v)
	}
	if d.Timeout > 0 {
		if dl := time.Now().Add(d.Timeout); dl.Before(st.deadline) {
			st.deadline = dl
		}
	}
}

// respondHooks runs the respond phase on the response head about to be sent.
func (st *reqState) respondHooks(status int, h http.Header) {
	chain := st.route.Hooks
	if chain == nil || !chain.Has(&st.snap, sdk.PhaseRespond) {
		return
	}
	resp := sdk.Response{Status: status, Header: sdk.Header(h)}
	chain.Respond(st.req.Ctx, &st.snap, &st.m, &st.view, &resp, st.deadline, func(set map[string]string, remove []string) {
		for _, k := range remove {
			h.Del(k)
		}
		for k, v := range set {
			h.Set(k, v)
		}
	})
}

// fail ends the request with err: an error response when nothing was sent
// yet, otherwise the response is cut (see Serve).
func (st *reqState) fail(err *failure.Error) {
	if st.m.Bug() != nil {
		err = failure.Wrap(failure.Internal, st.m.Bug(), "")
	}
	if err.Kind == failure.ClientGone && st.req.Cut != nil && st.req.Cut.Load() {
		err = failure.Wrap(failure.ShuttingDown, err, "cut when the drain ended (limits.server.drain_timeout)")
	}
	st.err = err
	st.m.Fail(err.Kind)
	if st.responded || err.Kind == failure.ClientGone {
		return
	}
	status := err.HTTPStatus()
	h := st.cs.Header()
	clear(h)
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	h["X-Request-Id"] = []string{st.req.ID}
	if st.retryAfter > 0 {
		h["Retry-After"] = []string{retryAfterValue(st.retryAfter)}
	}
	if st.req.ProtoMajor == 1 && (failure.SourceOf(err.Kind) == failure.SourceClient || st.req.Body != nil && st.req.ContentLength != 0) {
		// The client misbehaved mid-message, or its body may be unread
		// (an early answer): do not read another request from it. Without
		// the close, net/http would read the rest of the body before
		// sending this answer, for as long as the client takes.
		h["Connection"] = []string{"close"}
	}
	body := strconv.Itoa(status) + " " + http.StatusText(status) + "\noutcome: " + err.Kind.String() + "\nrequest-id: " + st.req.ID + "\n"
	if rj := st.rejected; rj != nil {
		for k, v := range rj.Header {
			h.Set(k, v)
		}
		if rj.Body != "" {
			body = rj.Body
		}
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	st.cs.WriteHeader(status)
	st.cs.Write([]byte(body))
	st.rec.Status = status
}

// finish completes the record and hands it to the observers.
func (st *reqState) finish() {
	rec := &st.rec
	req := st.req
	rec.ID, rec.Listener, rec.Method, rec.Host, rec.Path, rec.Proto = req.ID, req.Listener, req.Method, req.Host, req.Path, req.ProtoMajor
	rec.ClientIP = st.clientIP
	if rec.ClientIP == "" {
		rec.ClientIP = clientIP(req.RemoteAddr)
	}
	rec.Outcome = st.m.Outcome
	if st.m.State() != passport.Done && st.m.State() != passport.Failed {
		// A path that forgot to end the machine is a bug; never lose the request.
		st.m.Fail(failure.Internal)
		rec.Outcome = failure.Internal
	}
	if rec.Outcome == failure.ClientGone && !st.responded {
		rec.Status = failure.StatusClientClosed
	}
	if st.err != nil {
		rec.Err = st.err.Error()
	}
	if st.route != nil && st.route.Hooks != nil {
		rec.HookFailures, rec.HookFailureCount = st.snap.Failures(), st.snap.FailureCount()
	}
	rec.Passport = st.m.P
	for _, o := range st.rt.shared.Observers {
		o.Observe(rec)
	}
	if st.route != nil && st.route.Hooks != nil && st.route.Hooks.Has(&st.snap, sdk.PhaseObserve) {
		view := st.view
		view.Header = sdk.Header(http.Header(st.view.Header).Clone())
		view.Labels = maps.Clone(st.view.Labels)
		view.Body = nil
		st.rt.shared.HookObservers.Enqueue(st.route.Hooks, &st.snap, &sdk.Observation{Request: &view, Status: rec.Status,
			Outcome: rec.Outcome.String(), Total: st.m.P.Total(), Overhead: st.m.P.Overhead(), Passport: st.m.P.String()})
	}
}

func clientIP(addr string) string {
	if ip, _, err := net.SplitHostPort(addr); err == nil {
		return ip
	}
	return addr
}

// clientIP returns the client's address: the connection's peer, or, on a
// listener behind a trusted proxy (TrustForwarded), the last address of
// X-Forwarded-For, the one that proxy added (those before it are the
// client's own claims). Hooks, rate-limit keys and the access log use it:
// behind a load balancer the peer is the balancer, the same for everyone.
func (r *Request) clientIP() string {
	if r.TrustForwarded {
		if xff := r.Header["X-Forwarded-For"]; len(xff) > 0 {
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if ip := net.ParseIP(textproto.TrimString(last)); ip != nil {
				return ip.String()
			}
		}
	}
	return clientIP(r.RemoteAddr)
}

// Abandoned records a connection that ended before a request reached the
// engine (header timeout, malformed head, head too large, client gone): a
// passport ACCEPTED → FAILED(kind) through the usual observers. status is
// what net/http answered, when it differs from the kind's own (501 for a
// Transfer-Encoding it does not implement, say); 0 otherwise.
func (sh *Shared) Abandoned(listener, remote string, start time.Time, k failure.Kind, status int, msg string) {
	if sh.Clock == nil {
		sh.Clock = passport.SystemClock
	}
	var m machine.Machine
	m.Start(sh.passports.Get(sh.Clock, start))
	m.Fail(k)
	if status == 0 {
		status = failure.Status(k)
	}
	rec := &Record{Listener: listener, ClientIP: clientIP(remote), Status: status, Outcome: k, Err: msg, Passport: m.P}
	for _, o := range sh.Observers {
		o.Observe(rec)
	}
	sh.passports.Put(m.P)
}

func (st *reqState) reset() {
	st.m = machineZero
	st.rec = Record{}
	st.snap.ClearFailures()
	st.rt, st.req, st.cs, st.route, st.svc, st.err, st.uploadErr = nil, nil, nil, nil, nil, nil, nil
	st.view, st.shaping, st.routing, st.rejected, st.rewrote, st.upgrade, st.clientIP = sdk.Request{}, hook.Shaping{}, hook.Routing{}, nil, false, "", ""
	st.admitted, st.retryAfter = nil, 0
	st.x = exchange{}
	st.deadline, st.responded = time.Time{}, false
	st.selfStopped.Store(false)
	st.clientGone.Store(false)
	if cap(st.replay) > 64<<10 {
		st.replay = nil
	}
	st.replay, st.replayOK, st.replayable, st.bodyRead = st.replay[:0], false, false, false
	st.replayReader.Reset(nil)
}
