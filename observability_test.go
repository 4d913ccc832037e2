package gatehouse_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	gatehouse "github.com/gatehouse/gatehouse"
)

const tracedConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
observe:
  tracing: {enabled: true, sample_per_million: {{SAMPLE}}, batch_delay: 10ms}
services: [{name: svc, endpoints: ["{{BACKEND}}"]}]
routes: [{name: r, service: svc}]
`

// headerRecorder is a backend that keeps the trace headers it was sent.
type headerRecorder struct {
	mu  sync.Mutex
	got []http.Header
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.got = append(h.got, r.Header.Clone())
	h.mu.Unlock()
	w.Write([]byte("ok"))
}

func (h *headerRecorder) last() http.Header {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[len(h.got)-1]
}

func startTraced(t *testing.T, sample string, exp *tracetest.InMemoryExporter, be *headerRecorder) (*gatehouse.Gateway, string) {
	t.Helper()
	cfg := parse(t, tracedConfig, map[string]string{"SAMPLE": sample, "BACKEND": backend(t, be)})
	g, err := gatehouse.New(*cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()), gatehouse.WithSpanExporter(exp))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		<-done
	})
	return g, "http://" + g.Addr("public").String()
}

func get(t *testing.T, url string, hdr ...string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// waitSpans polls the exporter until it holds n spans.
func waitSpans(t *testing.T, exp *tracetest.InMemoryExporter, n int) tracetest.SpanStubs {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := exp.GetSpans(); len(s) >= n {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("got %d spans, want %d", len(exp.GetSpans()), n)
	return nil
}

func TestTraceparentPropagatedAndSpansBuiltFromPassport(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	be := &headerRecorder{}
	_, url := startTraced(t, "1", exp, be) // sample almost none of our own: the caller's decision rules
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	get(t, url+"/a", "Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01")
	tp := be.last().Get("Traceparent")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != callerTrace || parts[2] == callerSpan || parts[3] != "01" {
		t.Fatalf("endpoint got traceparent %q: want the caller's trace, the gateway's span, sampled", tp)
	}
	spans := waitSpans(t, exp, 2)
	var root, attempt *tracetest.SpanStub
	for i := range spans {
		switch spans[i].SpanKind {
		case oteltrace.SpanKindServer:
			root = &spans[i]
		case oteltrace.SpanKindClient:
			attempt = &spans[i]
		}
	}
	if root == nil || attempt == nil {
		t.Fatalf("spans %v: want a request span and an attempt span", spans)
	}
	if root.SpanContext.SpanID().String() != parts[2] || root.Parent.SpanID().String() != callerSpan {
		t.Fatalf("request span %s (parent %s): want %s, the id the endpoint was given, under the caller's %s",
			root.SpanContext.SpanID(), root.Parent.SpanID(), parts[2], callerSpan)
	}
	if attempt.Parent.SpanID() != root.SpanContext.SpanID() {
		t.Fatalf("attempt's parent %s, want the request span", attempt.Parent.SpanID())
	}
	if attempt.StartTime.Before(root.StartTime) || attempt.EndTime.After(root.EndTime) {
		t.Fatalf("attempt %v..%v outside the request %v..%v", attempt.StartTime, attempt.EndTime, root.StartTime, root.EndTime)
	}

	// An unsampled caller: the context still flows, no span is built.
	get(t, url+"/b", "Traceparent", "00-"+callerTrace+"-"+callerSpan+"-00")
	if tp := be.last().Get("Traceparent"); !strings.HasPrefix(tp, "00-"+callerTrace+"-") || !strings.HasSuffix(tp, "-00") {
		t.Fatalf("unsampled: endpoint got %q", tp)
	}
	// B3 is accepted, and answered in both forms.
	get(t, url+"/c", "B3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1")
	h := be.last()
	if !strings.HasPrefix(h.Get("Traceparent"), "00-80f198ee56343ba864fe8b2a57d3eff7-") || !strings.HasPrefix(h.Get("B3"), "80f198ee56343ba864fe8b2a57d3eff7-") {
		t.Fatalf("b3: endpoint got traceparent %q b3 %q", h.Get("Traceparent"), h.Get("B3"))
	}
	waitSpans(t, exp, 4)
}

func TestTracingOffByDefaultPassesHeadersThrough(t *testing.T) {
	be := &headerRecorder{}
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
services: [{name: svc, endpoints: ["{{BACKEND}}"]}]
routes: [{name: r, service: svc}]
`, map[string]string{"BACKEND": backend(t, be)})
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	get(t, h.url+"/", "Traceparent", tp)
	if got := be.last().Get("Traceparent"); got != tp {
		t.Fatalf("endpoint got %q, want the caller's untouched", got)
	}
	get(t, h.url+"/")
	if got := be.last().Get("Traceparent"); got != "" {
		t.Fatalf("endpoint got %q without tracing on", got)
	}
}

func adminJSON(t *testing.T, g *gatehouse.Gateway, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestKeyNumbersAndMetricsSwitch(t *testing.T) {
	for _, on := range []bool{true, false} {
		be := &headerRecorder{}
		h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
observe: {metrics: {{ON}}}
services: [{name: svc, endpoints: ["{{BACKEND}}"]}]
routes: [{name: r, service: svc, match: {path_prefix: /ok}}]
`, map[string]string{"BACKEND": backend(t, be), "ON": map[bool]string{true: "true", false: "false"}[on]})
		for i := 0; i < 20; i++ {
			get(t, h.url+"/ok")
		}
		get(t, h.url+"/missing") // no_route
		var k struct {
			Requests int64 `json:"requests_total"`
			Overhead struct {
				Count int64 `json:"count"`
				P999  int64 `json:"p999"`
			} `json:"overhead_us"`
		}
		var g struct {
			Edges []struct {
				From, To string
				Count    uint64
			}
		}
		// The record is handed to observers after the response: poll.
		deadline := time.Now().Add(5 * time.Second)
		for {
			adminJSON(t, h.g, "/admin/api/key", &k)
			if !on || k.Requests == 21 || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		adminJSON(t, h.g, "/admin/api/graph", &g)
		count := func(from, to string) uint64 {
			for _, e := range g.Edges {
				if e.From == from && e.To == to {
					return e.Count
				}
			}
			return 0
		}
		if on {
			if k.Requests != 21 || k.Overhead.Count != 21 || k.Overhead.P999 <= 0 {
				t.Fatalf("metrics on: key numbers %+v", k)
			}
			if count("RESP_BODY_SENT", "DONE") != 20 || count("HEADERS_READ", "FAILED") != 1 {
				t.Fatalf("metrics on: graph %+v", g.Edges)
			}
		} else if k.Requests != 0 || count("RESP_BODY_SENT", "DONE") != 0 {
			t.Fatalf("metrics off: key numbers %+v", k)
		}
		resp, err := http.Get("http://" + h.g.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "go_goroutines") || strings.Contains(string(body), `gatehouse_requests_total{`) != on {
			t.Fatalf("metrics %v: /metrics has requests_total=%v", on, strings.Contains(string(body), "gatehouse_requests_total{"))
		}
	}
}

// BenchmarkObservability compares a request's CPU through the gateway
// with everything derived from passports off and on (metrics, kept
// passports, and tracing at 1% with spans sent to a port that refuses
// them), as the overhead bench scenario's gatehouse-obs-off and -on peers
// do. Compare cpu-ns/op; run with GOMAXPROCS=1 and -cpuprofile to see
// where it goes.
func BenchmarkObservability(b *testing.B) {
	body := strings.Repeat("x", 64)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}))
	defer be.Close()
	base := `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false, level: error}
limits:
  upstream: {max_conns_per_endpoint: 1024, max_idle_per_endpoint: 1024}
routes: [{name: all, service: app}]
services: [{name: app, endpoints: ["` + strings.TrimPrefix(be.URL, "http://") + `"]}]
`
	b.Run("off", func(b *testing.B) { benchGatehouse(b, base+"observe: {metrics: false}\n") })
	b.Run("on", func(b *testing.B) {
		benchGatehouse(b, base+`observe:
  metrics: true
  tracing: {enabled: true, sample_per_million: 10000, endpoint: "http://127.0.0.1:9/v1/traces"}
`)
	})
}
