package pluginpb

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The framed call socket's messages are encoded without protobuf's
// reflection (which encodes map fields through reflect) when they hold
// only the fields the fast decoders read: every CallRequest but the
// respond and observe phases', every CallResponse. The bytes are those of
// proto.Marshal up to the order of map entries, which protobuf leaves
// unspecified too; TestFastEncode checks them against proto.

// SizeCallRequest is proto.Size(m), the length of the frame m makes.
func SizeCallRequest(m *CallRequest) int {
	if fastEncodable(m) {
		return sizeCallRequest(m)
	}
	return proto.Size(m)
}

// SizeCallResponse is proto.Size(m), the length of the frame m makes.
func SizeCallResponse(m *CallResponse) int { return sizeCallResponse(m) }

func fastEncodable(m *CallRequest) bool { return m.Response == nil && m.Observation == nil }

// appendFast appends the encoding of m when it is a message the fast
// encoders take (and valid UTF-8), reporting whether it did; b is returned
// unchanged when it did not.
func appendFast(b []byte, m proto.Message) ([]byte, bool) {
	e := enc{b: b}
	switch m := m.(type) {
	case *CallRequest:
		if !fastEncodable(m) {
			return b, false
		}
		e.callRequest(m)
	case *CallResponse:
		e.callResponse(m)
	default:
		return b, false
	}
	if e.bad {
		return b, false
	}
	return e.b, true
}

// Sizes of fields, as proto3 writes them: zero values left out.

func sizeStr(s string) int {
	if s == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s)) // every tag here is one byte (fields 1–15)
}

func sizeVarint(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func sizeMsg(n int) int { return 1 + protowire.SizeBytes(n) }

func sizeStrs(ss []string) int {
	n := 0
	for _, s := range ss {
		n += 1 + protowire.SizeBytes(len(s)) // repeated: empty ones too
	}
	return n
}

func sizeMap(m map[string]string) int {
	n := 0
	for k, v := range m {
		n += sizeMsg(sizeEntry(k, v))
	}
	return n
}

// sizeEntry is a map entry's: key and value always written, as protobuf
// does.
func sizeEntry(k, v string) int { return 2 + protowire.SizeBytes(len(k)) + protowire.SizeBytes(len(v)) }

func sizeBool(v bool) int {
	if v {
		return 2
	}
	return 0
}

func i32(v int32) uint64 { return uint64(int64(v)) } // negative: ten bytes, as protobuf writes int32

func sizeCallRequest(m *CallRequest) int {
	n := sizeVarint(m.Id) + sizeVarint(i32(int32(m.Phase))) + sizeVarint(uint64(m.TimeoutNanos)) + sizeBool(m.Cancel)
	if m.Request != nil {
		n += sizeMsg(sizeRequest(m.Request))
	}
	return n
}

func sizeRequest(r *Request) int {
	n := sizeStr(r.Id) + sizeStr(r.Method) + sizeStr(r.Scheme) + sizeStr(r.Host) + sizeStr(r.Path) + sizeStr(r.RawQuery) +
		sizeStr(r.ClientIp) + sizeStr(r.Route) + sizeStr(r.Service) + sizeBool(r.BodyTruncated)
	for _, h := range r.Header {
		n += sizeMsg(sizeHeaderField(h))
	}
	if r.Tls != nil {
		n += sizeMsg(sizeTLSInfo(r.Tls))
	}
	n += sizeMap(r.Labels)
	if len(r.Body) > 0 {
		n += 1 + protowire.SizeBytes(len(r.Body))
	}
	return n
}

func sizeHeaderField(h *HeaderField) int {
	if h == nil {
		return 0
	}
	return sizeStr(h.Name) + sizeStrs(h.Values)
}

func sizeTLSInfo(t *TLSInfo) int {
	return sizeStr(t.Version) + sizeStr(t.ServerName) + sizeStr(t.CipherSuite) + sizeStr(t.Alpn) + sizeStr(t.PeerSubject)
}

func sizeCallResponse(m *CallResponse) int {
	n := sizeVarint(m.Id) + sizeStr(m.Error) + sizeVarint(i32(int32(m.ErrorKind)))
	switch d := m.Decision.(type) {
	case *CallResponse_Validate:
		n += sizeMsg(sizeValidateDecision(d.Validate))
	case *CallResponse_Shape:
		n += sizeMsg(sizeShapeDecision(d.Shape))
	case *CallResponse_Route:
		n += sizeMsg(sizeRouteDecision(d.Route))
	case *CallResponse_Respond:
		n += sizeMsg(sizeRespondDecision(d.Respond))
	}
	if m.Cache != nil {
		n += sizeMsg(sizeVarint(uint64(m.Cache.TtlNanos)) + sizeStrs(m.Cache.Vary))
	}
	return n
}

func sizeReject(r *Reject) int {
	if r == nil {
		return 0
	}
	return sizeMsg(sizeRejectBody(r))
}

func sizeRejectBody(r *Reject) int {
	return sizeVarint(i32(r.Status)) + sizeMap(r.Header) + sizeStr(r.Body)
}

func sizeValidateDecision(d *ValidateDecision) int {
	if d == nil {
		return 0
	}
	return sizeReject(d.Reject) + sizeMap(d.Labels)
}

func sizeShapeDecision(d *ShapeDecision) int {
	if d == nil {
		return 0
	}
	return sizeReject(d.Reject) + sizeVarint(i32(d.Priority)) + sizeStr(d.RateKey) + sizeVarint(uint64(d.Cost)) + sizeMap(d.Labels)
}

func sizeRouteDecision(d *RouteDecision) int {
	if d == nil {
		return 0
	}
	return sizeStr(d.Service) + sizeStr(d.Path) + sizeMap(d.SetHeader) + sizeStrs(d.RemoveHeader) +
		sizeVarint(uint64(d.TimeoutNanos)) + sizeMap(d.Labels)
}

func sizeRespondDecision(d *RespondDecision) int {
	if d == nil {
		return 0
	}
	return sizeMap(d.SetHeader) + sizeStrs(d.RemoveHeader)
}

// enc appends fields; bad is set by a string that is not UTF-8 (proto
// refuses to encode it: the caller falls back to proto for its error).
type enc struct {
	b   []byte
	bad bool
}

func (e *enc) tag(num protowire.Number, typ protowire.Type) {
	e.b = append(e.b, byte(num)<<3|byte(typ)) // fields 1–15
}

func (e *enc) str(num protowire.Number, s string) {
	if s != "" {
		e.rstr(num, s)
	}
}

// rstr writes s even when empty (repeated fields, map entries).
func (e *enc) rstr(num protowire.Number, s string) {
	if !utf8.ValidString(s) {
		e.bad = true
	}
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendString(e.b, s)
}

func (e *enc) varint(num protowire.Number, v uint64) {
	if v != 0 {
		e.tag(num, protowire.VarintType)
		e.b = protowire.AppendVarint(e.b, v)
	}
}

func (e *enc) bool(num protowire.Number, v bool) {
	if v {
		e.tag(num, protowire.VarintType)
		e.b = append(e.b, 1)
	}
}

// msg writes the header of a message field of n bytes.
func (e *enc) msg(num protowire.Number, n int) {
	e.tag(num, protowire.BytesType)
	e.b = protowire.AppendVarint(e.b, uint64(n))
}

func (e *enc) strMap(num protowire.Number, m map[string]string) {
	for k, v := range m {
		e.msg(num, sizeEntry(k, v))
		e.rstr(1, k)
		e.rstr(2, v)
	}
}

func (e *enc) callRequest(m *CallRequest) {
	e.varint(1, m.Id)
	e.varint(2, i32(int32(m.Phase)))
	e.varint(3, uint64(m.TimeoutNanos))
	if r := m.Request; r != nil {
		e.msg(4, sizeRequest(r))
		e.request(r)
	}
	e.bool(7, m.Cancel)
}

func (e *enc) request(r *Request) {
	e.str(1, r.Id)
	e.str(2, r.Method)
	e.str(3, r.Scheme)
	e.str(4, r.Host)
	e.str(5, r.Path)
	e.str(6, r.RawQuery)
	for _, h := range r.Header {
		e.msg(7, sizeHeaderField(h))
		if h != nil {
			e.str(1, h.Name)
			for _, v := range h.Values {
				e.rstr(2, v)
			}
		}
	}
	e.str(8, r.ClientIp)
	if t := r.Tls; t != nil {
		e.msg(9, sizeTLSInfo(t))
		e.str(1, t.Version)
		e.str(2, t.ServerName)
		e.str(3, t.CipherSuite)
		e.str(4, t.Alpn)
		e.str(5, t.PeerSubject)
	}
	e.str(10, r.Route)
	e.str(11, r.Service)
	e.strMap(12, r.Labels)
	if len(r.Body) > 0 {
		e.tag(13, protowire.BytesType)
		e.b = protowire.AppendBytes(e.b, r.Body)
	}
	e.bool(14, r.BodyTruncated)
}

func (e *enc) callResponse(m *CallResponse) {
	e.varint(1, m.Id)
	switch d := m.Decision.(type) {
	case *CallResponse_Validate:
		e.msg(2, sizeValidateDecision(d.Validate))
		if v := d.Validate; v != nil {
			e.reject(v.Reject)
			e.strMap(2, v.Labels)
		}
	case *CallResponse_Shape:
		e.msg(3, sizeShapeDecision(d.Shape))
		if s := d.Shape; s != nil {
			e.reject(s.Reject)
			e.varint(2, i32(s.Priority))
			e.str(3, s.RateKey)
			e.varint(4, uint64(s.Cost))
			e.strMap(5, s.Labels)
		}
	case *CallResponse_Route:
		e.msg(4, sizeRouteDecision(d.Route))
		if r := d.Route; r != nil {
			e.str(1, r.Service)
			e.str(2, r.Path)
			e.strMap(3, r.SetHeader)
			for _, h := range r.RemoveHeader {
				e.rstr(4, h)
			}
			e.varint(5, uint64(r.TimeoutNanos))
			e.strMap(6, r.Labels)
		}
	case *CallResponse_Respond:
		e.msg(5, sizeRespondDecision(d.Respond))
		if r := d.Respond; r != nil {
			e.strMap(1, r.SetHeader)
			for _, h := range r.RemoveHeader {
				e.rstr(2, h)
			}
		}
	}
	e.str(6, m.Error)
	if c := m.Cache; c != nil {
		e.msg(7, sizeVarint(uint64(c.TtlNanos))+sizeStrs(c.Vary))
		e.varint(1, uint64(c.TtlNanos))
		for _, v := range c.Vary {
			e.rstr(2, v)
		}
	}
	e.varint(8, i32(int32(m.ErrorKind)))
}

func (e *enc) reject(r *Reject) {
	if r == nil {
		return
	}
	e.msg(1, sizeRejectBody(r))
	e.varint(1, i32(r.Status))
	e.strMap(2, r.Header)
	e.str(3, r.Body)
}
