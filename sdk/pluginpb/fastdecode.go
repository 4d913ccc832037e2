package pluginpb

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// UnmarshalCallRequest decodes b into m, as proto.Unmarshal does. The
// framed call socket's messages are decoded without protobuf's reflection
// (which decodes every map entry through reflect, a dozen allocations for
// two labels) when they are in the form proto.Marshal writes: known fields
// of the right wire type, each message field once. Anything else — an
// unknown field (a newer peer), a field repeated, the respond and observe
// phases' parts, invalid UTF-8 — is decoded by proto.Unmarshal, so the
// result, and the error, are always proto.Unmarshal's (FuzzFastDecode).
func UnmarshalCallRequest(b []byte, m *CallRequest) error {
	if fastCallRequest(b, m) {
		return nil
	}
	proto.Reset(m)
	return proto.Unmarshal(b, m)
}

// UnmarshalCallResponse is UnmarshalCallRequest's counterpart for answers.
func UnmarshalCallResponse(b []byte, m *CallResponse) error {
	if fastCallResponse(b, m) {
		return nil
	}
	proto.Reset(m)
	return proto.Unmarshal(b, m)
}

// field is one field of a message: its number and wire type, and its value
// (v for varints, s for length-delimited ones).
type field struct {
	num protowire.Number
	typ protowire.Type
	v   uint64
	s   []byte
}

// fields walks the fields of a message. next reports false at the end and
// when the input is malformed or uses a wire type other than varint and
// length-delimited (bad is then set: fall back).
type fields struct {
	b   []byte
	bad bool
}

func (it *fields) next(f *field) bool {
	if len(it.b) == 0 {
		return false
	}
	num, typ, n := protowire.ConsumeTag(it.b)
	if n < 0 {
		it.bad = true
		return false
	}
	it.b = it.b[n:]
	f.num, f.typ = num, typ
	switch typ {
	case protowire.VarintType:
		f.v, n = protowire.ConsumeVarint(it.b)
	case protowire.BytesType:
		f.s, n = protowire.ConsumeBytes(it.b)
	default:
		n = -1
	}
	if n < 0 {
		it.bad = true
		return false
	}
	it.b = it.b[n:]
	return true
}

// str returns f's value as a string, false when f is not length-delimited
// or not UTF-8.
func (f *field) str() (string, bool) {
	if f.typ != protowire.BytesType || !utf8.Valid(f.s) {
		return "", false
	}
	return string(f.s), true
}

func (f *field) varint() (uint64, bool) { return f.v, f.typ == protowire.VarintType }

func (f *field) msg() ([]byte, bool) { return f.s, f.typ == protowire.BytesType }

func fastCallRequest(b []byte, m *CallRequest) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		var v uint64
		switch f.num {
		case 1:
			m.Id, ok = f.varint()
		case 2:
			v, ok = f.varint()
			m.Phase = Phase(int32(v))
		case 3:
			v, ok = f.varint()
			m.TimeoutNanos = int64(v)
		case 4:
			var s []byte
			if s, ok = f.msg(); ok && m.Request == nil {
				m.Request = new(Request)
				ok = fastRequest(s, m.Request)
			} else {
				ok = false
			}
		case 7:
			v, ok = f.varint()
			m.Cancel = v != 0
		default: // 5 and 6 (respond, observe) and unknown fields
			ok = false
		}
	}
	return ok && !it.bad
}

func fastRequest(b []byte, m *Request) bool {
	// The headers are counted first, so that they are allocated at once.
	nh, it := 0, fields{b: b}
	var f field
	for it.next(&f) {
		if f.num == 7 {
			nh++
		}
	}
	if it.bad {
		return false
	}
	var hs []HeaderField
	var vals []string // every header's values, in one array (most have one)
	if nh > 0 {
		hs = make([]HeaderField, nh)
		m.Header = make([]*HeaderField, 0, nh)
		vals = make([]string, 0, nh)
	}
	ok := true
	it = fields{b: b}
	for ok && it.next(&f) {
		var v uint64
		switch f.num {
		case 1:
			m.Id, ok = f.str()
		case 2:
			m.Method, ok = f.str()
		case 3:
			m.Scheme, ok = f.str()
		case 4:
			m.Host, ok = f.str()
		case 5:
			m.Path, ok = f.str()
		case 6:
			m.RawQuery, ok = f.str()
		case 7:
			h := &hs[len(m.Header)]
			var s []byte
			if s, ok = f.msg(); ok {
				start := len(vals)
				vals, ok = fastHeaderField(s, h, vals)
				h.Values = vals[start:len(vals):len(vals)]
				if len(h.Values) == 0 {
					h.Values = nil
				}
			}
			m.Header = append(m.Header, h)
		case 8:
			m.ClientIp, ok = f.str()
		case 9:
			var s []byte
			if s, ok = f.msg(); ok && m.Tls == nil {
				m.Tls = new(TLSInfo)
				ok = fastTLSInfo(s, m.Tls)
			} else {
				ok = false
			}
		case 10:
			m.Route, ok = f.str()
		case 11:
			m.Service, ok = f.str()
		case 12:
			m.Labels, ok = fastMapEntry(&f, m.Labels)
		case 13:
			if ok = f.typ == protowire.BytesType; ok {
				m.Body = append([]byte{}, f.s...)
			}
		case 14:
			v, ok = f.varint()
			m.BodyTruncated = v != 0
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastHeaderField(b []byte, h *HeaderField, vals []string) ([]string, bool) {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		switch f.num {
		case 1:
			h.Name, ok = f.str()
		case 2:
			var s string
			if s, ok = f.str(); ok {
				vals = append(vals, s)
			}
		default:
			ok = false
		}
	}
	return vals, ok && !it.bad
}

func fastTLSInfo(b []byte, t *TLSInfo) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		switch f.num {
		case 1:
			t.Version, ok = f.str()
		case 2:
			t.ServerName, ok = f.str()
		case 3:
			t.CipherSuite, ok = f.str()
		case 4:
			t.Alpn, ok = f.str()
		case 5:
			t.PeerSubject, ok = f.str()
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

// fastMapEntry adds the map<string, string> entry in f to m (made when
// nil) and returns m.
func fastMapEntry(f *field, m map[string]string) (map[string]string, bool) {
	b, ok := f.msg()
	if !ok {
		return m, false
	}
	var k, v string
	it := fields{b: b}
	var e field
	for ok && it.next(&e) {
		switch e.num {
		case 1:
			k, ok = e.str()
		case 2:
			v, ok = e.str()
		default:
			ok = false
		}
	}
	if !ok || it.bad {
		return m, false
	}
	if m == nil {
		m = make(map[string]string, 2)
	}
	m[k] = v
	return m, true
}

func fastCallResponse(b []byte, m *CallResponse) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		var v uint64
		var s []byte
		if f.num >= 2 && f.num <= 5 || f.num == 7 {
			// A message field: once, and only one of the decisions.
			if s, ok = f.msg(); !ok || f.num != 7 && m.Decision != nil || f.num == 7 && m.Cache != nil {
				return false
			}
		}
		switch f.num {
		case 1:
			m.Id, ok = f.varint()
		case 2:
			d := new(ValidateDecision)
			m.Decision = &CallResponse_Validate{Validate: d}
			ok = fastValidateDecision(s, d)
		case 3:
			d := new(ShapeDecision)
			m.Decision = &CallResponse_Shape{Shape: d}
			ok = fastShapeDecision(s, d)
		case 4:
			d := new(RouteDecision)
			m.Decision = &CallResponse_Route{Route: d}
			ok = fastRouteDecision(s, d)
		case 5:
			d := new(RespondDecision)
			m.Decision = &CallResponse_Respond{Respond: d}
			ok = fastRespondDecision(s, d)
		case 6:
			m.Error, ok = f.str()
		case 7:
			m.Cache = new(CacheHint)
			ok = fastCacheHint(s, m.Cache)
		case 8:
			v, ok = f.varint()
			m.ErrorKind = ErrorKind(int32(v))
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastReject(f *field, r **Reject) bool {
	b, ok := f.msg()
	if !ok || *r != nil {
		return false
	}
	*r = new(Reject)
	it := fields{b: b}
	var e field
	for ok && it.next(&e) {
		var v uint64
		switch e.num {
		case 1:
			v, ok = e.varint()
			(*r).Status = int32(v)
		case 2:
			(*r).Header, ok = fastMapEntry(&e, (*r).Header)
		case 3:
			(*r).Body, ok = e.str()
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastValidateDecision(b []byte, d *ValidateDecision) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		switch f.num {
		case 1:
			ok = fastReject(&f, &d.Reject)
		case 2:
			d.Labels, ok = fastMapEntry(&f, d.Labels)
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastShapeDecision(b []byte, d *ShapeDecision) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		var v uint64
		switch f.num {
		case 1:
			ok = fastReject(&f, &d.Reject)
		case 2:
			v, ok = f.varint()
			d.Priority = int32(v)
		case 3:
			d.RateKey, ok = f.str()
		case 4:
			v, ok = f.varint()
			d.Cost = int64(v)
		case 5:
			d.Labels, ok = fastMapEntry(&f, d.Labels)
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastRouteDecision(b []byte, d *RouteDecision) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		var v uint64
		switch f.num {
		case 1:
			d.Service, ok = f.str()
		case 2:
			d.Path, ok = f.str()
		case 3:
			d.SetHeader, ok = fastMapEntry(&f, d.SetHeader)
		case 4:
			var s string
			if s, ok = f.str(); ok {
				d.RemoveHeader = append(d.RemoveHeader, s)
			}
		case 5:
			v, ok = f.varint()
			d.TimeoutNanos = int64(v)
		case 6:
			d.Labels, ok = fastMapEntry(&f, d.Labels)
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastRespondDecision(b []byte, d *RespondDecision) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		switch f.num {
		case 1:
			d.SetHeader, ok = fastMapEntry(&f, d.SetHeader)
		case 2:
			var s string
			if s, ok = f.str(); ok {
				d.RemoveHeader = append(d.RemoveHeader, s)
			}
		default:
			ok = false
		}
	}
	return ok && !it.bad
}

func fastCacheHint(b []byte, h *CacheHint) bool {
	it := fields{b: b}
	var f field
	ok := true
	for ok && it.next(&f) {
		var v uint64
		switch f.num {
		case 1:
			v, ok = f.varint()
			h.TtlNanos = int64(v)
		case 2:
			var s string
			if s, ok = f.str(); ok {
				h.Vary = append(h.Vary, s)
			}
		default:
			ok = false
		}
	}
	return ok && !it.bad
}
