package wire

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/pluginpb"
)

// requestToWire builds the wire form of req, with at most maxBody bytes of
// its body (BodyTruncated set when it was cut here). Strings that are not
// UTF-8 (a header value with obs-text bytes, say) are sent with U+FFFD in
// place of the bad bytes: protobuf refuses to encode them, and on the
// stream that would fail every call in flight, not just this one.
func requestToWire(req *sdk.Request, maxBody int) *pluginpb.Request {
	w := &pluginpb.Request{
		Id: utf8s(req.ID), Method: utf8s(req.Method), Scheme: utf8s(req.Scheme), Host: utf8s(req.Host),
		Path: utf8s(req.Path), RawQuery: utf8s(req.RawQuery), Header: headerToWire(req.Header),
		ClientIp: utf8s(req.ClientIP), Route: utf8s(req.Route), Service: utf8s(req.Service),
		Labels: utf8Map(req.Labels), BodyTruncated: req.BodyTruncated,
	}
	if len(req.Body) > 0 && maxBody > 0 {
		w.Body = req.Body
		if len(w.Body) > maxBody {
			w.Body, w.BodyTruncated = w.Body[:maxBody], true
		}
	}
	if t := req.TLS; t != nil {
		w.Tls = &pluginpb.TLSInfo{Version: utf8s(t.Version), ServerName: utf8s(t.ServerName), CipherSuite: utf8s(t.CipherSuite),
			Alpn: utf8s(t.ALPN), PeerSubject: utf8s(t.PeerSubject)}
	}
	return w
}

func utf8s(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func utf8Map(m map[string]string) map[string]string {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			c := make(map[string]string, len(m))
			for k, v := range m {
				c[utf8s(k)] = utf8s(v)
			}
			return c
		}
	}
	return m
}

func utf8Slice(vs []string) []string {
	for i, v := range vs {
		if !utf8.ValidString(v) {
			c := make([]string, len(vs))
			copy(c, vs[:i])
			for j := i; j < len(vs); j++ {
				c[j] = utf8s(vs[j])
			}
			return c
		}
	}
	return vs
}

func headerToWire(h sdk.Header) []*pluginpb.HeaderField {
	if len(h) == 0 {
		return nil
	}
	fields := make([]pluginpb.HeaderField, len(h))
	out := make([]*pluginpb.HeaderField, 0, len(h))
	i := 0
	for k, v := range h {
		fields[i].Name, fields[i].Values = utf8s(k), utf8Slice(v)
		out = append(out, &fields[i])
		i++
	}
	return out
}

func observationToWire(o *sdk.Observation, maxBody int) *pluginpb.Observation {
	w := &pluginpb.Observation{
		Status: clamp32(o.Status), Outcome: utf8s(o.Outcome), TotalNanos: int64(o.Total), OverheadNanos: int64(o.Overhead), Passport: utf8s(o.Passport),
	}
	if o.Request != nil {
		w.Request = requestToWire(o.Request, maxBody)
	}
	return w
}

func clamp32(n int) int32 {
	return int32(max(min(n, math.MaxInt32), math.MinInt32))
}

// errPhase describes an answer that carries another phase's decision.
func errPhase(p sdk.Phase, resp *pluginpb.CallResponse) error {
	what := fmt.Sprintf("%T", resp.Decision)
	switch resp.Decision.(type) {
	case *pluginpb.CallResponse_Validate:
		what = "a validate decision"
	case *pluginpb.CallResponse_Shape:
		what = "a shape decision"
	case *pluginpb.CallResponse_Route:
		what = "a route decision"
	case *pluginpb.CallResponse_Respond:
		what = "a respond decision"
	}
	return &Error{Kind: KindInvalid, Err: fmt.Errorf("invalid answer: %s in answer to a %s call", what, p)}
}

func rejectFromWire(r *pluginpb.Reject) *sdk.Reject {
	if r == nil {
		return nil
	}
	return &sdk.Reject{Status: int(r.Status), Header: r.Header, Body: r.Body}
}

func validateFromWire(resp *pluginpb.CallResponse) (sdk.ValidateDecision, error) {
	switch d := resp.Decision.(type) {
	case nil:
		return sdk.ValidateDecision{}, nil
	case *pluginpb.CallResponse_Validate:
		return sdk.ValidateDecision{Reject: rejectFromWire(d.Validate.Reject), Labels: d.Validate.Labels}, nil
	}
	return sdk.ValidateDecision{}, errPhase(sdk.PhaseValidate, resp)
}

func shapeFromWire(resp *pluginpb.CallResponse) (sdk.ShapeDecision, error) {
	switch d := resp.Decision.(type) {
	case nil:
		return sdk.ShapeDecision{}, nil
	case *pluginpb.CallResponse_Shape:
		s := d.Shape
		if s.Priority < math.MinInt8 || s.Priority > math.MaxInt8 {
			return sdk.ShapeDecision{}, &Error{Kind: KindInvalid, Err: fmt.Errorf("invalid answer: priority %d out of range", s.Priority)}
		}
		if s.Cost < math.MinInt32 || s.Cost > math.MaxInt32 {
			return sdk.ShapeDecision{}, &Error{Kind: KindInvalid, Err: fmt.Errorf("invalid answer: cost %d out of range", s.Cost)}
		}
		return sdk.ShapeDecision{
			Reject: rejectFromWire(s.Reject), Priority: sdk.Priority(s.Priority), RateKey: s.RateKey, Cost: int(s.Cost), Labels: s.Labels,
		}, nil
	}
	return sdk.ShapeDecision{}, errPhase(sdk.PhaseShape, resp)
}

func routeFromWire(resp *pluginpb.CallResponse) (sdk.RouteDecision, error) {
	switch d := resp.Decision.(type) {
	case nil:
		return sdk.RouteDecision{}, nil
	case *pluginpb.CallResponse_Route:
		r := d.Route
		if r.TimeoutNanos < 0 {
			return sdk.RouteDecision{}, &Error{Kind: KindInvalid, Err: fmt.Errorf("invalid answer: negative timeout %v", time.Duration(r.TimeoutNanos))}
		}
		return sdk.RouteDecision{
			Service: r.Service, Path: r.Path, SetHeader: r.SetHeader, RemoveHeader: r.RemoveHeader,
			Timeout: time.Duration(r.TimeoutNanos), Labels: r.Labels,
		}, nil
	}
	return sdk.RouteDecision{}, errPhase(sdk.PhaseRoute, resp)
}

func respondFromWire(resp *pluginpb.CallResponse) (sdk.RespondDecision, error) {
	switch d := resp.Decision.(type) {
	case nil:
		return sdk.RespondDecision{}, nil
	case *pluginpb.CallResponse_Respond:
		return sdk.RespondDecision{SetHeader: d.Respond.SetHeader, RemoveHeader: d.Respond.RemoveHeader}, nil
	}
	return sdk.RespondDecision{}, errPhase(sdk.PhaseRespond, resp)
}

// Hint is a plugin's leave to cache a decision (plugin.CacheFor): for TTL,
// for requests that agree on the Vary parts.
type Hint struct {
	TTL  time.Duration
	Vary []string
}

func hintFromWire(h *pluginpb.CacheHint) Hint {
	if h == nil || h.TtlNanos <= 0 || len(h.Vary) == 0 {
		return Hint{}
	}
	return Hint{TTL: time.Duration(h.TtlNanos), Vary: h.Vary}
}
