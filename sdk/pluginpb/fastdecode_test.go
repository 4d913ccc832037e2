package pluginpb

import (
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// randomMessages builds CallRequests and CallResponses with every field
// the fast decoders know, at random, some left empty.
type randomMessages struct{ r *rand.Rand }

func (g randomMessages) str() string {
	const alphabet = "abcXYZ-_/.:; é€\u2028"
	if g.r.IntN(4) == 0 {
		return ""
	}
	rs := []rune(alphabet)
	b := make([]rune, g.r.IntN(12))
	for i := range b {
		b[i] = rs[g.r.IntN(len(rs))]
	}
	return string(b)
}

func (g randomMessages) strs() []string {
	var s []string
	for range g.r.IntN(4) {
		s = append(s, g.str())
	}
	return s
}

func (g randomMessages) kv() map[string]string {
	if g.r.IntN(3) == 0 {
		return nil
	}
	m := map[string]string{}
	for range g.r.IntN(4) {
		m[g.str()] = g.str()
	}
	return m
}

func (g randomMessages) request() *Request {
	r := &Request{Id: g.str(), Method: g.str(), Scheme: g.str(), Host: g.str(), Path: g.str(), RawQuery: g.str(),
		ClientIp: g.str(), Route: g.str(), Service: g.str(), Labels: g.kv(), BodyTruncated: g.r.IntN(2) == 0}
	for range g.r.IntN(5) {
		r.Header = append(r.Header, &HeaderField{Name: g.str(), Values: g.strs()})
	}
	if g.r.IntN(2) == 0 {
		r.Tls = &TLSInfo{Version: g.str(), ServerName: g.str(), CipherSuite: g.str(), Alpn: g.str(), PeerSubject: g.str()}
	}
	if g.r.IntN(2) == 0 {
		r.Body = []byte(g.str())
	}
	return r
}

func (g randomMessages) callRequest() *CallRequest {
	m := &CallRequest{Id: g.r.Uint64(), Phase: Phase(g.r.IntN(7) - 1), TimeoutNanos: g.r.Int64() - g.r.Int64(), Cancel: g.r.IntN(5) == 0}
	if g.r.IntN(6) != 0 {
		m.Request = g.request()
	}
	if g.r.IntN(8) == 0 { // the respond and observe phases' parts: proto's
		m.Response = &Response{Status: int32(g.r.IntN(600))}
	}
	return m
}

func (g randomMessages) reject() *Reject {
	if g.r.IntN(2) == 0 {
		return nil
	}
	return &Reject{Status: int32(g.r.IntN(1200) - 100), Header: g.kv(), Body: g.str()}
}

func (g randomMessages) callResponse() *CallResponse {
	m := &CallResponse{Id: g.r.Uint64(), Error: g.str(), ErrorKind: ErrorKind(g.r.IntN(6) - 1)}
	switch g.r.IntN(5) {
	case 1:
		m.Decision = &CallResponse_Validate{Validate: &ValidateDecision{Reject: g.reject(), Labels: g.kv()}}
	case 2:
		m.Decision = &CallResponse_Shape{Shape: &ShapeDecision{Reject: g.reject(), Priority: int32(g.r.IntN(300) - 150),
			RateKey: g.str(), Cost: g.r.Int64() - g.r.Int64(), Labels: g.kv()}}
	case 3:
		m.Decision = &CallResponse_Route{Route: &RouteDecision{Service: g.str(), Path: g.str(), SetHeader: g.kv(),
			RemoveHeader: g.strs(), TimeoutNanos: g.r.Int64N(1e12), Labels: g.kv()}}
	case 4:
		m.Decision = &CallResponse_Respond{Respond: &RespondDecision{SetHeader: g.kv(), RemoveHeader: g.strs()}}
	}
	if g.r.IntN(3) == 0 {
		m.Cache = &CacheHint{TtlNanos: g.r.Int64N(1e12), Vary: g.strs()}
	}
	return m
}

// checkSame decodes b with the fast decoders and with proto.Unmarshal and
// fails unless both agree: the same message, or both an error.
func checkSame(t *testing.T, b []byte) {
	t.Helper()
	var fq, pq CallRequest
	ferr, perr := UnmarshalCallRequest(b, &fq), proto.Unmarshal(b, &pq)
	if (ferr == nil) != (perr == nil) || perr == nil && !proto.Equal(&fq, &pq) {
		t.Fatalf("CallRequest of %x:\nfast  %v (%v)\nproto %v (%v)", b, &fq, ferr, &pq, perr)
	}
	var fr, pr CallResponse
	ferr, perr = UnmarshalCallResponse(b, &fr), proto.Unmarshal(b, &pr)
	if (ferr == nil) != (perr == nil) || perr == nil && !proto.Equal(&fr, &pr) {
		t.Fatalf("CallResponse of %x:\nfast  %v (%v)\nproto %v (%v)", b, &fr, ferr, &pr, perr)
	}
}

// Every message proto.Marshal writes decodes to the same message, and
// the common ones without falling back to proto.
func TestFastDecodeRoundTrip(t *testing.T) {
	g := randomMessages{rand.New(rand.NewPCG(1, 2))}
	fast := 0
	const n = 3000
	for range n {
		q := g.callRequest()
		b, err := proto.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		checkSame(t, b)
		var m CallRequest
		if fastCallRequest(b, &m) {
			fast++
		} else if q.Response == nil {
			t.Fatalf("fell back on %v", q)
		}
		r := g.callResponse()
		if b, err = proto.Marshal(r); err != nil {
			t.Fatal(err)
		}
		checkSame(t, b)
		var mr CallResponse
		if !fastCallResponse(b, &mr) {
			t.Fatalf("fell back on %v", r)
		}
	}
	t.Logf("%d of %d requests decoded without proto", fast, n)
}

// Input proto would read differently from the canonical form (an unknown
// field, a message field twice, two decisions, invalid UTF-8, a wrong wire
// type, a truncated field) decodes as proto decodes it.
func TestFastDecodeFallsBack(t *testing.T) {
	base, _ := proto.Marshal(&CallResponse{Id: 3, Decision: &CallResponse_Validate{Validate: &ValidateDecision{Labels: map[string]string{"a": "b"}}}})
	req, _ := proto.Marshal(&CallRequest{Id: 4, Request: &Request{Path: "/x", Labels: map[string]string{"k": "v"}}})
	cases := map[string][]byte{
		"unknown field":         protowire.AppendString(protowire.AppendTag(append([]byte{}, base...), 99, protowire.BytesType), "new"),
		"message field twice":   append(append([]byte{}, req...), req[2:]...),
		"two decisions":         protowire.AppendBytes(protowire.AppendTag(append([]byte{}, base...), 5, protowire.BytesType), nil),
		"invalid UTF-8":         protowire.AppendString(protowire.AppendTag(nil, 6, protowire.BytesType), "\xff"),
		"wrong wire type":       protowire.AppendVarint(protowire.AppendTag(nil, 6, protowire.VarintType), 1),
		"truncated":             base[:len(base)-1],
		"fixed32 field":         protowire.AppendFixed32(protowire.AppendTag(nil, 1, protowire.Fixed32Type), 7),
		"field number 0":        {0x02, 0x00},
		"empty":                 {},
		"request label, no key": protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), protowire.AppendBytes(protowire.AppendTag(nil, 12, protowire.BytesType), protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "v"))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) { checkSame(t, b) })
	}
}

func FuzzFastDecode(f *testing.F) {
	g := randomMessages{rand.New(rand.NewPCG(3, 4))}
	for range 20 {
		b, _ := proto.Marshal(g.callRequest())
		f.Add(b)
		b, _ = proto.Marshal(g.callResponse())
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkSame(t, b) })
}

// The fast encoders write what proto.Marshal writes (up to the order of map
// entries): the same length, decoding to the same message; the sizes
// agree with proto.Size; a string that is not UTF-8 is left to proto.
func TestFastEncode(t *testing.T) {
	g := randomMessages{rand.New(rand.NewPCG(5, 6))}
	check := func(m proto.Message, size int) {
		t.Helper()
		b, ok := appendFast(nil, m)
		if !ok {
			t.Fatalf("not encoded: %v", m)
		}
		if want := proto.Size(m); len(b) != want || size != want {
			t.Fatalf("%v: %d bytes, size %d, proto.Size %d", m, len(b), size, want)
		}
		got := m.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, got); err != nil || !proto.Equal(got, m) {
			t.Fatalf("%v encoded as %x, read back as %v (%v)", m, b, got, err)
		}
		checkSame(t, b)
	}
	for range 3000 {
		q := g.callRequest()
		if q.Response != nil {
			if _, ok := appendFast(nil, q); ok {
				t.Fatalf("a respond call was encoded: %v", q)
			}
			if SizeCallRequest(q) != proto.Size(q) {
				t.Fatalf("SizeCallRequest %d, proto.Size %d", SizeCallRequest(q), proto.Size(q))
			}
			continue
		}
		check(q, SizeCallRequest(q))
		r := g.callResponse()
		check(r, SizeCallResponse(r))
	}
	if b, ok := appendFast([]byte("x"), &CallResponse{Error: "\xff"}); ok || string(b) != "x" {
		t.Fatalf("invalid UTF-8 encoded: %x, %v", b, ok)
	}
}
