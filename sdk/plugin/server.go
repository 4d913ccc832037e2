package plugin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// pluginServer serves a hook over the plugin protocol (the plugin side).
type pluginServer struct {
	pluginpb.UnimplementedPluginServer
	impl   any
	phases sdk.PhaseSet
	// maxAnswer is the largest answer the host accepts (Configure).
	maxAnswer atomic.Int64
	// frames is offered once per process (the first Configure asking).
	frames sync.Once
}

func newPluginServer(impl any) *pluginServer {
	s := &pluginServer{impl: impl, phases: sdk.PhasesOf(impl)}
	s.maxAnswer.Store(maxMessageBytes)
	return s
}

func (s *pluginServer) Configure(ctx context.Context, req *pluginpb.ConfigureRequest) (*pluginpb.ConfigureResponse, error) {
	if req.MaxMessageBytes > 0 {
		s.maxAnswer.Store(min(req.MaxMessageBytes, maxMessageBytes))
	}
	if c, ok := s.impl.(Configurer); ok {
		if err := configure(ctx, c, req.Config); err != nil {
			return nil, err
		}
	}
	resp := &pluginpb.ConfigureResponse{Features: features, SdkVersion: SDKVersion}
	if req.Frames {
		s.frames.Do(func() { resp.FramesAddress = s.offerFrames() })
	}
	for _, p := range s.phases.List() {
		resp.Phases = append(resp.Phases, pluginpb.Phase(p+1))
	}
	return resp, nil
}

func configure(ctx context.Context, c Configurer, config []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errors.New(panicError(r))
		}
	}()
	return c.Configure(ctx, config)
}

func (s *pluginServer) Call(ctx context.Context, req *pluginpb.CallRequest) (*pluginpb.CallResponse, error) {
	if req.TimeoutNanos > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutNanos))
		defer cancel()
	}
	resp := s.answer(ctx, req)
	return resp, nil
}

// Calls serves calls multiplexed on one stream, each on a goroutine of its
// own so that a slow call does not hold up the others.
func (s *pluginServer) Calls(stream pluginpb.Plugin_CallsServer) error {
	return s.serveCalls(stream.Context(), stream)
}

// callStream is the plugin's end of the Calls stream, or of the framed
// call socket.
type callStream interface {
	Recv() (*pluginpb.CallRequest, error)
	Send(*pluginpb.CallResponse) error
}

// serveCalls serves the calls of one stream until it breaks or ctx ends.
//
// One goroutine at a time reads the stream. Having read a call, it hands
// the reading to another goroutine (one left idle by an earlier call, or a
// new one) and answers the call itself: a call that takes its time does
// not hold up the others, and a fast one is answered before the next read
// (which, with nothing to read yet, parks the reader), without a hand-off
// on the way. Goroutines are reused (up to maxIdle wait between calls):
// a new one per call would grow its stack on every call.
func (s *pluginServer) serveCalls(ctx context.Context, stream callStream) error {
	c := &callServer{s: s, ctx: ctx, stream: stream, calls: map[uint64]*callCtx{},
		wake: make(chan struct{}), ended: make(chan struct{})}
	c.wg.Add(1)
	c.serve()
	<-c.ended
	c.mu.Lock()
	for _, cc := range c.calls {
		cc.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait() // no Send after the handler returns
	return nil
}

// maxIdle bounds the goroutines of a stream left waiting for calls.
const maxIdle = 64

// callServer is serveCalls' state.
type callServer struct {
	s      *pluginServer
	ctx    context.Context
	stream callStream
	sendMu sync.Mutex
	wg     sync.WaitGroup // the stream's goroutines
	idle   atomic.Int32   // goroutines waiting on wake
	wake   chan struct{}  // makes an idle goroutine the reader
	mu     sync.Mutex
	calls  map[uint64]*callCtx // by id, for the host's cancels
	ended  chan struct{}       // closed when the stream broke
}

// answerSender is a stream that sends answers from any goroutine (the
// framed call socket); others says that other calls are being answered.
type answerSender interface {
	sendAnswer(resp *pluginpb.CallResponse, others bool) error
}

// serve is one of the stream's goroutines: it reads until it gets a call,
// hands the reading on, answers the call, then waits to read again.
func (c *callServer) serve() {
	defer c.wg.Done()
	for {
		req, err := c.stream.Recv()
		if err != nil {
			close(c.ended)
			return
		}
		if req.Cancel {
			c.mu.Lock()
			if cc := c.calls[req.Id]; cc != nil {
				cc.cancel()
			}
			c.mu.Unlock()
			continue
		}
		cc := newCallCtx(c.ctx, time.Now().Add(time.Duration(req.TimeoutNanos)))
		c.mu.Lock()
		c.calls[req.Id] = cc
		c.mu.Unlock()
		select { // the next reader
		case c.wake <- struct{}{}:
		default:
			c.wg.Add(1)
			go c.serve()
		}
		resp := c.s.answer(cc, req)
		c.mu.Lock()
		delete(c.calls, req.Id)
		others := len(c.calls) > 0
		c.mu.Unlock()
		cc.cancel()
		// A broken stream ends Recv too: a failed send needs no more.
		if as, ok := c.stream.(answerSender); ok {
			_ = as.sendAnswer(resp, others) // serialises its sends
		} else {
			c.sendMu.Lock()
			_ = c.stream.Send(resp)
			c.sendMu.Unlock()
		}
		if c.idle.Add(1) > maxIdle {
			c.idle.Add(-1)
			return
		}
		select {
		case <-c.wake:
			c.idle.Add(-1)
		case <-c.ended:
			c.idle.Add(-1)
			return
		}
	}
}

// answer runs the call and makes sure its answer can reach the host: one
// that cannot be encoded (a string that is not UTF-8) or is over the
// host's bound would fail on the wire, or break the stream for every call
// on it, so it is replaced by an error the host reports for this call.
func (s *pluginServer) answer(ctx context.Context, req *pluginpb.CallRequest) *pluginpb.CallResponse {
	resp := s.call(ctx, req)
	if field := invalidUTF8(resp); field != "" {
		resp = &pluginpb.CallResponse{Id: req.Id, ErrorKind: pluginpb.ErrorKind_ERROR_KIND_MALFORMED,
			Error: "invalid decision: " + field + " is not valid UTF-8"}
	}
	if n, max := pluginpb.SizeCallResponse(resp), s.maxAnswer.Load(); int64(n) > max {
		resp = &pluginpb.CallResponse{Id: req.Id, ErrorKind: pluginpb.ErrorKind_ERROR_KIND_TOO_LARGE,
			Error: fmt.Sprintf("decision of %d bytes over the gateway's bound of %d bytes (max_message_bytes)", n, max)}
	}
	return resp
}

// call runs one phase of the hook, recovering a panic into the call's error.
func (s *pluginServer) call(ctx context.Context, req *pluginpb.CallRequest) (resp *pluginpb.CallResponse) {
	resp = &pluginpb.CallResponse{Id: req.Id}
	if err := ctx.Err(); err != nil {
		resp.Error = "the call's time was up before the plugin got it"
		return resp
	}
	var slot *cacheSlot
	if cc, ok := ctx.(*callCtx); ok {
		slot = &cc.slot // its Value has it
	} else {
		slot = &cacheSlot{}
		ctx = context.WithValue(ctx, cacheSlotKey{}, slot)
	}
	defer func() {
		if r := recover(); r != nil {
			resp.Decision, resp.Cache = nil, nil
			resp.Error, resp.ErrorKind = panicError(r), pluginpb.ErrorKind_ERROR_KIND_PANIC
		}
	}()
	p := sdk.Phase(req.Phase - 1)
	if !p.Valid() || !s.phases.Has(p) {
		resp.Error = fmt.Sprintf("the plugin does not take part in phase %d", req.Phase)
		return resp
	}
	var err error
	if p != sdk.PhaseObserve && req.Request == nil {
		resp.Error = "malformed call: no request"
		return resp
	}
	switch p {
	case sdk.PhaseValidate:
		var d sdk.ValidateDecision
		d, err = s.impl.(sdk.Validator).Validate(ctx, requestFromWire(req.Request))
		if err == nil && (d.Reject != nil || len(d.Labels) > 0) {
			resp.Decision = &pluginpb.CallResponse_Validate{Validate: &pluginpb.ValidateDecision{Reject: rejectToWire(d.Reject), Labels: d.Labels}}
		}
	case sdk.PhaseShape:
		var d sdk.ShapeDecision
		d, err = s.impl.(sdk.Shaper).Shape(ctx, requestFromWire(req.Request))
		if err == nil {
			resp.Decision = &pluginpb.CallResponse_Shape{Shape: &pluginpb.ShapeDecision{
				Reject: rejectToWire(d.Reject), Priority: int32(d.Priority), RateKey: d.RateKey, Cost: int64(d.Cost), Labels: d.Labels,
			}}
		}
	case sdk.PhaseRoute:
		var d sdk.RouteDecision
		d, err = s.impl.(sdk.Router).Route(ctx, requestFromWire(req.Request))
		if err == nil {
			resp.Decision = &pluginpb.CallResponse_Route{Route: &pluginpb.RouteDecision{
				Service: d.Service, Path: d.Path, SetHeader: d.SetHeader, RemoveHeader: d.RemoveHeader,
				TimeoutNanos: int64(d.Timeout), Labels: d.Labels,
			}}
		}
	case sdk.PhaseRespond:
		var d sdk.RespondDecision
		r := &sdk.Response{}
		if req.Response != nil {
			r.Status, r.Header = int(req.Response.Status), headerFromWire(req.Response.Header)
		}
		d, err = s.impl.(sdk.Responder).Respond(ctx, requestFromWire(req.Request), r)
		if err == nil {
			resp.Decision = &pluginpb.CallResponse_Respond{Respond: &pluginpb.RespondDecision{SetHeader: d.SetHeader, RemoveHeader: d.RemoveHeader}}
		}
	case sdk.PhaseObserve:
		obs := &sdk.Observation{Request: &sdk.Request{}}
		if o := req.Observation; o != nil {
			obs.Status, obs.Outcome, obs.Passport = int(o.Status), o.Outcome, o.Passport
			obs.Total, obs.Overhead = time.Duration(o.TotalNanos), time.Duration(o.OverheadNanos)
			if o.Request != nil {
				obs.Request = requestFromWire(o.Request)
			}
		}
		s.impl.(sdk.Observer).Observe(ctx, obs)
	}
	if err != nil {
		resp.Decision = nil
		resp.Error = err.Error()
		if resp.Error == "" {
			resp.Error = "error with an empty message"
		}
		return resp
	}
	if slot.ttl > 0 && p != sdk.PhaseObserve {
		resp.Cache = &pluginpb.CacheHint{TtlNanos: int64(slot.ttl), Vary: slot.vary}
	}
	return resp
}

func requestFromWire(w *pluginpb.Request) *sdk.Request {
	r := &sdk.Request{
		ID: w.Id, Method: w.Method, Scheme: w.Scheme, Host: w.Host, Path: w.Path, RawQuery: w.RawQuery,
		Header: headerFromWire(w.Header), ClientIP: w.ClientIp, Route: w.Route, Service: w.Service,
		Labels: w.Labels, Body: w.Body, BodyTruncated: w.BodyTruncated,
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	if t := w.Tls; t != nil {
		r.TLS = &sdk.TLSInfo{Version: t.Version, ServerName: t.ServerName, CipherSuite: t.CipherSuite, ALPN: t.Alpn, PeerSubject: t.PeerSubject}
	}
	return r
}

func headerFromWire(fields []*pluginpb.HeaderField) sdk.Header {
	h := make(sdk.Header, len(fields))
	for _, f := range fields {
		h[f.Name] = append(h[f.Name], f.Values...)
	}
	return h
}

func rejectToWire(r *sdk.Reject) *pluginpb.Reject {
	if r == nil {
		return nil
	}
	return &pluginpb.Reject{Status: clampInt32(r.Status), Header: r.Header, Body: r.Body}
}

// clampInt32 keeps an out-of-range status out of range on the wire (the
// gateway refuses it) instead of letting it wrap into a valid one.
func clampInt32(n int) int32 {
	switch {
	case n > 1<<31-1:
		return 1<<31 - 1
	case n < -1<<31:
		return -1 << 31
	}
	return int32(n)
}

// invalidUTF8 names the first string of resp that protobuf would refuse to
// encode, or returns "".
func invalidUTF8(resp *pluginpb.CallResponse) string {
	if !utf8.ValidString(resp.Error) {
		resp.Error = strings.ToValidUTF8(resp.Error, "\uFFFD")
	}
	bad := func(field string, ss ...string) string {
		for _, s := range ss {
			if !utf8.ValidString(s) {
				return field
			}
		}
		return ""
	}
	badMap := func(field string, m map[string]string) string {
		for k, v := range m {
			if f := bad(field, k, v); f != "" {
				return f
			}
		}
		return ""
	}
	badReject := func(r *pluginpb.Reject) string {
		if r == nil {
			return ""
		}
		return first(bad("reject body", r.Body), badMap("reject header", r.Header))
	}
	if h := resp.Cache; h != nil {
		if f := bad("cache vary", h.Vary...); f != "" {
			return f
		}
	}
	switch d := resp.Decision.(type) {
	case *pluginpb.CallResponse_Validate:
		return first(badReject(d.Validate.Reject), badMap("labels", d.Validate.Labels))
	case *pluginpb.CallResponse_Shape:
		return first(badReject(d.Shape.Reject), bad("rate key", d.Shape.RateKey), badMap("labels", d.Shape.Labels))
	case *pluginpb.CallResponse_Route:
		r := d.Route
		return first(bad("service", r.Service), bad("path", r.Path), badMap("set header", r.SetHeader),
			bad("remove header", r.RemoveHeader...), badMap("labels", r.Labels))
	case *pluginpb.CallResponse_Respond:
		return first(badMap("set header", d.Respond.SetHeader), bad("remove header", d.Respond.RemoveHeader...))
	}
	return ""
}

func first(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
