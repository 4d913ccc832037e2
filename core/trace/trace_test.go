package trace

import (
	"context"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/traceparent"
)

// A passport with a validate hook, a failed first attempt and a second one
// that succeeded.
const timeline = "+0.000ms=ACCEPTED +0.050ms=HEADERS_READ +0.060ms=HOOK_ENTER(validate:auth@v1) " +
	"+0.310ms=HOOK_EXIT(validate:auth@v1) +0.320ms=VALIDATED +0.330ms=SHAPED +0.340ms=ADMITTED +0.350ms=ROUTED " +
	"+0.360ms=ENDPOINT_PICKED(10.0.0.1:80) +1.360ms=ATTEMPT_FAILED(connect_refused) " +
	"+1.400ms=ENDPOINT_PICKED(10.0.0.2:80) +1.500ms=CONN_ACQUIRED(new) +1.550ms=REQ_HEADERS_SENT " +
	"+3.550ms=RESP_HEADERS_RECEIVED +3.600ms=RESPONDED +3.900ms=RESP_BODY_SENT +4.000ms=DONE"

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// passportOf replays stamps into a passport started at start.
func passportOf(t *testing.T, start time.Time, text string) *passport.Passport {
	t.Helper()
	stamps, err := passport.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: start}
	p := passport.New(clk)
	for _, s := range stamps {
		clk.t = start.Add(s.Offset)
		p.StampNote(s.State, s.Note)
	}
	return p
}

func newTracer(t *testing.T, exp *tracetest.InMemoryExporter, queue int) *Tracer {
	t.Helper()
	tr, err := New(Options{Exporter: exp, Queue: queue, BatchSize: 64, ExportTimeout: time.Second, BatchDelay: time.Second,
		ServiceName: "gatehouse", Version: "test", Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr
}

func TestSpansMatchPassport(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := newTracer(t, exp, 16)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var tc traceparent.Context
	traceparent.NewSampler(0).Start(&tc, http.Header{"Traceparent": {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
	rec := &proxy.Record{ID: "r1", Method: "GET", Path: "/x", Route: "api", Service: "users", Endpoint: "10.0.0.2:80",
		Status: 200, Outcome: failure.Success, Attempts: 2, Passport: passportOf(t, start, timeline), Trace: tc}
	tr.Observe(rec)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 4 {
		t.Fatalf("got %d spans, want request + hook + 2 attempts", len(spans))
	}
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	root, ok := byName["GET api"]
	if !ok {
		t.Fatalf("no request span in %v", byName)
	}
	if root.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || root.SpanContext.SpanID() != oteltrace.SpanID(tc.Span) {
		t.Errorf("request span %s/%s, want the ids sent to the endpoint (%s)", root.SpanContext.TraceID(), root.SpanContext.SpanID(), tc.Span)
	}
	if root.Parent.SpanID().String() != "00f067aa0ba902b7" || !root.Parent.IsRemote() {
		t.Errorf("request span parent %s, want the caller's span", root.Parent.SpanID())
	}
	if root.SpanKind != oteltrace.SpanKindServer || !root.StartTime.Equal(start) || root.EndTime.Sub(root.StartTime) != 4*time.Millisecond {
		t.Errorf("request span kind %v, %v..%v", root.SpanKind, root.StartTime, root.EndTime)
	}
	if len(root.Events) != 15 {
		t.Errorf("request span has %d events, want one per state stamp (15)", len(root.Events))
	}
	want := []struct {
		name       string
		kind       oteltrace.SpanKind
		start, end time.Duration
		failed     bool
	}{
		{"hook validate:auth@v1", oteltrace.SpanKindInternal, 60 * time.Microsecond, 310 * time.Microsecond, false},
		{"attempt 1 10.0.0.1:80", oteltrace.SpanKindClient, 360 * time.Microsecond, 1360 * time.Microsecond, true},
		{"attempt 2 10.0.0.2:80", oteltrace.SpanKindClient, 1400 * time.Microsecond, 3900 * time.Microsecond, false},
	}
	for _, w := range want {
		s, ok := byName[w.name]
		if !ok {
			t.Errorf("no span %q", w.name)
			continue
		}
		if s.Parent.SpanID() != root.SpanContext.SpanID() || s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("%s: parent %s, want the request span %s", w.name, s.Parent.SpanID(), root.SpanContext.SpanID())
		}
		if s.SpanKind != w.kind || s.StartTime.Sub(start) != w.start || s.EndTime.Sub(start) != w.end {
			t.Errorf("%s: kind %v, %v..%v; want %v, %v..%v", w.name, s.SpanKind, s.StartTime.Sub(start), s.EndTime.Sub(start), w.kind, w.start, w.end)
		}
		if (s.Status.Code == codes.Error) != w.failed {
			t.Errorf("%s: status %v", w.name, s.Status)
		}
	}
	if a := byName["attempt 2 10.0.0.2:80"]; len(a.Events) != 4 {
		t.Errorf("attempt 2 events %v, want CONN_ACQUIRED, REQ_HEADERS_SENT, RESP_HEADERS_RECEIVED, RESPONDED", a.Events)
	}
}

func TestFailedRequestSpanStatus(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := newTracer(t, exp, 16)
	var tc traceparent.Context
	traceparent.NewSampler(1).Start(&tc, http.Header{})
	p := passportOf(t, time.Unix(100, 0), "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.020ms=FAILED(no_route)")
	tr.Observe(&proxy.Record{Method: "GET", Status: 404, Outcome: failure.NoRoute, Err: "no route for GET /", Passport: p, Trace: tc})
	tr.Flush(context.Background())
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("got %d spans", len(spans))
	}
	s := spans[0]
	if s.Status.Code != codes.Error || s.Status.Description != "no_route: no route for GET /" || s.Parent.IsValid() {
		t.Fatalf("status %+v parent %v", s.Status, s.Parent)
	}
	if s.SpanContext.TraceID() != oteltrace.TraceID(tc.Trace) {
		t.Fatalf("trace id %s, want %s", s.SpanContext.TraceID(), tc.Trace)
	}
}

// A hook call that failed is a span with error status and the failure's
// kind and policy, named by its label alone, also when the policy let the
// request go on.
func TestFailedHookSpanStatus(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tr := newTracer(t, exp, 16)
	var tc traceparent.Context
	traceparent.NewSampler(1).Start(&tc, http.Header{})
	p := passportOf(t, time.Unix(100, 0), "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ "+
		"+0.020ms=HOOK_ENTER(validate:auth@v1) +0.030ms=HOOK_EXIT(validate:auth@v1,failed=timeout,policy=open+wait) "+
		"+0.040ms=HOOK_ENTER(validate:keys@v2) +0.050ms=HOOK_EXIT(validate:keys@v2) +0.060ms=VALIDATED +0.070ms=FAILED(no_route)")
	tr.Observe(&proxy.Record{Method: "GET", Status: 404, Outcome: failure.NoRoute, Passport: p, Trace: tc})
	tr.Flush(context.Background())
	byName := map[string]tracetest.SpanStub{}
	for _, s := range exp.GetSpans() {
		byName[s.Name] = s
	}
	failed, ok := byName["hook validate:auth@v1"]
	if !ok {
		t.Fatalf("no span named by the failed hook's label in %v", byName)
	}
	if failed.Status.Code != codes.Error || failed.Status.Description != "failed=timeout,policy=open" {
		t.Errorf("failed hook span status %+v", failed.Status)
	}
	attrs := map[string]string{}
	for _, a := range failed.Attributes {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["gatehouse.hook.failure"] != "timeout" || attrs["gatehouse.hook.policy"] != "open" || attrs["gatehouse.hook.out_of_process"] != "true" {
		t.Errorf("failed hook span attributes %v", attrs)
	}
	if ok := byName["hook validate:keys@v2"]; ok.Status.Code == codes.Error {
		t.Errorf("the hook that answered has status %+v", ok.Status)
	}
}

// gatedExporter holds the first export until released, so that the worker
// is busy and the queue fills deterministically.
type gatedExporter struct {
	*tracetest.InMemoryExporter
	entered, release chan struct{}
	once             sync.Once
}

func (g *gatedExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	g.once.Do(func() { close(g.entered); <-g.release })
	return g.InMemoryExporter.ExportSpans(ctx, spans)
}

func TestUnsampledIsIgnoredAndFullQueueDrops(t *testing.T) {
	exp := &gatedExporter{InMemoryExporter: tracetest.NewInMemoryExporter(), entered: make(chan struct{}), release: make(chan struct{})}
	tr, err := New(Options{Exporter: exp, Queue: 2, BatchSize: 64, ExportTimeout: time.Second, BatchDelay: time.Second, Sync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	var tc traceparent.Context
	traceparent.NewSampler(1).Start(&tc, http.Header{})
	p := passportOf(t, time.Unix(100, 0), "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.020ms=FAILED(no_route)")
	unsampled := tc
	unsampled.Sampled = false
	tr.Observe(&proxy.Record{Passport: p, Trace: unsampled})
	tr.Observe(&proxy.Record{Passport: p}) // tracing off
	if st := tr.Stats(); st.Queued != 0 || st.Dropped != 0 {
		t.Fatalf("unsampled requests were queued: %+v", st)
	}
	tr.Observe(&proxy.Record{Passport: p, Trace: tc})
	<-exp.entered // the worker is now stuck exporting the first request
	for i := 0; i < 5; i++ {
		tr.Observe(&proxy.Record{Passport: p, Trace: tc})
	}
	if st := tr.Stats(); st.Queued != 2 || st.Dropped != 3 {
		t.Fatalf("stats %+v, want 2 queued and 3 dropped", st)
	}
	close(exp.release)
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 3 {
		t.Fatalf("%d spans exported, want 3", n)
	}
	if st := tr.Stats(); st.Built != 3 {
		t.Fatalf("built %d", st.Built)
	}
}

func TestSegmentsOfUpgrade(t *testing.T) {
	stamps, _ := passport.Parse("+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.020ms=VALIDATED +0.030ms=SHAPED +0.040ms=ADMITTED " +
		"+0.050ms=ROUTED +0.060ms=ENDPOINT_PICKED(e:1) +0.070ms=CONN_ACQUIRED(reused) +0.080ms=REQ_HEADERS_SENT " +
		"+0.200ms=RESP_HEADERS_RECEIVED +0.210ms=UPGRADED +50.000ms=DONE")
	var attempts, intervals int
	for _, s := range Segments(stamps) {
		switch s.Kind {
		case Attempt:
			attempts++
			if s.Start != 60*time.Microsecond || s.End != 50*time.Millisecond || s.Failed {
				t.Errorf("attempt %+v", s)
			}
		case Interval:
			intervals++
		}
	}
	if attempts != 1 || intervals != 11 {
		t.Fatalf("%d attempts, %d intervals", attempts, intervals)
	}
}

// discard is an exporter that drops spans.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkBuild is the cost of turning one sampled request into spans,
// the work the tracer's goroutine does for each sampled request.
func BenchmarkBuild(b *testing.B) {
	tr, err := New(Options{Exporter: discard{}, Queue: 1024, BatchSize: 512, ExportTimeout: time.Second, BatchDelay: time.Second,
		ServiceName: "gatehouse", Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	stamps, _ := passport.Parse(timeline)
	j := &job{id: "id", method: "GET", path: "/", route: "r", service: "s", endpoint: "10.0.0.2:80", status: 200, proto: 1,
		ctx: traceparent.Context{Sampled: true, Trace: traceparent.TraceID{1}, Span: traceparent.SpanID{2}}, start: time.Unix(1000, 0), stamps: stamps}
	b.ReportAllocs()
	cpu0 := cpuNanos()
	for i := 0; i < b.N; i++ {
		tr.build(j)
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
