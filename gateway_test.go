package gatehouse_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/rs/zerolog"
)

func TestMain(m *testing.M) {
	// regexp2's clock for match timeouts runs on its own goroutine until a
	// while after the last match that used it: not a leak.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/dlclark/regexp2/v2.runClock"))
}

// rec is a copy of a finished request's record.
type rec struct {
	Outcome, Route, Passport, Err string
	Status                        int
	BytesIn, BytesOut             int64
}

type harness struct {
	t    *testing.T
	g    *gatehouse.Gateway
	url  string
	addr string
	recs chan rec
	done chan error
}

// start runs a gateway for cfgText, where {{NAME}} placeholders are
// replaced from vars; the listener and admin bind port 0 on loopback.
func start(t *testing.T, cfgText string, vars map[string]string) *harness {
	t.Helper()
	cfg := parse(t, cfgText, vars)
	h := &harness{t: t, recs: make(chan rec, 1000), done: make(chan error, 1)}
	g, err := gatehouse.New(*cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()),
		gatehouse.WithObserver(proxy.ObserverFunc(func(r *proxy.Record) {
			select {
			case h.recs <- rec{Outcome: r.Outcome.String(), Route: r.Route, Passport: r.Passport.String(), Err: r.Err,
				Status: r.Status, BytesIn: r.BytesIn, BytesOut: r.BytesOut}:
			default:
			}
		})))
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	h.addr = g.Addr("public").String()
	h.url = "http://" + h.addr
	go func() { h.done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g.Shutdown(ctx)
		<-h.done
	})
	return h
}

func parse(t testing.TB, text string, vars map[string]string) *config.Config {
	t.Helper()
	for k, v := range vars {
		text = strings.ReplaceAll(text, "{{"+k+"}}", v)
	}
	cfg, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// next returns the next record, failing after a deadline.
func (h *harness) next() rec {
	h.t.Helper()
	select {
	case r := <-h.recs:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no request record")
	}
	return rec{}
}

// expect returns the next record with the given outcome, skipping others.
func (h *harness) expect(outcome string) rec {
	h.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case r := <-h.recs:
			if r.Outcome == outcome {
				return r
			}
		case <-deadline:
			h.t.Fatalf("no record with outcome %s", outcome)
		}
	}
}

func backend(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

const baseConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
limits:
  server: {header_timeout: 300ms, max_header_bytes: 4KiB}
  request: {deadline: 5s, max_body_bytes: 64KiB, body_min_rate: 10KiB/s, body_rate_grace: 300ms}
  upstream: {connect_timeout: 500ms, header_timeout: 300ms}
routes:
  - name: app
    service: app
services:
  - name: app
    endpoints: ["{{APP}}"]
`

func TestGetAndStreamedPost(t *testing.T) {
	var seen atomic.Value
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Clone())
		sum := sha256.New()
		n, _ := io.Copy(sum, r.Body)
		fmt.Fprintf(w, "%s %s %d %x", r.Method, r.URL.RequestURI(), n, sum.Sum(nil)[:4])
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	c := client(t)
	resp, err := c.Get(h.url + "/a/b?x=1&y=%20")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /a/b?x=1&y=%20 0") {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	id := resp.Header.Get("X-Request-Id")
	hdr := seen.Load().(http.Header)
	if id == "" || hdr.Get("X-Request-Id") != id {
		t.Fatalf("request id: client saw %q, backend %q", id, hdr.Get("X-Request-Id"))
	}
	if hdr.Get("X-Forwarded-For") != "127.0.0.1" || hdr.Get("X-Forwarded-Proto") != "http" || hdr.Get("X-Forwarded-Host") != h.addr {
		t.Fatalf("forwarded headers: %v", hdr)
	}
	r := h.next()
	if r.Outcome != "success" || r.Route != "app" {
		t.Fatalf("record %+v", r)
	}
	for _, s := range []string{"ACCEPTED", "HEADERS_READ", "ROUTED", "ENDPOINT_PICKED", "CONN_ACQUIRED(new)", "REQ_HEADERS_SENT", "RESP_HEADERS_RECEIVED", "RESPONDED", "RESP_BODY_SENT", "DONE"} {
		if !strings.Contains(r.Passport, "="+s) {
			t.Fatalf("passport lacks %s: %s", s, r.Passport)
		}
	}

	// A client-supplied, well-formed request ID is kept.
	req, _ := http.NewRequest("GET", h.url+"/id", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "abc-123" {
		t.Fatalf("request id not kept: %q", resp.Header.Get("X-Request-Id"))
	}
	h.next()

	// Streamed (chunked) POST of 60 KiB arriving in pieces.
	pr, pw := io.Pipe()
	want := sha256.New()
	go func() {
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 256)
		for i := 0; i < 15; i++ {
			want.Write(chunk)
			pw.Write(chunk)
		}
		pw.Close()
	}()
	resp, err = c.Post(h.url+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := fmt.Sprintf("POST /upload %d %x", 15*4096, want.Sum(nil)[:4]); string(body) != got {
		t.Fatalf("POST: %q, want %q", body, got)
	}
	r = h.next()
	if r.Outcome != "success" || r.BytesIn != 15*4096 || !strings.Contains(r.Passport, "REQ_BODY_SENT") {
		t.Fatalf("POST record %+v", r)
	}
	// The second and third requests reused the first connection.
	if !strings.Contains(r.Passport, "CONN_ACQUIRED(reused)") {
		t.Fatalf("keep-alive to the backend not used: %s", r.Passport)
	}
}

// echoHandler answers each chunk of the body as it arrives.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(200)
		rc.Flush()
		buf := make([]byte, 1024)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				rc.Flush()
			}
			if err != nil {
				return
			}
		}
	})
}

// pingPong sends a message, waits for its echo, and repeats: it can only
// finish if the body goes up while the response comes down.
func pingPong(t *testing.T, c *http.Client, url string) {
	t.Helper()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", url, pr)
	type result struct {
		resp *http.Response
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Do(req)
		got <- result{resp, err}
	}()
	if _, err := pw.Write([]byte("ping-0;")); err != nil {
		t.Fatal(err)
	}
	var res result
	select {
	case res = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("no response head while the upload is open: not full duplex")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.resp.Body.Close()
	br := bufio.NewReader(res.resp.Body)
	for i := 0; i < 5; i++ {
		if i > 0 {
			fmt.Fprintf(pw, "ping-%d;", i)
		}
		done := make(chan string, 1)
		go func() { s, _ := br.ReadString(';'); done <- s }()
		select {
		case s := <-done:
			if s != fmt.Sprintf("ping-%d;", i) {
				t.Fatalf("echo %d = %q", i, s)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("echo %d never came back: the proxy waits for the whole upload", i)
		}
	}
	pw.Close()
	if rest, _ := io.ReadAll(br); len(rest) != 0 {
		t.Fatalf("trailing bytes %q", rest)
	}
}

func TestFullDuplexHTTP1(t *testing.T) {
	app := backend(t, echoHandler())
	h := start(t, baseConfig, map[string]string{"APP": app})
	pingPong(t, client(t), h.url+"/echo")
	if r := h.next(); r.Outcome != "success" {
		t.Fatalf("record %+v", r)
	}
}

func TestFullDuplexHTTP2(t *testing.T) {
	// h2c from the client; the endpoint once over HTTP/1.1 (the pool) and
	// once over h2c (the transport).
	h1 := backend(t, echoHandler())
	s2 := httptest.NewUnstartedServer(echoHandler())
	s2.Config.Protocols = new(http.Protocols)
	s2.Config.Protocols.SetUnencryptedHTTP2(true)
	s2.Start()
	t.Cleanup(s2.Close)
	cfg := strings.Replace(baseConfig, `address: "127.0.0.1:0"}]`, `address: "127.0.0.1:0", h2c: true}]`, 1) + `
  - name: h2
    endpoints: ["{{H2}}"]
    protocol: h2c
`
	cfg = strings.Replace(cfg, "routes:\n", "routes:\n  - name: h2\n    match: {path_prefix: /h2}\n    service: h2\n", 1)
	h := start(t, cfg, map[string]string{"APP": h1, "H2": s2.Listener.Addr().String()})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	c := &http.Client{Transport: tr}
	pingPong(t, c, h.url+"/echo")
	if r := h.next(); r.Outcome != "success" {
		t.Fatalf("h2 → h1 record %+v", r)
	}
	pingPong(t, c, h.url+"/h2/echo")
	if r := h.next(); r.Outcome != "success" || r.Route != "h2" {
		t.Fatalf("h2 → h2c record %+v", r)
	}
}

func TestSlowHeadersCutAtHeaderTimeout(t *testing.T) {
	app := backend(t, http.NotFoundHandler())
	h := start(t, baseConfig, map[string]string{"APP": app})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
	began := time.Now()
	cut := time.Duration(0)
	for i := 0; i < len(head); i++ {
		if _, err := conn.Write([]byte{head[i]}); err != nil {
			cut = time.Since(began)
			break
		}
		time.Sleep(50 * time.Millisecond) // the drip itself is the test input
	}
	if cut == 0 {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(make([]byte, 100))
		if err == nil {
			t.Fatalf("server answered a head that took %v: %d bytes", time.Since(began), n)
		}
		cut = time.Since(began)
	}
	if cut > 2*time.Second {
		t.Fatalf("connection cut after %v, header timeout is 300ms", cut)
	}
	r := h.expect("header_timeout")
	if r.Status != 408 || !strings.HasSuffix(r.Passport, "FAILED(header_timeout)") {
		t.Fatalf("record %+v", r)
	}
}

func TestSlowBodyIs408AndBackendCancelled(t *testing.T) {
	cancelled := make(chan error, 1)
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		cancelled <- err
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n")
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := conn.Write(bytes.Repeat([]byte("x"), 20)); err != nil {
					return
				}
			}
		}
	}()
	defer close(stop)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%v; record %+v", err, h.next())
	}
	if resp.StatusCode != 408 {
		t.Fatalf("status %d, want 408; record %+v", resp.StatusCode, h.next())
	}
	r := h.expect("body_too_slow")
	if !strings.Contains(r.Err, "limits.request.body_min_rate") {
		t.Fatalf("error does not name the knob: %q", r.Err)
	}
	select {
	case err := <-cancelled:
		if err == nil {
			t.Fatal("backend read the whole body; it should have seen the request cancelled")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend never saw the request end")
	}
}

func TestBodyTooLarge(t *testing.T) {
	var got atomic.Int64
	calls := make(chan int64, 10)
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
		calls <- n
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	c := client(t)
	// Declared too large: refused before the backend is contacted.
	resp, err := c.Post(h.url+"/big", "application/octet-stream", bytes.NewReader(make([]byte, 100<<10)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("declared: status %d", resp.StatusCode)
	}
	if r := h.next(); r.Outcome != "body_too_large" || strings.Contains(r.Passport, "ENDPOINT_PICKED") {
		t.Fatalf("declared: record %+v", r)
	}
	// Streamed without a length: cut at the limit, the backend never gets it all.
	pr, pw := io.Pipe()
	go func() {
		chunk := make([]byte, 8<<10)
		for i := 0; i < 64; i++ {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		pw.Close()
	}()
	resp, err = c.Post(h.url+"/big", "application/octet-stream", pr)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("streamed: status %d", resp.StatusCode)
		}
	}
	pr.CloseWithError(io.ErrClosedPipe)
	r := h.expect("body_too_large")
	if r.Status != 413 && r.Status != 0 {
		t.Fatalf("streamed record %+v", r)
	}
	select {
	case n := <-calls:
		if n >= 512<<10 {
			t.Fatalf("backend read %d bytes: the whole body", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("backend handler never ended")
	}
}

func TestConnectRefusedIs502(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	h := start(t, baseConfig, map[string]string{"APP": dead})
	resp, err := client(t).Get(h.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	if r := h.next(); r.Outcome != "connect_refused" || !strings.Contains(r.Err, dead) {
		t.Fatalf("record %+v", r)
	}
}

func TestUpstreamHeaderTimeoutIs504(t *testing.T) {
	release := make(chan struct{})
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	h := start(t, baseConfig, map[string]string{"APP": app})
	began := time.Now()
	resp, err := client(t).Get(h.url + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 504 {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if d := time.Since(began); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("answered after %v; header timeout is 300ms", d)
	}
	r := h.next()
	if r.Outcome != "upstream_header_timeout" || !strings.Contains(r.Err, "limits.upstream.header_timeout = 300ms") {
		t.Fatalf("record %+v", r)
	}
}

func TestClientDisconnectCancelsBackend(t *testing.T) {
	cancelled := make(chan struct{})
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		for {
			if _, err := w.Write([]byte("tick\n")); err != nil {
				close(cancelled)
				return
			}
			rc.Flush()
			select {
			case <-r.Context().Done():
				close(cancelled)
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}))
	cfg := strings.Replace(baseConfig, "deadline: 5s", "deadline: 30s", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "tick\n" {
		t.Fatalf("first line %q", line)
	}
	conn.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("backend kept streaming after the client went away")
	}
	if r := h.expect("client_gone"); r.Status != 200 {
		t.Fatalf("record %+v", r)
	}
}

func rawRequest(t *testing.T, addr, req string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, req)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestHeadersTooLargeIs431(t *testing.T) {
	app := backend(t, http.NotFoundHandler())
	h := start(t, baseConfig, map[string]string{"APP": app})
	resp := rawRequest(t, h.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
	if resp.StatusCode != 431 {
		t.Fatalf("status %d, want 431", resp.StatusCode)
	}
	if r := h.expect("header_too_large"); r.Status != 431 {
		t.Fatalf("record %+v", r)
	}
	// The bound is the configured one (4KiB here): net/http alone lets a
	// head 4 KiB past it through. Just under it passes.
	for _, c := range []struct {
		size   int
		status int
	}{{4<<10 + 100, 431}, {7 << 10, 431}, {3 << 10, 404}} {
		resp := rawRequest(t, h.addr, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", c.size)+"\r\n\r\n")
		if resp.StatusCode != c.status {
			t.Errorf("a %d-byte header: status %d, want %d", c.size, resp.StatusCode, c.status)
		}
	}
}

func TestContentLengthWithTransferEncodingIs400(t *testing.T) {
	calls := atomic.Int64{}
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls.Add(1) }))
	h := start(t, baseConfig, map[string]string{"APP": app})
	resp := rawRequest(t, h.addr, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	if r := h.next(); r.Outcome != "malformed" {
		t.Fatalf("record %+v", r)
	}
	if calls.Load() != 0 {
		t.Fatal("the smuggling-shaped request reached the backend")
	}
	// Chunked alone is fine.
	resp = rawRequest(t, h.addr, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("chunked alone: status %d", resp.StatusCode)
	}
}

func TestHopByHopHeadersNeverCross(t *testing.T) {
	var seen atomic.Value
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Clone())
		w.Header().Set("Connection", "X-Backend-Secret")
		w.Header().Set("X-Backend-Secret", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Proxy-Authenticate", "Basic")
		w.Header().Set("X-Fine", "yes")
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	req, _ := http.NewRequest("GET", h.url+"/", nil)
	req.Header.Set("Connection", "X-Client-Hop, keep-alive")
	req.Header.Set("X-Client-Hop", "1")
	req.Header.Set("Keep-Alive", "300")
	req.Header.Set("Proxy-Authorization", "Basic abc")
	req.Header.Set("Proxy-Connection", "keep-alive")
	req.Header.Set("Te", "trailers")
	req.Header.Set("X-Kept", "yes")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hdr := seen.Load().(http.Header)
	for _, k := range []string{"X-Client-Hop", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Te", "Connection"} {
		if hdr.Get(k) != "" {
			t.Errorf("backend saw hop-by-hop %s: %q", k, hdr.Get(k))
		}
	}
	if hdr.Get("X-Kept") != "yes" {
		t.Error("end-to-end header lost")
	}
	for _, k := range []string{"X-Backend-Secret", "Keep-Alive", "Proxy-Authenticate"} {
		if resp.Header.Get(k) != "" {
			t.Errorf("client saw hop-by-hop %s", k)
		}
	}
	if resp.Header.Get("X-Fine") != "yes" {
		t.Error("end-to-end response header lost")
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	}))
	cfg := strings.Replace(baseConfig, "header_timeout: 300ms}\nservices", "header_timeout: 5s}\nservices", 1)
	cfg = strings.Replace(cfg, "upstream: {connect_timeout: 500ms, header_timeout: 300ms}", "upstream: {connect_timeout: 500ms, header_timeout: 5s}", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	c := client(t)
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := c.Get(h.url + "/long")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- h.g.Shutdown(ctx)
	}()
	// New connections are refused once shutdown began.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("listener still accepting during shutdown")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q %v", r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestReloadKeepsServingAndRefusesBadConfig(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v1 "+r.URL.Path) }))
	app2 := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v2 "+r.URL.Path) }))
	h := start(t, baseConfig, map[string]string{"APP": app})
	c := client(t)
	get := func(path string) (int, string) {
		resp, err := c.Get(h.url + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if _, b := get("/x"); b != "v1 /x" {
		t.Fatalf("before reload: %q", b)
	}
	// Same listener address (the bound one), new service and route.
	next := strings.Replace(baseConfig, `address: "127.0.0.1:0"}]`, `address: "`+h.addr+`"}]`, 1) + `
  - name: two
    endpoints: ["{{APP2}}"]
`
	next = strings.Replace(next, "routes:\n", "routes:\n  - name: two\n    match: {path_prefix: /two}\n    service: two\n", 1)
	if err := h.g.Reload(*parse(t, next, map[string]string{"APP": app, "APP2": app2})); err != nil {
		t.Fatal(err)
	}
	if _, b := get("/two/y"); b != "v2 /two/y" {
		t.Fatalf("after reload: %q", b)
	}
	// An invalid configuration is refused and the running one keeps serving.
	bad := *parse(t, next, map[string]string{"APP": app, "APP2": app2})
	bad.Routes[0].Service = "missing"
	if err := h.g.Reload(bad); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("bad reload: %v", err)
	}
	if _, b := get("/two/z"); b != "v2 /two/z" {
		t.Fatalf("after refused reload: %q", b)
	}
}

func TestReloadUnderLoadFailsNothing(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	h := start(t, baseConfig, map[string]string{"APP": app})
	pinned := strings.Replace(baseConfig, `address: "127.0.0.1:0"}]`, `address: "`+h.addr+`"}]`, 1)
	c := client(t)
	var failed, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(h.url + "/")
				if err != nil {
					t.Logf("request failed: %v", err)
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Logf("status %d", resp.StatusCode)
					failed.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	for i := 0; i < 20; i++ {
		// Alternate server settings so that half the reloads hand the socket to a new server.
		text := pinned
		if i%2 == 1 {
			text = strings.Replace(pinned, "max_header_bytes: 4KiB", "max_header_bytes: 8KiB", 1)
		}
		if err := h.g.Reload(*parse(t, text, map[string]string{"APP": app})); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // let traffic flow between reloads
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || done.Load() == 0 {
		t.Fatalf("%d of %d requests failed across reloads", failed.Load(), done.Load())
	}
}

func TestUpgradeTunnel(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" || !strings.EqualFold(r.Header.Get("Connection"), "Upgrade") {
			http.Error(w, "no upgrade", 400)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		brw.Flush()
		io.Copy(conn, brw)
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, msg := range []string{"hello", "world"} {
		io.WriteString(conn, msg)
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo %q: %q %v", msg, buf, err)
		}
	}
	conn.Close()
	if r := h.next(); r.Outcome != "success" || !strings.Contains(r.Passport, "UPGRADED") {
		t.Fatalf("record %+v", r)
	}
}

func TestStaleKeepAliveIsRetriedOnce(t *testing.T) {
	closed := make(chan struct{}, 10)
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	s.Config.IdleTimeout = 20 * time.Millisecond
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			closed <- struct{}{}
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	h := start(t, baseConfig, map[string]string{"APP": s.Listener.Addr().String()})
	c := client(t)
	for i := 0; i < 2; i++ {
		resp, err := c.Get(h.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
		r := h.next()
		if r.Outcome != "success" {
			t.Fatalf("request %d: record %+v", i, r)
		}
		if i == 0 {
			select { // the backend closes the idle keep-alive connection
			case <-closed:
			case <-time.After(5 * time.Second):
				t.Fatal("backend never closed the idle connection")
			}
		}
	}
}

func TestExpectContinue(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %d", len(b))
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	tr := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("PUT", h.url+"/up", strings.NewReader(strings.Repeat("z", 1000)))
	req.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "got 1000" {
		t.Fatalf("body %q", b)
	}
}
