package traceparent

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
)

func TestStartContinuesW3C(t *testing.T) {
	h := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	var c Context
	NewSampler(0).Start(&c, h)
	if c.From != W3C || c.Trace.String() != "4bf92f3577b34da6a3ce929d0e0e4736" || c.Parent.String() != "00f067aa0ba902b7" || !c.Sampled {
		t.Fatalf("got %+v", c)
	}
	if !c.Span.IsValid() || c.Span == c.Parent {
		t.Fatalf("span id %s: want a new one", c.Span)
	}
	out := http.Header{}
	c.Inject(out)
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + c.Span.String() + "-01"
	if got := out.Get("Traceparent"); got != want {
		t.Fatalf("traceparent %q, want %q", got, want)
	}
}

func TestStartRejectsMalformedW3C(t *testing.T) {
	for _, v := range []string{
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", // version 00 has exactly four fields
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",       // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       // zero parent
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       // forbidden version
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       // upper case
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",          // short
	} {
		var c Context
		NewSampler(0).Start(&c, http.Header{"Traceparent": {v}})
		if c.From != None || c.Sampled || c.Parent.IsValid() || !c.Trace.IsValid() {
			t.Errorf("%q: got %+v, want a new unsampled trace", v, c)
		}
	}
	// A later version with more fields is read by its first four.
	var c Context
	NewSampler(0).Start(&c, http.Header{"Traceparent": {"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more"}})
	if c.From != W3C {
		t.Errorf("future version: got %+v", c)
	}
}

func TestStartAcceptsB3(t *testing.T) {
	var c Context
	NewSampler(0).Start(&c, http.Header{"B3": {"80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90"}})
	if c.From != B3 || c.Trace.String() != "80f198ee56343ba864fe8b2a57d3eff7" || c.Parent.String() != "e457b5a2e4d86bd1" || !c.Sampled {
		t.Fatalf("single: got %+v", c)
	}
	out := http.Header{}
	c.Inject(out)
	if got := out.Get("B3"); got != "80f198ee56343ba864fe8b2a57d3eff7-"+c.Span.String()+"-1" {
		t.Fatalf("b3 out %q", got)
	}
	if !strings.HasPrefix(out.Get("Traceparent"), "00-80f198ee56343ba864fe8b2a57d3eff7-") {
		t.Fatalf("traceparent out %q", out.Get("Traceparent"))
	}

	c = Context{}
	NewSampler(1).Start(&c, http.Header{"X-B3-Traceid": {"64fe8b2a57d3eff7"}, "X-B3-Spanid": {"e457b5a2e4d86bd1"}, "X-B3-Sampled": {"0"}})
	if c.From != B3Multi || c.Trace.String() != "000000000000000064fe8b2a57d3eff7" || c.Sampled {
		t.Fatalf("multi: got %+v (the caller's decision not to sample wins over the ratio)", c)
	}
	out = http.Header{}
	c.Inject(out)
	if out.Get("X-B3-Spanid") != c.Span.String() || out.Get("X-B3-Parentspanid") != "e457b5a2e4d86bd1" || out.Get("X-B3-Sampled") != "0" {
		t.Fatalf("multi out %v", out)
	}
}

func TestSamplerRatio(t *testing.T) {
	for _, ratio := range []float64{0, 0.01, 0.5, 1} {
		s := NewSampler(ratio)
		n, sampled := 200000, 0
		var c Context
		for i := 0; i < n; i++ {
			s.Start(&c, http.Header{})
			if c.Sampled {
				sampled++
			}
		}
		got := float64(sampled) / float64(n)
		if d := got - ratio; d > 0.005 || d < -0.005 {
			t.Errorf("ratio %v: sampled %v", ratio, got)
		}
	}
}

func TestStartAllocatesNothing(t *testing.T) {
	h := http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
	s := NewSampler(0.01)
	var c Context
	if n := testing.AllocsPerRun(100, func() { s.Start(&c, h) }); n != 0 {
		t.Fatalf("Start allocates %v times", n)
	}
}

// BenchmarkStartInject is what tracing costs a request that arrives
// without a trace context: start one, decide sampling, tell the endpoint.
func BenchmarkStartInject(b *testing.B) {
	in := http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}}
	out := http.Header{"Accept": {"*/*"}, "User-Agent": {"bench"}}
	s := NewSampler(0.01)
	var c Context
	b.ReportAllocs()
	cpu0 := cpuNanos()
	for i := 0; i < b.N; i++ {
		s.Start(&c, in)
		c.Inject(out)
	}
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuNanos is the process's CPU time so far (user and system), in ns:
// benchmarks report it per op, which a busy machine does not inflate.
func cpuNanos() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
