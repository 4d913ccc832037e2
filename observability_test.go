package gatehouse_test

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/sdk"
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

// adminGet fetches an admin path and returns its status and body.
func adminGet(t *testing.T, g *gatehouse.Gateway, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + g.AdminAddr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// configProbe stands for a Go hook an embedding program registers whose
// config holds secrets: the built-in hooks refuse keys they do not take.
type configProbe struct{}

func (configProbe) Validate(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
	return sdk.ValidateDecision{}, nil
}

func init() {
	hook.RegisterGo("config_probe", func(map[string]any) (any, error) { return configProbe{}, nil })
}

// TestAdminConfigRedactsSecrets pins the bug where /admin/config masked
// only admin.token and plugin env: the authz plugin's secret, script and
// Go hook configs and URL credentials were shown in clear.
func TestAdminConfigRedactsSecrets(t *testing.T) {
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "./examples/plugins/authz").CombinedOutput()
	if err != nil {
		t.Fatalf("building the authz plugin: %v\n%s", err, out)
	}
	script := filepath.Join(dir, "gate.js")
	if err := os.WriteFile(script, []byte(`exports.validate = function (req) { return {}; };`), 0o644); err != nil {
		t.Fatal(err)
	}
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0", token: "adm-tok-5f1c2e"}
logging: {level: error, access_log: false}
observe:
  tracing: {enabled: false, endpoint: "http://otel:otlp-pw-77a1@127.0.0.1:4318/v1/traces?api_key=otlp-qk-91"}
services: [{name: svc, endpoints: ["{{APP}}"]}]
plugins:
  - name: authz
    path: "{{AUTHZ}}"
    env: ["AUTHZ_API_KEY=env-secret-42", "LOG_LEVEL=debug"]
    config: {secret: "plg-secret-0123456789", cache_ttl: 45s, rules: [{path_prefix: /admin, tiers: [gold]}]}
scripts:
  - name: gate
    file: "{{SCRIPT}}"
    config: {hmacSecret: "js-secret-31", maxQueryLength: 2048, upstream: {url: "https://svc:js-url-pw-6@auth.internal", api_key: "js-key-77"}}
hooks:
  - {go: require_header, config: {header: X-Tenant}}
  - {go: config_probe, config: {token: "go-secret-8c"}}
routes:
  - name: r
    service: svc
    hooks:
      - {go: response_headers, config: {set: {X-Frame-Options: DENY}}}
      - {go: config_probe, config: {credentials: {user: ops, password: "route-pw-19"}}}
      - {script: gate}
`, map[string]string{"APP": app, "AUTHZ": filepath.Join(dir, "authz"), "SCRIPT": script})
	code, body := adminGet(t, h.g, "/admin/config")
	if code != 200 {
		t.Fatalf("/admin/config: %d %s", code, body)
	}
	for _, secret := range []string{"adm-tok-5f1c2e", "otlp-pw-77a1", "otlp-qk-91", "env-secret-42", "plg-secret-0123456789",
		"js-secret-31", "js-url-pw-6", "js-key-77", "go-secret-8c", "route-pw-19", "debug"} {
		if strings.Contains(body, secret) {
			t.Errorf("/admin/config shows the secret %q", secret)
		}
	}
	// Everything else is still there to read, secret keys with their names.
	for _, shown := range []string{"token: REDACTED", "secret: REDACTED", "hmacSecret: REDACTED", "api_key: REDACTED",
		"password: REDACTED", "AUTHZ_API_KEY=REDACTED", "cache_ttl: 45s", "path_prefix: /admin", "maxQueryLength: 2048",
		"header: X-Tenant", "X-Frame-Options: DENY", "user: REDACTED", "https://svc:REDACTED@auth.internal",
		"http://otel:REDACTED@127.0.0.1:4318/v1/traces?api_key=REDACTED", "name: authz", "listeners:"} {
		if !strings.Contains(body, shown) {
			t.Errorf("/admin/config lacks %q", shown)
		}
	}
	if t.Failed() {
		t.Logf("/admin/config:\n%s", body)
	}
}

// TestAdminPassportFilters checks /admin/passports on mixed traffic: the
// route and outcome filters keep only what matches, kind=failed keeps only
// failures, kind=slowest puts the slowest first.
func TestAdminPassportFilters(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a/slow":
			time.Sleep(200 * time.Millisecond) // slow, by construction; far from the fast ones on a loaded machine
		case "/b/slow":
			time.Sleep(100 * time.Millisecond)
		case "/a/hang":
			<-r.Context().Done() // until the gateway gives up (upstream header timeout)
			return
		}
		io.WriteString(w, "ok")
	}))
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
limits:
  upstream: {header_timeout: 500ms}
services: [{name: app, endpoints: ["{{APP}}"], retry: {max_attempts: 1}}]
routes:
  - {name: a, service: app, match: {path_prefix: /a}, hooks: [{go: require_header, config: {header: X-Key}}]}
  - {name: b, service: app, match: {path_prefix: /b}, hooks: [{go: require_header, config: {header: X-Key}}]}
`, map[string]string{"APP": app})
	c := client(t)
	send := func(path string, key bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", h.url+path, nil)
		if key {
			req.Header.Set("X-Key", "k")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	type want struct{ route, outcome string }
	traffic := []struct {
		path string
		key  bool
		want
	}{
		{"/a/1", true, want{"a", "success"}}, {"/b/1", true, want{"b", "success"}}, {"/a/2", false, want{"a", "rejected"}},
		{"/a/slow", true, want{"a", "success"}}, {"/b/2", false, want{"b", "rejected"}}, {"/b/slow", true, want{"b", "success"}},
		{"/a/hang", true, want{"a", "upstream_header_timeout"}}, {"/nowhere", true, want{"", "no_route"}},
		{"/b/3", true, want{"b", "success"}}, {"/b/4", false, want{"b", "rejected"}},
	}
	for _, tr := range traffic {
		send(tr.path, tr.key)
	}
	type item struct {
		Route, Outcome, Path string
		TotalMs              float64
	}
	// Records reach the rings after the response: poll until all are there.
	var all []item
	deadline := time.Now().Add(5 * time.Second)
	for adminJSON(t, h.g, "/admin/passports", &all); len(all) < len(traffic); adminJSON(t, h.g, "/admin/passports", &all) {
		if time.Now().After(deadline) {
			t.Fatalf("recent passports: %d, want %d", len(all), len(traffic))
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i, it := range all { // newest first
		if w := traffic[len(traffic)-1-i]; it.Path != w.path || it.Route != w.route || it.Outcome != w.outcome {
			t.Fatalf("recent[%d] = %+v, want %s on %q with %s", i, it, w.path, w.route, w.outcome)
		}
	}
	paths := func(query string) []string {
		t.Helper()
		var items []item
		adminJSON(t, h.g, "/admin/passports?"+query, &items)
		out := []string{}
		for _, it := range items {
			out = append(out, it.Path)
		}
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"route=a", []string{"/a/hang", "/a/slow", "/a/2", "/a/1"}},
		{"route=b", []string{"/b/4", "/b/3", "/b/slow", "/b/2", "/b/1"}},
		{"outcome=rejected", []string{"/b/4", "/b/2", "/a/2"}},
		{"route=b&outcome=success", []string{"/b/3", "/b/slow", "/b/1"}},
		{"route=a&outcome=rejected", []string{"/a/2"}},
		{"route=b&outcome=upstream_header_timeout", []string{}},
		{"route=b&limit=2", []string{"/b/4", "/b/3"}},
		{"kind=failed", []string{"/b/4", "/nowhere", "/a/hang", "/b/2", "/a/2"}},
		{"kind=failed&route=a", []string{"/a/hang", "/a/2"}},
		{"kind=failed&outcome=no_route", []string{"/nowhere"}},
		{"kind=failed&outcome=success", []string{}},
		// The hang lasts the upstream header timeout (500ms), the slow ones 200 and 100ms.
		{"kind=slowest&limit=3", []string{"/a/hang", "/a/slow", "/b/slow"}},
		{"kind=slowest&route=b&limit=1", []string{"/b/slow"}},
		{"kind=slowest&outcome=success&limit=2", []string{"/a/slow", "/b/slow"}},
	} {
		if got := paths(tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("/admin/passports?%s = %q, want %q", tc.query, got, tc.want)
		}
	}
	var slowest []item
	adminJSON(t, h.g, "/admin/passports?kind=slowest", &slowest)
	if len(slowest) != len(traffic) {
		t.Fatalf("slowest keeps %d, want all %d while there is room", len(slowest), len(traffic))
	}
	for i := 1; i < len(slowest); i++ {
		if slowest[i].TotalMs > slowest[i-1].TotalMs {
			t.Fatalf("slowest not in descending order at %d: %+v", i, slowest)
		}
	}
}

// TestReadyzFalseWhileDraining: once Shutdown has begun, with a request
// still in flight, /readyz answers 503 (so that a balancer stops sending)
// while /healthz still answers 200 (the process is alive and finishing).
func TestReadyzFalseWhileDraining(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(entered) })
		<-release
		io.WriteString(w, "finished")
	}))
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
limits:
  upstream: {header_timeout: 10s}
services: [{name: app, endpoints: ["{{APP}}"]}]
routes: [{name: r, service: app}]
`, map[string]string{"APP": app})
	if code, body := adminGet(t, h.g, "/readyz"); code != 200 {
		t.Fatalf("readyz before draining: %d %s", code, body)
	}
	c := client(t)
	got := make(chan string, 1)
	go func() {
		resp, err := c.Get(h.url + "/long")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- h.g.Shutdown(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := adminGet(t, h.g, "/readyz")
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "draining") {
				t.Errorf("readyz while draining says %q: want the reason", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still %d %q while draining", code, body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, body := adminGet(t, h.g, "/healthz"); code != 200 {
		t.Fatalf("healthz while draining: %d %s", code, body)
	}
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned (%v) with a request in flight", err)
	default:
	}
	close(release)
	if body := <-got; body != "finished" {
		t.Fatalf("in-flight request: %q", body)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// TestNonLoopbackAdminNeedsToken: New refuses an admin listener off
// loopback without a token, naming the key; with one it is only a
// loopback question of the test, so the accepted case binds loopback.
func TestNonLoopbackAdminNeedsToken(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:9901"} {
		cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
services: [{name: app, endpoints: ["127.0.0.1:1"]}]
routes: [{name: r, service: app}]
`, nil)
		cfg.Admin.Address = addr
		g, err := gatehouse.New(*cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()))
		if err == nil {
			g.Shutdown(context.Background())
			t.Fatalf("admin.address %q without a token: accepted", addr)
		}
		if !strings.Contains(err.Error(), "admin.token") || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("admin.address %q without a token: %v, want an error naming admin.token", addr, err)
		}
	}
}

// otlpReceiver is an OTLP/HTTP traces endpoint on loopback that decodes
// what it is sent, optionally held (a slow collector) until released.
type otlpReceiver struct {
	srv  *httptest.Server
	hold chan struct{} // while open, requests wait; nil: answer at once

	mu    sync.Mutex
	spans []*tracepb.Span
	reqs  int
	bad   []string
}

func newOTLPReceiver(t *testing.T, hold bool) *otlpReceiver {
	rc := &otlpReceiver{}
	if hold {
		rc.hold = make(chan struct{})
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.hold != nil {
			select {
			case <-rc.hold:
			case <-r.Context().Done():
				return
			}
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &req)
		}
		rc.mu.Lock()
		rc.reqs++
		switch {
		case r.URL.Path != "/v1/traces" || r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-protobuf":
			rc.bad = append(rc.bad, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
		case err != nil:
			rc.bad = append(rc.bad, err.Error())
		}
		for _, rs := range req.GetResourceSpans() {
			for _, ss := range rs.GetScopeSpans() {
				rc.spans = append(rc.spans, ss.GetSpans()...)
			}
		}
		rc.mu.Unlock()
		// Do not keep the exporter's connection: nothing lingers after the test.
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	t.Cleanup(func() {
		rc.release()
		rc.srv.Close()
	})
	return rc
}

func (rc *otlpReceiver) release() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.hold != nil {
		select {
		case <-rc.hold:
		default:
			close(rc.hold)
		}
	}
}

func (rc *otlpReceiver) got() ([]*tracepb.Span, int, []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.spans), rc.reqs, slices.Clone(rc.bad)
}

const otlpConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
observe:
  tracing: {enabled: true, sample_per_million: 1000000, endpoint: "{{OTLP}}", batch_delay: 10ms, queue: {{QUEUE}}, batch_size: {{BATCH}}, export_timeout: 30s, service_name: gh-test}
services: [{name: svc, endpoints: ["{{BACKEND}}"]}]
routes: [{name: r, service: svc, hooks: [{go: require_header, config: {header: X-Key}}]}]
`

// TestOTLPExportToARealReceiver sends spans over OTLP/HTTP to a receiver on
// loopback, and checks what arrived: the request span under the caller's
// span, in the caller's trace; a hook span and an attempt span under it.
func TestOTLPExportToARealReceiver(t *testing.T) {
	rc := newOTLPReceiver(t, false)
	be := &headerRecorder{}
	beAddr := backend(t, be)
	h := start(t, otlpConfig, map[string]string{"OTLP": rc.srv.URL + "/v1/traces", "QUEUE": "64", "BATCH": "64", "BACKEND": beAddr})
	const callerTrace, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	get(t, h.url+"/a", "Traceparent", "00-"+callerTrace+"-"+callerSpan+"-01", "X-Key", "k")
	sent := strings.Split(be.last().Get("Traceparent"), "-")
	if len(sent) != 4 || sent[1] != callerTrace {
		t.Fatalf("endpoint got traceparent %q", be.last().Get("Traceparent"))
	}
	var spans []*tracepb.Span
	deadline := time.Now().Add(10 * time.Second)
	for {
		var bad []string
		spans, _, bad = rc.got()
		if len(bad) > 0 {
			t.Fatalf("receiver got bad requests: %q", bad)
		}
		if len(spans) >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	byKind := map[tracepb.Span_SpanKind][]*tracepb.Span{}
	for _, s := range spans {
		byKind[s.GetKind()] = append(byKind[s.GetKind()], s)
		if got := hex.EncodeToString(s.GetTraceId()); got != callerTrace {
			t.Errorf("span %q in trace %s, want the caller's %s", s.GetName(), got, callerTrace)
		}
	}
	roots, hooks, attempts := byKind[tracepb.Span_SPAN_KIND_SERVER], byKind[tracepb.Span_SPAN_KIND_INTERNAL], byKind[tracepb.Span_SPAN_KIND_CLIENT]
	if len(spans) != 3 || len(roots) != 1 || len(hooks) != 1 || len(attempts) != 1 {
		names := []string{}
		for _, s := range spans {
			names = append(names, s.GetKind().String()+" "+s.GetName())
		}
		t.Fatalf("spans %q: want one request span, one hook span and one attempt span", names)
	}
	root, hk, at := roots[0], hooks[0], attempts[0]
	rootID := hex.EncodeToString(root.GetSpanId())
	if root.GetName() != "GET r" || rootID != sent[2] || hex.EncodeToString(root.GetParentSpanId()) != callerSpan {
		t.Errorf("request span %q id %s parent %x: want \"GET r\", the id the endpoint was given (%s), under the caller's %s",
			root.GetName(), rootID, root.GetParentSpanId(), sent[2], callerSpan)
	}
	if !strings.HasPrefix(hk.GetName(), "hook ") || !strings.Contains(hk.GetName(), "require_header") {
		t.Errorf("hook span named %q", hk.GetName())
	}
	if want := "attempt 1 " + beAddr; at.GetName() != want {
		t.Errorf("attempt span named %q, want %q", at.GetName(), want)
	}
	for _, c := range []*tracepb.Span{hk, at} {
		if hex.EncodeToString(c.GetParentSpanId()) != rootID {
			t.Errorf("span %q parent %x, want the request span %s", c.GetName(), c.GetParentSpanId(), rootID)
		}
		if c.GetStartTimeUnixNano() < root.GetStartTimeUnixNano() || c.GetEndTimeUnixNano() > root.GetEndTimeUnixNano() {
			t.Errorf("span %q outside the request span", c.GetName())
		}
	}
	if hk.GetEndTimeUnixNano() > at.GetStartTimeUnixNano() {
		t.Errorf("the validate hook ends after the attempt starts")
	}
}

// TestOTLPCollectorDownOrSlowDoesNotBlock: with the collector refusing
// connections, or accepting and never answering, requests go on at their
// usual pace, and what cannot be sent is dropped within the bounded queues.
func TestOTLPCollectorDownOrSlowDoesNotBlock(t *testing.T) {
	// A port nothing listens on: take one and close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + ln.Addr().String() + "/v1/traces"
	ln.Close()
	slow := newOTLPReceiver(t, true)
	// The exporter reports each failed export to OpenTelemetry's global
	// handler, which logs it: expected here.
	// Not restored to otel.GetErrorHandler()'s value: that is the global
	// delegator itself, and setting it as its own delegate makes the next
	// error (an exporter of another test, still retrying) recurse until the
	// stack overflows. The default handler logs; so does this one.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	t.Cleanup(func() { otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Print(err) })) })
	for _, tc := range []struct{ name, endpoint string }{{"down", down}, {"slow", slow.srv.URL + "/v1/traces"}} {
		t.Run(tc.name, func(t *testing.T) {
			be := &headerRecorder{}
			h := start(t, otlpConfig, map[string]string{"OTLP": tc.endpoint, "QUEUE": "4", "BATCH": "2", "BACKEND": backend(t, be)})
			c := client(t)
			const n = 200
			begin := time.Now()
			for i := 0; i < n; i++ {
				req, _ := http.NewRequest("GET", h.url+"/x", nil)
				req.Header.Set("X-Key", "k")
				t0 := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				// Generous for a loaded CI machine, far below the 30s export timeout.
				if d := time.Since(t0); resp.StatusCode != 200 || d > 2*time.Second {
					t.Fatalf("request %d: %d after %v with the collector %s", i, resp.StatusCode, d, tc.name)
				}
			}
			t.Logf("%d requests in %v with the collector %s", n, time.Since(begin), tc.name)
			if tc.name != "slow" {
				return
			}
			// Every request was sampled, and the export is stuck: the span
			// queue (8 × queue = 32 spans, 3 a request) cannot have held
			// them all. Released, the collector gets what was kept, not all.
			slow.release()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.g.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			spans, _, bad := slow.got()
			if len(bad) > 0 {
				t.Fatalf("receiver got bad requests: %q", bad)
			}
			t.Logf("the slow collector got %d spans of %d", len(spans), 3*n)
			// At most: the span queue (8 × 4), the batch being filled
			// and the one stuck in export (2 × 2), the requests in the
			// tracer's own queue (3 × 4); and, once released, what the
			// worker adds while the span queue drains (another queue's
			// worth at most: 64 seen on a loaded CI machine).
			if len(spans) == 0 || len(spans) > 2*8*4+2*2+3*4 {
				t.Fatalf("the slow collector got %d spans of %d: want some, within the bounded queues", len(spans), 3*n)
			}
		})
	}
}
