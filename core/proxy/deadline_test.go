package proxy

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestClientDeadline(t *testing.T) {
	t0 := time.Unix(100, 0)
	cases := []struct {
		h    http.Header
		want time.Duration
		ok   bool
	}{
		{http.Header{TimeoutHeader: {"250ms"}}, 250 * time.Millisecond, true},
		{http.Header{"Grpc-Timeout": {"100m"}}, 100 * time.Millisecond, true},
		{http.Header{"Grpc-Timeout": {"2S"}, TimeoutHeader: {"3s"}}, 2 * time.Second, true},
		{http.Header{TimeoutHeader: {"-1s"}}, 0, false},
		{http.Header{TimeoutHeader: {"soon"}}, 0, false},
		{http.Header{"Grpc-Timeout": {"123456789m"}}, 0, false}, // more than 8 digits
		{http.Header{"Grpc-Timeout": {"5x"}}, 0, false},
		{http.Header{"Grpc-Timeout": {"+5S"}}, 0, false}, // digits only
		// Valid gRPC, longer than a time.Duration holds: no overflow into
		// a negative or tiny deadline.
		{http.Header{"Grpc-Timeout": {"99999999H"}}, math.MaxInt64, true},
		{http.Header{"Grpc-Timeout": {"2562048H"}}, math.MaxInt64, true},
		{http.Header{}, 0, false},
	}
	for _, c := range cases {
		got, ok := clientDeadline(c.h, t0)
		if ok != c.ok || ok && got.Sub(t0) != c.want {
			t.Errorf("clientDeadline(%v) = %v %v, want %v %v", c.h, got.Sub(t0), ok, c.want, c.ok)
		}
	}
	if s := formatGRPCTimeout(1500 * time.Microsecond); s != "1m" {
		t.Errorf("formatGRPCTimeout = %q", s)
	}
}
