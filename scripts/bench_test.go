package scripts

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

const benchValidate = `exports.validate = function (req) {
	if (!req.header("Authorization")) return { reject: { status: 401, body: "no token" } };
	if (req.path.length > 1024) return { reject: { status: 414 } };
	if (req.method === "POST") return { labels: { user: "u1" } };
	return undefined;
};`

// benchValidateCalls measures Validate on a pooled runtime: the per-call
// cost of the host (pool checkout, interrupt arming, request view, decision
// conversion) plus the script. Besides ns/op it reports the median and p99
// of single calls, which survive a machine shared with other work better
// than the mean.
func benchValidateCalls(b *testing.B, req *sdk.Request, check func(sdk.ValidateDecision) bool) {
	p := filepath.Join(b.TempDir(), "v.js")
	if err := os.WriteFile(p, []byte(benchValidate), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := Compile(p, DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	durations := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d, err := s.Validate(ctx, req)
		durations[i] = time.Since(start)
		if err != nil || !check(d) {
			b.Fatal(d, err)
		}
	}
	b.StopTimer()
	sort.Slice(durations, func(i, j int) bool { return durations[i] < durations[j] })
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkValidateSmall: a small validate that allows the request
// (returns undefined), the common case.
func BenchmarkValidateSmall(b *testing.B) {
	benchValidateCalls(b, &sdk.Request{ID: "r1", Method: "GET", Path: "/api/users/42", Header: sdk.Header{"Authorization": {"Bearer abc"}}},
		func(d sdk.ValidateDecision) bool { return d.Reject == nil })
}

// BenchmarkValidateReject: the same script returning {reject: {status, body}}.
func BenchmarkValidateReject(b *testing.B) {
	benchValidateCalls(b, &sdk.Request{ID: "r1", Method: "GET", Path: "/api/users/42", Header: sdk.Header{}},
		func(d sdk.ValidateDecision) bool { return d.Reject != nil && d.Reject.Status == 401 })
}

// BenchmarkValidateLabels: the same script returning {labels: {user}}.
func BenchmarkValidateLabels(b *testing.B) {
	benchValidateCalls(b, &sdk.Request{ID: "r1", Method: "POST", Path: "/api/users/42", Header: sdk.Header{"Authorization": {"Bearer abc"}}},
		func(d sdk.ValidateDecision) bool { return d.Labels["user"] == "u1" })
}

// BenchmarkScenarioHooks runs the hooks bench scenario's validate and
// route scripts (bench/scenario/testdata/hooks) on the request a closed
// loop sends: the JavaScript work the gateway does per request in that
// scenario, without the gateway around it.
func BenchmarkScenarioHooks(b *testing.B) {
	v, r := scenarioScript(b, "validate.js"), scenarioScript(b, "route.js")
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	req := scenarioRequest()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req.Labels = nil
		d, err := v.Validate(ctx, req)
		if err != nil || d.Reject != nil || d.Labels["client"] != "anonymous" {
			b.Fatal(d, err)
		}
		req.Labels = d.Labels
		rd, err := r.Route(ctx, req)
		if err != nil || rd.SetHeader["X-Client"] != "anonymous" {
			b.Fatal(rd, err)
		}
	}
}

// BenchmarkNoop: a validate that returns at once (the hooks scenario's
// js-noop configuration): the host's own cost per call.
func BenchmarkNoop(b *testing.B) {
	s := scenarioScript(b, "noop.js")
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	req := scenarioRequest()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Validate(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// scenarioScript compiles one of the hooks bench scenario's scripts.
func scenarioScript(b *testing.B, name string) *Script {
	s, err := Compile(filepath.Join("..", "bench", "scenario", "testdata", "hooks", name), DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// scenarioRequest is the request the scenario's closed loop (wrk) sends.
func scenarioRequest() *sdk.Request {
	return &sdk.Request{ID: "r1", Method: "GET", Host: "127.0.0.1:8080", Path: "/", Header: sdk.Header{}}
}

// BenchmarkNewRuntime: making one runtime of the hooks scenario's validate
// script (sandbox, guards, views, top-level code), what the pool's maker
// spends in the background for each runtime it makes or replaces.
func BenchmarkNewRuntime(b *testing.B) {
	s := scenarioScript(b, "validate.js")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := s.newRuntime()
		if err != nil {
			b.Fatal(err)
		}
		st.watch.stop()
	}
}
