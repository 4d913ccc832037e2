package plugin_test

import (
	"context"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

type echo struct{}

func (echo) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	return sdk.ValidateDecision{Labels: map[string]string{"user": "bob", "tier": "gold"}}, nil
}

// BenchmarkInProcess is the protocol's own cost: both ends of a call (host
// encoding, gRPC stream, plugin decoding and encoding, host decoding) in
// one process over an in-memory connection, without TLS, sockets or a
// second process. Package plugins' BenchmarkRoundTrip measures the real
// thing.
func BenchmarkInProcess(b *testing.B) {
	p := sdktest.Serve(b, echo{}, nil)
	if p.Info().Transport != wire.TransportStream {
		b.Fatal("not on the stream")
	}
	req := sdktest.NewRequest("GET", "/api/v1/orders/12345?expand=items", "Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
		"Accept", "application/json", "User-Agent", "bench/1.0", "X-Request-Id", "01HZX3JQ9V7K2M4N6P8R0S2T4V")
	b.ReportAllocs()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := p.Validate(ctx, req); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
}
