package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/gatehouse/gatehouse/core/admission"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/sdk"
)

func deps(reloads *int) Deps {
	return Deps{Metrics: metrics.New(nil), Config: func() any { return map[string]string{"token": "REDACTED"} },
		Reload: func() error { *reloads++; return nil }, Log: zerolog.Nop(), Observing: true}
}

func do(h http.Handler, method, path, remote, auth string) (int, string) {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	r.Host = "127.0.0.1:9901" // how an operator on this machine names it
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestListenOffLoopbackNeedsToken(t *testing.T) {
	var n int
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "192.0.2.1:9901", ":9901"} {
		if _, err := Listen(addr, "", deps(&n)); !errors.Is(err, ErrTokenRequired) {
			t.Errorf("Listen(%q) without token: %v, want ErrTokenRequired", addr, err)
		}
	}
	s, err := Listen("127.0.0.1:0", "", deps(&n))
	if err != nil {
		t.Fatalf("loopback without token: %v", err)
	}
	s.ln.Close()
	s, err = Listen("0.0.0.0:0", "secret", deps(&n))
	if err != nil {
		t.Fatalf("any address with a token: %v", err)
	}
	s.ln.Close()
}

func TestMutatingEndpointsNeedToken(t *testing.T) {
	var reloads int
	h := Handler("s3cret", deps(&reloads))
	const lo = "127.0.0.1:5555"
	for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic s3cret", "Bearer "} {
		if code, _ := do(h, "POST", "/admin/reload", lo, auth); code != http.StatusUnauthorized {
			t.Errorf("reload with %q: %d, want 401", auth, code)
		}
	}
	if reloads != 0 {
		t.Fatalf("reloaded %d times without the token", reloads)
	}
	if code, body := do(h, "POST", "/admin/reload", lo, "Bearer s3cret"); code != 200 || reloads != 1 {
		t.Fatalf("reload with the token: %d %q, reloads %d", code, body, reloads)
	}
	// Without a configured token, mutating endpoints are refused outright,
	// even from loopback.
	h = Handler("", deps(&reloads))
	if code, _ := do(h, "POST", "/admin/reload", lo, "Bearer "); code != http.StatusForbidden || reloads != 1 {
		t.Fatalf("reload without a configured token: %d", code)
	}
	if code, _ := do(h, "GET", "/admin/reload", lo, ""); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET reload: %d", code)
	}
}

// observed returns a record of one successful request, for filling metrics.
func observed(t *testing.T) *proxy.Record {
	t.Helper()
	stamps, err := passport.Parse("+0.000ms=ACCEPTED +0.010ms=HEADERS_READ +0.025ms=FAILED(no_route)")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	clk := &fakeClock{t: start}
	p := passport.New(clk)
	for _, s := range stamps {
		clk.t = start.Add(s.Offset)
		p.StampNote(s.State, s.Note)
	}
	return &proxy.Record{ID: "id", Listener: "public", Method: "GET", Path: "/", Status: 404, Outcome: failure.NoRoute, Passport: p}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// TestOverheadResetNeedsToken pins the bug where GET
// /admin/api/overhead?reset=1 reset the overhead histogram without a token.
func TestOverheadResetNeedsToken(t *testing.T) {
	var n int
	d := deps(&n)
	d.Metrics.Observe(observed(t))
	count := func() int64 { return d.Metrics.Overhead(false).Count }
	const lo = "127.0.0.1:5555"
	for _, token := range []string{"s3cret", ""} {
		h := Handler(token, d)
		for _, req := range []struct{ method, path string }{
			{"GET", "/admin/api/overhead?reset=1"}, {"GET", "/admin/api/overhead?reset"}, {"POST", "/admin/api/overhead/reset"},
		} {
			for _, auth := range []string{"", "Bearer wrong"} {
				code, _ := do(h, req.method, req.path, lo, auth)
				if want := map[string]int{"s3cret": 401, "": 403}[token]; code != want {
					t.Errorf("token %q: %s %s with %q: %d, want %d", token, req.method, req.path, auth, code, want)
				}
				if count() != 1 {
					t.Fatalf("token %q: %s %s with %q reset the histogram", token, req.method, req.path, auth)
				}
			}
		}
	}
	h := Handler("s3cret", d)
	// Reading needs no token on loopback, and resets nothing.
	if code, body := do(h, "GET", "/admin/api/overhead", lo, ""); code != 200 || !strings.Contains(body, `"count": 1`) || count() != 1 {
		t.Fatalf("read: %d %s (count after %d)", code, body, count())
	}
	// With the token both forms answer the snapshot before the reset.
	if code, body := do(h, "POST", "/admin/api/overhead/reset", lo, "Bearer s3cret"); code != 200 || !strings.Contains(body, `"count": 1`) || count() != 0 {
		t.Fatalf("POST reset with the token: %d %s (count after %d)", code, body, count())
	}
	d.Metrics.Observe(observed(t))
	if code, body := do(h, "GET", "/admin/api/overhead?reset=1", lo, "Bearer s3cret"); code != 200 || !strings.Contains(body, `"count": 1`) || count() != 0 {
		t.Fatalf("GET reset=1 with the token: %d %s (count after %d)", code, body, count())
	}
	if code, _ := do(h, "GET", "/admin/api/overhead/reset", lo, "Bearer s3cret"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /admin/api/overhead/reset: %d, want 405", code)
	}
}

func TestOffLoopbackReadsNeedToken(t *testing.T) {
	var n int
	h := Handler("s3cret", deps(&n))
	const far = "192.0.2.7:40000"
	for _, p := range []string{"/metrics", "/admin/config", "/admin/passports", "/admin/api/key", "/admin/api/graph", "/"} {
		if code, _ := do(h, "GET", p, far, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s off loopback without token: %d", p, code)
		}
		if code, _ := do(h, "GET", p, far, "Bearer s3cret"); code != 200 {
			t.Errorf("GET %s off loopback with token: %d", p, code)
		}
		if code, _ := do(h, "GET", p, "127.0.0.1:1", ""); code != 200 {
			t.Errorf("GET %s from loopback: %d", p, code)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := do(h, "GET", p, far, ""); code != 200 {
			t.Errorf("probe %s off loopback: %d", p, code)
		}
	}
}

func TestReadinessGate(t *testing.T) {
	var n int
	d := deps(&n)
	d.Gate = &Gate{}
	serving := false
	d.Ready = func() bool { return serving }
	h := Handler("", d)
	if code, body := do(h, "GET", "/readyz", "127.0.0.1:1", ""); code != 503 || !strings.Contains(body, "not serving") {
		t.Fatalf("before serving: %d %q", code, body)
	}
	serving = true
	release := d.Gate.Hold("plugins starting")
	if code, body := do(h, "GET", "/readyz", "127.0.0.1:1", ""); code != 503 || !strings.Contains(body, "plugins starting") {
		t.Fatalf("held: %d %q", code, body)
	}
	release()
	release() // idempotent
	if code, _ := do(h, "GET", "/readyz", "127.0.0.1:1", ""); code != 200 {
		t.Fatalf("released: %d", code)
	}
}

func TestPageIsEmbedded(t *testing.T) {
	var n int
	h := Handler("", deps(&n))
	code, body := do(h, "GET", "/", "127.0.0.1:1", "")
	if code != 200 || !strings.Contains(body, `<script src="/ui/app.js">`) || strings.Contains(body, "http://") && !strings.Contains(body, "w3.org") {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	for _, p := range []string{"/ui/app.js", "/ui/style.css"} {
		code, body := do(h, "GET", p, "127.0.0.1:1", "")
		if code != 200 || len(body) < 500 || strings.Contains(body, "https://") {
			t.Errorf("GET %s: %d, %d bytes (assets must be local)", p, code, len(body))
		}
	}
	if code, _ := do(h, "GET", "/nope", "127.0.0.1:1", ""); code != 404 {
		t.Errorf("unknown path: %d", code)
	}
}

// TestStatusShowsAdmission checks that /admin/api/status carries each
// adaptive limit's state, sorted by service, for the page.
func TestStatusShowsAdmission(t *testing.T) {
	reloads := 0
	d := deps(&reloads)
	lim := func(initial int) *admission.Limiter {
		return admission.New(admission.Options{InitialLimit: initial, MinLimit: 1, MaxLimit: 100, MaxQueue: 10,
			QueueTimeout: time.Second, Target: 10 * time.Millisecond})
	}
	users := lim(20)
	if ok, _, _ := users.Admit(sdk.PriorityDefault); !ok {
		t.Fatal("an idle limiter refused a request")
	}
	d.Admission = func() []proxy.AdmissionStat {
		return []proxy.AdmissionStat{{Service: "users", Limiter: users}, {Service: "billing", Limiter: lim(7)}}
	}
	code, body := do(Handler("", d), "GET", "/admin/api/status", "127.0.0.1:1", "")
	var st struct {
		Admission []AdmissionRow `json:"admission"`
	}
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("status %d %v: %s", code, err, body)
	}
	want := []AdmissionRow{{Service: "billing", Limit: 7}, {Service: "users", Limit: 20, InFlight: 1}}
	if !slices.Equal(st.Admission, want) {
		t.Fatalf("admission %+v, want %+v", st.Admission, want)
	}
}

// A loopback client without the token must name a loopback host: a page
// elsewhere that rebinds its own name to 127.0.0.1 makes the browser send
// that name as Host, and must not read the admin endpoints.
func TestDNSRebindingRefused(t *testing.T) {
	var n int
	h := Handler("s3cret", deps(&n))
	get := func(host, auth string) int {
		r := httptest.NewRequest("GET", "/admin/config", nil)
		r.RemoteAddr, r.Host = "127.0.0.1:50000", host
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for _, host := range []string{"evil.example", "evil.example:9901", "127.0.0.1.evil.example", "10.0.0.1:9901"} {
		if code := get(host, ""); code != http.StatusForbidden {
			t.Errorf("Host %q from loopback without the token: %d, want 403", host, code)
		}
		if code := get(host, "Bearer s3cret"); code != 200 {
			t.Errorf("Host %q with the token: %d, want 200", host, code)
		}
	}
	for _, host := range []string{"localhost", "LOCALHOST:9901", "app.localhost:9901", "127.0.0.1:9901", "127.1.2.3", "[::1]:9901"} {
		if code := get(host, ""); code != 200 {
			t.Errorf("Host %q from loopback: %d, want 200", host, code)
		}
	}
}
