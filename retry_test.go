package gatehouse_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const twoEndpoints = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
limits:
  request: {deadline: 5s}
  upstream: {connect_timeout: 500ms, header_timeout: 2s}
routes: [{name: app, service: app}]
services:
  - name: app
    endpoints: ["{{A}}", "{{B}}"]
    balancer: round_robin     # these tests are about retries: every endpoint keeps its turn
    outlier: {enabled: false}
`

func TestRetryBudgetBoundsAnOutage(t *testing.T) {
	var hits atomic.Int64
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(503)
	})
	h := start(t, twoEndpoints, map[string]string{"A": backend(t, down), "B": backend(t, down)})
	c := client(t)
	const n = 300
	for i := 0; i < n; i++ {
		resp, err := c.Get(h.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("status %d: the endpoint's last answer must reach the client", resp.StatusCode)
		}
	}
	// 20% of the requests plus a floor of 3/s over the 10s window.
	limit := int64(n*12/10 + 30)
	if got := hits.Load(); got > limit || got <= n {
		t.Fatalf("%d upstream attempts for %d requests: want more than %d (retries happen) and at most %d (budget)", got, n, n, limit)
	}
	t.Logf("%d requests, %d upstream attempts (naive retries=3 would make %d)", n, hits.Load(), 3*n)
}

func TestRetrySafety(t *testing.T) {
	var resetHits, goodHits atomic.Int64
	reset := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resetHits.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close() // the request arrived; the answer never comes
	})
	good := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "good "+string(b))
	})
	h := start(t, twoEndpoints, map[string]string{"A": backend(t, reset), "B": backend(t, good)})
	c := client(t)
	// An idempotent request cut by one endpoint is retried on the other.
	for i := 0; i < 4; i++ {
		req, _ := http.NewRequest("PUT", h.url+"/x", strings.NewReader("payload"))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "good payload" {
			t.Fatalf("PUT: %d %q (the body must be replayed whole)", resp.StatusCode, b)
		}
	}
	if resetHits.Load() == 0 {
		t.Fatal("the resetting endpoint was never tried")
	}
	// A POST that reached an endpoint is never sent twice.
	before := resetHits.Load() + goodHits.Load()
	sawReset := false
	for i := 0; i < 6; i++ {
		resp, err := c.Post(h.url+"/x", "text/plain", strings.NewReader("once"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 502 {
			sawReset = true
		}
	}
	if after := resetHits.Load() + goodHits.Load(); after-before != 6 {
		t.Fatalf("6 POSTs made %d upstream requests", after-before)
	}
	if !sawReset {
		t.Fatal("no POST went to the resetting endpoint")
	}
}

func TestConnectFailureRetriedForAnyMethod(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	good := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	h := start(t, twoEndpoints, map[string]string{"A": dead, "B": good})
	c := client(t)
	retried := false
	for i := 0; i < 4; i++ {
		resp, err := c.Post(h.url+"/", "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("POST %d: status %d", i, resp.StatusCode)
		}
		r := h.next()
		if strings.Contains(r.Passport, "ATTEMPT_FAILED(connect_refused)") {
			retried = true
		}
	}
	if !retried {
		t.Fatal("no request met the dead endpoint")
	}
}

func TestClientDeadlineOnlyTightens(t *testing.T) {
	seen := make(chan string, 10)
	slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("X-Gatehouse-Timeout")
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
	}))
	h := start(t, baseConfig, map[string]string{"APP": slow})
	c := client(t)
	do := func(timeout string) (int, time.Duration) {
		req, _ := http.NewRequest("GET", h.url+"/", nil)
		req.Header.Set("X-Gatehouse-Timeout", timeout)
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(began)
	}
	// Tighter than the route (5s) and than the header timeout (300ms).
	code, took := do("100ms")
	if code != 504 || took > 2*time.Second {
		t.Fatalf("100ms deadline: %d after %v", code, took)
	}
	if r := h.expect("deadline_exceeded"); !strings.Contains(r.Err, "deadline") {
		t.Fatalf("record %+v", r)
	}
	left, _ := strconv.Atoi(strings.TrimSuffix(<-seen, "ms"))
	if left <= 0 || left > 100 {
		t.Fatalf("endpoint was told %dms left, want (0, 100]", left)
	}
	// Looser than the route: ignored; the endpoint is told at most the route's 5s.
	do("60s")
	left, _ = strconv.Atoi(strings.TrimSuffix(<-seen, "ms"))
	if left <= 0 || left > 5000 {
		t.Fatalf("endpoint was told %dms left, want at most the route's 5000ms", left)
	}
	h.next()
	// Too little time to try at all: fail fast, without contacting the endpoint.
	code, _ = do("1ms")
	if code != 504 {
		t.Fatalf("1ms deadline: %d", code)
	}
	if r := h.expect("deadline_too_short"); strings.Contains(r.Passport, "ENDPOINT_PICKED") {
		t.Fatalf("record %+v", r)
	}
}
