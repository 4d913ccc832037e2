package gatehouse_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"

	"github.com/gatehouse/gatehouse/core/passport"
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
	// Regression: a discarded 503 was stamped ATTEMPT_FAILED(upstream_reset).
	retried := 0
	for i := 0; i < n; i++ {
		r := h.next()
		if strings.Contains(r.Passport, "ATTEMPT_FAILED(upstream_reset)") {
			t.Fatalf("a 503 answer stamped as a reset: %s", r.Passport)
		}
		if strings.Contains(r.Passport, "ATTEMPT_FAILED(upstream_503)") {
			retried++
		}
	}
	if retried == 0 {
		t.Fatal("no passport shows a retried 503 as ATTEMPT_FAILED(upstream_503)")
	}
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

// h2cConfig is one h2c service with two endpoints; {{RETRY}} is its retry block.
const h2cConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
limits:
  request: {deadline: 5s}
  upstream: {connect_timeout: 500ms, header_timeout: 2s}
routes: [{name: app, service: app}]
services:
  - name: app
    endpoints: ["{{A}}"]
    protocol: h2c
    outlier: {enabled: false}
    retry: {{RETRY}}
`

// h2cBackend serves h with HTTP/2 over cleartext on loopback.
func h2cBackend(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h2c.NewHandler(h, &http2.Server{}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

// The HTTP/2 path goes through the same retry loop as HTTP/1.1: an
// idempotent request answered 503 is retried within the budget, each
// attempt stamped with the status it got.
func TestRetryH2CUpstream5xx(t *testing.T) {
	var hits atomic.Int64
	be := h2cBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			t.Errorf("backend got HTTP/%d.%d, want h2c", r.ProtoMajor, r.ProtoMinor)
		}
		if hits.Add(1) <= 2 {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	}))
	h := start(t, h2cConfig, map[string]string{"A": be, "RETRY": "{max_attempts: 3, backoff_base: 1ms, backoff_max: 2ms, min_per_second: 10}"})
	resp, err := client(t).Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("%d %q, want the third attempt's 200 ok", resp.StatusCode, b)
	}
	r := h.next()
	if hits.Load() != 3 || strings.Count(r.Passport, "ATTEMPT_FAILED(upstream_503)") != 2 || strings.Count(r.Passport, "ENDPOINT_PICKED(") != 3 {
		t.Fatalf("backend saw %d attempts; passport %s", hits.Load(), r.Passport)
	}
	// With every answer a 503, max_attempts bounds the attempts and the
	// last answer reaches the client.
	hits.Store(-100)
	resp, err = client(t).Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || hits.Load() != -97 {
		t.Fatalf("status %d after %d attempts, want 503 after 3", resp.StatusCode, hits.Load()+100)
	}
	h.next()
	// The budget counts HTTP/2 requests and retries too: its floor (10)
	// is spent after the next few, then answers pass through unretried.
	for i := 0; i < 10; i++ {
		resp, err = client(t).Get(h.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h.next()
	}
	if got := hits.Load() + 100; got > 3+10+10 {
		t.Fatalf("%d attempts for 12 failing requests: the budget did not bound them", got)
	}
}

// rawH2 is an HTTP/2 (h2c, prior knowledge) endpoint written with the
// framer, to send what net/http's server will not on demand: it refuses the
// first refuse streams with RST_STREAM(REFUSED_STREAM) once their request
// is complete, or answers the first stream of the first connection with a
// GOAWAY naming no stream as processed. Others get 200 "ok".
type rawH2 struct {
	refuse  int64
	goaway  bool
	streams atomic.Int64 // streams received
	conns   atomic.Int64
	ln      net.Listener
	wg      sync.WaitGroup
}

func startRawH2(t *testing.T, r *rawH2) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.ln = ln
	var mu sync.Mutex
	var open []net.Conn
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		r.wg.Wait()
	})
	return ln.Addr().String()
}

func (r *rawH2) serve(c net.Conn) {
	defer c.Close()
	conn := r.conns.Add(1)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	answer := func(id uint32) {
		n := r.streams.Add(1)
		switch {
		case r.goaway && conn == 1:
			fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		case n <= r.refuse:
			fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
		default:
			hbuf.Reset()
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			enc.WriteField(hpack.HeaderField{Name: "content-length", Value: "2"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
			fr.WriteData(id, true, []byte("ok"))
		}
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				answer(f.StreamID)
			}
		case *http2.DataFrame:
			if n := len(f.Data()); n > 0 {
				fr.WriteWindowUpdate(0, uint32(n))
			}
			if f.StreamEnded() {
				answer(f.StreamID)
			}
		case *http2.GoAwayFrame:
			return
		}
	}
}

// A refused stream (REFUSED_STREAM) proves the endpoint did not process the
// request: even a POST is retried, through the budget and the passport —
// and only by the gateway: Go's HTTP/2 transport would re-send it on its
// own (up to six times, outside any budget), which the stream count at the
// endpoint rules out.
func TestRetryH2CRefusedStream(t *testing.T) {
	be := &rawH2{refuse: 2}
	addr := startRawH2(t, be)
	h := start(t, h2cConfig, map[string]string{"A": addr, "RETRY": "{max_attempts: 3, backoff_base: 1ms, backoff_max: 2ms}"})
	resp, err := client(t).Post(h.url+"/", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := h.next()
	if resp.StatusCode != 200 || string(b) != "ok" {
		t.Fatalf("POST: %d %q; passport %s", resp.StatusCode, b, r.Passport)
	}
	if got := be.streams.Load(); got != 3 || strings.Count(r.Passport, "ATTEMPT_FAILED(refused_stream)") != 2 ||
		strings.Count(r.Passport, "ENDPOINT_PICKED(") != 3 {
		t.Fatalf("endpoint saw %d streams, want 3 (each one an attempt in the passport): %s", got, r.Passport)
	}

	// With retries off, a refused stream fails at once: one stream, no
	// hidden retry by the transport.
	be2 := &rawH2{refuse: 100}
	addr2 := startRawH2(t, be2)
	h2 := start(t, h2cConfig, map[string]string{"A": addr2, "RETRY": "{max_attempts: 1}"})
	resp, err = client(t).Get(h2.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r = h2.next()
	if resp.StatusCode != 502 || be2.streams.Load() != 1 || r.Outcome != "upstream_reset" {
		t.Fatalf("max_attempts 1: status %d, %d streams at the endpoint, outcome %s, want 502, 1, upstream_reset", resp.StatusCode, be2.streams.Load(), r.Outcome)
	}
}

// A GOAWAY whose last stream is below the request's proves it was not
// processed: the POST goes again, on a new connection.
func TestRetryH2CGoAway(t *testing.T) {
	be := &rawH2{goaway: true}
	addr := startRawH2(t, be)
	h := start(t, h2cConfig, map[string]string{"A": addr, "RETRY": "{max_attempts: 2, backoff_base: 1ms, backoff_max: 2ms}"})
	resp, err := client(t).Post(h.url+"/", "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := h.next()
	if resp.StatusCode != 200 || be.conns.Load() != 2 || be.streams.Load() != 2 || !strings.Contains(r.Passport, "ATTEMPT_FAILED(refused_stream)") {
		t.Fatalf("status %d, %d connections, %d streams; passport %s", resp.StatusCode, be.conns.Load(), be.streams.Load(), r.Passport)
	}
}

// Once response bytes reached the client, a failure is never retried: the
// endpoint sends the head and part of the body, then cuts the connection;
// the client sees a broken response and the endpoint exactly one attempt.
func TestRetryNeverAfterResponseBytes(t *testing.T) {
	var hits atomic.Int64
	cut := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(200) // streamed (chunked): the gateway passes each piece on at once
		io.WriteString(w, "0123456789")
		http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler) // the connection goes, the body unfinished
	})
	a, b := backend(t, cut), backend(t, cut)
	h := start(t, twoEndpoints, map[string]string{"A": a, "B": b})
	resp, err := client(t).Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || resp.StatusCode != 200 || string(body) != "0123456789" {
		t.Fatalf("status %d, body %q, read error %v: want the 10 bytes sent, then a broken body", resp.StatusCode, body, err)
	}
	r := h.next()
	if !strings.Contains(r.Passport, "RESPONDED") {
		t.Fatalf("the response head did not reach the client: %s", r.Passport)
	}
	if hits.Load() != 1 || strings.Count(r.Passport, "ENDPOINT_PICKED(") != 1 || r.Outcome != "upstream_reset" {
		t.Fatalf("%d attempts at the endpoints, outcome %s; passport %s", hits.Load(), r.Outcome, r.Passport)
	}
}

// Request bodies are replayable only up to retry.replay_body_bytes: a PUT
// with a smaller body is retried after a reset, a larger one is not.
func TestRetryReplayBodyBound(t *testing.T) {
	var resetHits, goodHits atomic.Int64
	reset := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resetHits.Add(1)
		io.Copy(io.Discard, r.Body)
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	good := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, strconv.Itoa(len(b)))
	})
	cfg := strings.Replace(twoEndpoints, "    outlier: {enabled: false}\n", "    outlier: {enabled: false}\n    retry: {replay_body_bytes: 1KiB, min_per_second: 100}\n", 1)
	h := start(t, cfg, map[string]string{"A": backend(t, reset), "B": backend(t, good)})
	c := client(t)
	put := func(size int) int {
		req, _ := http.NewRequest("PUT", h.url+"/", strings.NewReader(strings.Repeat("x", size)))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && string(b) != strconv.Itoa(size) {
			t.Fatalf("PUT of %d bytes: the endpoint got %s", size, b)
		}
		return resp.StatusCode
	}
	// Round robin alternates: of 4 PUTs, 2 meet the resetting endpoint first.
	for i := 0; i < 4; i++ {
		if code := put(512); code != 200 {
			t.Fatalf("PUT of 512 bytes (within the bound): %d, want a retry to succeed", code)
		}
	}
	if resetHits.Load() == 0 {
		t.Fatal("the resetting endpoint was never tried")
	}
	before := resetHits.Load() + goodHits.Load()
	failed := 0
	for i := 0; i < 4; i++ {
		if put(4096) == 502 {
			failed++
		}
	}
	if got := resetHits.Load() + goodHits.Load() - before; got != 4 || failed == 0 {
		t.Fatalf("4 PUTs of 4KiB (over the bound) made %d attempts and %d failures: want 4 attempts (no retry), some 502", got, failed)
	}
}

// The retry backoff fits in the time left: with every attempt failing and
// a tight deadline, the request ends by the deadline with a named outcome.
func TestRetryBackoffFitsDeadline(t *testing.T) {
	var hits atomic.Int64
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		select {
		case <-time.After(20 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	cfg := strings.Replace(twoEndpoints, "    outlier: {enabled: false}\n",
		"    outlier: {enabled: false}\n    retry: {max_attempts: 50, backoff_base: 40ms, backoff_max: 80ms, budget_percent: 100, min_per_second: 1000}\n", 1)
	h := start(t, cfg, map[string]string{"A": backend(t, failing), "B": backend(t, failing)})
	c := client(t)
	const deadline = 250 * time.Millisecond
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", h.url+"/", nil)
		req.Header.Set("X-Gatehouse-Timeout", "250ms")
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		took := time.Since(began)
		r := h.next()
		if took > deadline+100*time.Millisecond {
			t.Fatalf("request took %v with a %v deadline; passport %s", took, deadline, r.Passport)
		}
		if r.Outcome != "upstream_reset" && r.Outcome != "deadline_exceeded" {
			t.Fatalf("outcome %q, want upstream_reset (no time for another backoff) or deadline_exceeded", r.Outcome)
		}
		stamps, err := passport.Parse(r.Passport)
		if err != nil || len(stamps) == 0 {
			t.Fatalf("passport %q: %v", r.Passport, err)
		}
		if n := strings.Count(r.Passport, "ENDPOINT_PICKED("); n < 2 {
			t.Fatalf("%d attempts in %v: want retries within the deadline; %s", n, deadline, r.Passport)
		}
		if total := stamps[len(stamps)-1].Offset; total > deadline+20*time.Millisecond {
			t.Fatalf("the request's passport spans %v, past the %v deadline: %s", total, deadline, r.Passport)
		}
	}
}

// An inbound grpc-timeout tightens the deadline like X-Gatehouse-Timeout,
// and the endpoint is told the time left in both forms (relative values).
func TestClientDeadlineGRPCTimeout(t *testing.T) {
	type seen struct{ gh, grpc string }
	got := make(chan seen, 10)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("X-Gatehouse-Timeout"), r.Header.Get("Grpc-Timeout")}
		if r.URL.Path == "/slow" {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	h := start(t, baseConfig, map[string]string{"APP": be})
	c := client(t)
	do := func(path, timeout string) (int, time.Duration) {
		req, _ := http.NewRequest("GET", h.url+path, nil)
		req.Header.Set("Grpc-Timeout", timeout)
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(began)
	}
	ms := func(v, unit string) int {
		n, err := strconv.Atoi(strings.TrimSuffix(v, unit))
		if err != nil || !strings.HasSuffix(v, unit) {
			t.Fatalf("value %q, want a number of %s", v, unit)
		}
		return n
	}
	// 300ms asked (as 300000 microseconds): the endpoint gets at most that.
	if code, _ := do("/", "300000u"); code != 200 {
		t.Fatalf("status %d", code)
	}
	s := <-got
	if g, r := ms(s.gh, "ms"), ms(s.grpc, "m"); g <= 0 || g > 300 || r <= 0 || r > 300 {
		t.Fatalf("endpoint told X-Gatehouse-Timeout %q, grpc-timeout %q: want (0, 300] ms in both", s.gh, s.grpc)
	}
	h.next()
	// Looser than the route's 5s: ignored; the endpoint is told at most 5s.
	do("/", "1H")
	s = <-got
	if g, r := ms(s.gh, "ms"), ms(s.grpc, "m"); g <= 0 || g > 5000 || r <= 0 || r > 5000 {
		t.Fatalf("1H asked: endpoint told %q and %q, want at most the route's 5000ms", s.gh, s.grpc)
	}
	h.next()
	// It really bounds the request: a slow endpoint is cut at 150ms.
	code, took := do("/slow", "150m")
	<-got
	if code != 504 || took > time.Second {
		t.Fatalf("150ms grpc-timeout on a slow endpoint: %d after %v, want 504 soon after 150ms", code, took)
	}
	if r := h.expect("deadline_exceeded"); r.Status != 504 {
		t.Fatalf("record %+v", r)
	}
}
