package pluginpb

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// The codec's costs on a plugin call like plugins.BenchmarkRoundTrip's: a
// request view with a dozen headers and a label, a decision with two
// labels. The Fast variants are the framed call socket's decoders.
//
//	go test -run '^$' -bench Codec -benchmem ./sdk/pluginpb/

func benchReq() *CallRequest {
	h := []*HeaderField{}
	for _, kv := range [][2]string{{"Host", "api.example.com"}, {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"}, {"Accept", "application/json"}, {"Accept-Encoding", "gzip, br"}, {"Accept-Language", "en-GB,en;q=0.9"}, {"Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IiLCJ0aWVyIjoiZ29sZCJ9.c2lnbmF0dXJl"}, {"X-Request-Id", "01HZX3JQ9V7K2M4N6P8R0S2T4V"}, {"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, {"Cookie", "session=abc123; theme=dark"}, {"X-Forwarded-For", "203.0.113.7"}, {"X-Bench", "1"}} {
		h = append(h, &HeaderField{Name: kv[0], Values: []string{kv[1]}})
	}
	return &CallRequest{Id: 12345, Phase: Phase_PHASE_VALIDATE, TimeoutNanos: 50e6, Request: &Request{Id: "01HZX3JQ9V7K2M4N6P8R0S2T4V", Method: "GET", Scheme: "http", Host: "api.example.com", Path: "/api/v1/orders/12345", RawQuery: "expand=items&limit=20", Header: h, ClientIp: "127.0.0.1", Route: "all", Service: "app", Labels: map[string]string{"tenant": "acme"}}}
}

func benchResp() *CallResponse {
	return &CallResponse{Id: 12345, Decision: &CallResponse_Validate{Validate: &ValidateDecision{Labels: map[string]string{"user": "bob", "tier": "gold"}}}}
}

func BenchmarkCodecReqMarshal(b *testing.B) {
	m := benchReq()
	var buf []byte
	b.ReportAllocs()
	for range b.N {
		// As the frame writer did: size (for the bound), then encode.
		_ = proto.Size(m)
		buf, _ = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf[:0], m)
	}
}

func BenchmarkCodecReqUnmarshal(b *testing.B) {
	buf, _ := proto.Marshal(benchReq())
	b.ReportAllocs()
	for range b.N {
		m := new(CallRequest)
		if err := proto.Unmarshal(buf, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecRespMarshal(b *testing.B) {
	m := benchResp()
	var buf []byte
	b.ReportAllocs()
	for range b.N {
		// As the frame writer did: size (for the bound), then encode.
		_ = proto.Size(m)
		buf, _ = proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf[:0], m)
	}
}

func BenchmarkCodecRespUnmarshal(b *testing.B) {
	buf, _ := proto.Marshal(benchResp())
	b.ReportAllocs()
	for range b.N {
		m := new(CallResponse)
		if err := proto.Unmarshal(buf, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecReqUnmarshalFast(b *testing.B) {
	buf, _ := proto.Marshal(benchReq())
	b.ReportAllocs()
	for range b.N {
		m := new(CallRequest)
		if err := UnmarshalCallRequest(buf, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecRespUnmarshalFast(b *testing.B) {
	buf, _ := proto.Marshal(benchResp())
	b.ReportAllocs()
	for range b.N {
		m := new(CallResponse)
		if err := UnmarshalCallResponse(buf, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecReqMarshalFast(b *testing.B) {
	m := benchReq()
	var buf []byte
	b.ReportAllocs()
	for range b.N {
		_ = SizeCallRequest(m)
		buf, _ = appendFast(buf[:0], m)
	}
}

func BenchmarkCodecRespMarshalFast(b *testing.B) {
	m := benchResp()
	var buf []byte
	b.ReportAllocs()
	for range b.N {
		_ = SizeCallResponse(m)
		buf, _ = appendFast(buf[:0], m)
	}
}
