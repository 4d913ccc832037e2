package gatehouse_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gatehouse test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSListenerNegotiatesHTTP2(t *testing.T) {
	var proto, fwdProto string
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fwdProto = r.Header.Get("X-Forwarded-Proto")
		io.WriteString(w, "secure")
	}))
	certFile, keyFile, pool := selfSigned(t)
	cfg := strings.Replace(baseConfig, `address: "127.0.0.1:0"}]`,
		fmt.Sprintf(`address: "127.0.0.1:0", tls: {cert: %q, key: %q}}]`, certFile, keyFile), 1)
	h := start(t, cfg, map[string]string{"APP": app})
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get("https://" + h.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	proto = resp.Proto
	if string(b) != "secure" || resp.ProtoMajor != 2 {
		t.Fatalf("got %q over %s, want HTTP/2", b, proto)
	}
	if fwdProto != "https" {
		t.Fatalf("X-Forwarded-Proto = %q", fwdProto)
	}
	// HTTP/1.1 clients still work on the same listener.
	tr1 := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	t.Cleanup(tr1.CloseIdleConnections)
	resp, err = (&http.Client{Transport: tr1}).Get("https://" + h.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 {
		t.Fatalf("HTTP/1.1 client got %s", resp.Proto)
	}
}

func TestMaxRequestsInFlightIs503(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	cfg := strings.Replace(baseConfig, "server: {header_timeout: 300ms, max_header_bytes: 4KiB}",
		"server: {header_timeout: 300ms, max_header_bytes: 4KiB, max_requests: 1}", 1)
	cfg = strings.Replace(cfg, "header_timeout: 300ms}\nroutes", "header_timeout: 5s}\nroutes", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	c := client(t)
	first := make(chan int, 1)
	go func() {
		resp, err := c.Get(h.url + "/one")
		if err != nil {
			first <- 0
			return
		}
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	<-entered
	resp, err := c.Get(h.url + "/two")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("second request: %d, want 503", resp.StatusCode)
	}
	if r := h.expect("overloaded"); !strings.Contains(r.Err, "limits.server.max_requests = 1") {
		t.Fatalf("record %+v", r)
	}
	close(release)
	if s := <-first; s != 200 {
		t.Fatalf("first request: %d", s)
	}
}

func TestMaxConnectionsWaitInBacklog(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cfg := strings.Replace(baseConfig, "server: {header_timeout: 300ms, max_header_bytes: 4KiB}",
		"server: {header_timeout: 5s, max_header_bytes: 4KiB, max_connections: 1}", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	c1, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c1, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	br1 := bufio.NewReader(c1)
	if resp, err := http.ReadResponse(br1, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("first connection: %v", err)
	}
	// The second connection is not served while the first stays open.
	c2, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	fmt.Fprintf(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c2.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	br2 := bufio.NewReader(c2)
	if _, err := br2.Peek(1); err == nil {
		t.Fatal("second connection served beyond limits.server.max_connections = 1")
	}
	c1.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br2, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("second connection after the first closed: %v", err)
	}
}

func TestAdminEndpoints(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	h := start(t, baseConfig, map[string]string{"APP": app})
	c := client(t)
	for i := 0; i < 3; i++ {
		resp, _ := c.Get(h.url + "/x")
		resp.Body.Close()
	}
	resp, _ := c.Get(h.url + "/x")
	resp.Body.Close()
	admin := "http://" + h.g.AdminAddr().String()
	get := func(path string) (int, string) {
		resp, err := c.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	_, metrics := get("/metrics")
	if !strings.Contains(metrics, `gatehouse_requests_total{code="200",listener="public",outcome="success",route="app",service="app"} 4`) {
		t.Fatalf("metrics lack the request counter:\n%.2000s", metrics)
	}
	if !strings.Contains(metrics, "gatehouse_overhead_seconds_bucket") || !strings.Contains(metrics, "go_goroutines") {
		t.Fatal("metrics lack the overhead histogram or the runtime collector")
	}
	_, body := get("/admin/passports?outcome=success")
	var items []struct{ Passport, Outcome string }
	if err := json.Unmarshal([]byte(body), &items); err != nil || len(items) != 4 || !strings.HasSuffix(items[0].Passport, "=DONE") {
		t.Fatalf("passports: %v %s", err, body)
	}
	_, body = get("/admin/api/overhead")
	var ov struct{ Count int }
	if json.Unmarshal([]byte(body), &ov); ov.Count != 4 {
		t.Fatalf("overhead: %s", body)
	}
	if _, cfg := get("/admin/config"); !strings.Contains(cfg, "listeners:") {
		t.Fatalf("config: %s", cfg)
	}
}

func TestSlowUpstreamBodyIsCut(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		w.Write([]byte("start\n"))
		rc.Flush()
		for i := 0; i < 100; i++ {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := w.Write([]byte(".")); err != nil {
				return
			}
			rc.Flush()
		}
	}))
	cfg := strings.Replace(baseConfig, "upstream: {connect_timeout: 500ms, header_timeout: 300ms}",
		"upstream: {connect_timeout: 500ms, header_timeout: 300ms, body_min_rate: 1KiB/s, body_rate_grace: 300ms}", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	resp, err := client(t).Get(h.url + "/drip")
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("a response cut for slowness must reach the client as broken, not complete")
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("cut after %v", d)
	}
	r := h.next()
	if r.Outcome != "upstream_too_slow" || r.Status != 200 || !strings.Contains(r.Err, "limits.upstream.body_min_rate") {
		t.Fatalf("record %+v", r)
	}
}

func TestUpstreamLimitsOnResponse(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/bighead":
			for i := 0; i < 64; i++ {
				w.Header().Add("X-Filler", strings.Repeat("h", 1000))
			}
		case "/bigbody":
			w.Write(make([]byte, 200<<10))
		}
	}))
	cfg := strings.Replace(baseConfig, "upstream: {connect_timeout: 500ms, header_timeout: 300ms}",
		"upstream: {connect_timeout: 500ms, header_timeout: 300ms, max_header_bytes: 16KiB, max_response_bytes: 100KiB}", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	c := client(t)
	resp, err := c.Get(h.url + "/bighead")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 502 {
		t.Fatalf("big head: %d, want 502", resp.StatusCode)
	}
	if r := h.next(); r.Outcome != "upstream_malformed" || !strings.Contains(r.Err, "limits.upstream.max_header_bytes") {
		t.Fatalf("big head record %+v", r)
	}
	resp, err = c.Get(h.url + "/bigbody")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatal("a body over limits.upstream.max_response_bytes must be cut, not delivered")
	}
	if r := h.expect("upstream_body_too_large"); !strings.Contains(r.Err, "limits.upstream.max_response_bytes") {
		t.Fatalf("big body record %+v", r)
	}
	// A normal response still works on the same service.
	resp, err = c.Get(h.url + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("normal request after the limits: %v", err)
	}
	resp.Body.Close()
}

// TestClientNotReadingIsCut: a client that stops reading a large response is
// cut as client_too_slow. (Regression: the client's rate was once judged on
// wall time, so a slow endpoint was blamed on the client; see
// TestSlowUpstreamBodyIsCut for the other side.)
func TestClientNotReadingIsCut(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for i := 0; i < 512; i++ { // 32 MiB, more than the socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	cfg := strings.Replace(baseConfig, "request: {deadline: 5s,", "request: {deadline: 20s, client_min_rate: 1MiB/s,", 1)
	h := start(t, cfg, map[string]string{"APP": app})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil {
		t.Fatal(err)
	}
	// ... and read nothing more.
	r := h.expect("client_too_slow")
	if r.Status != 200 || !strings.Contains(r.Err, "limits.request.client_min_rate") {
		t.Fatalf("record %+v", r)
	}
}

// A request answered before its body was read (a hook's rejection, a body
// over the bound, no route) gets its answer at once and its connection
// closed soon after, even when the client declared a body and never sends
// it: such connections would otherwise stay open for good and use up
// max_connections.
func TestEarlyAnswerDoesNotWaitForTheBody(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cfg := strings.Replace(baseConfig, "routes:\n  - name: app\n    service: app\n", `routes:
  - name: app
    match: {path_prefix: /app}
    service: app
  - name: keyed
    match: {path_prefix: /keyed}
    service: app
    hooks: [{go: require_header, config: {header: X-Tenant, status: 401}}]
`, 1)
	h := start(t, cfg, map[string]string{"APP": app})
	for _, c := range []struct {
		name, head string
		status     int
	}{
		{"hook rejects, body declared", "POST /keyed/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", 401},
		{"hook rejects, chunked body", "POST /keyed/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 401},
		{"body over the bound", "POST /app/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nhello", 413},
		{"no route", "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n", 404},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			io.WriteString(conn, c.head)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != c.status || !resp.Close {
				t.Fatalf("status %d, close %v; want %d and Connection: close", resp.StatusCode, resp.Close, c.status)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("answered after %v", d)
			}
			// The gateway closes the connection (after at most its
			// grace for the body), with the client still holding it.
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("read after the answer: %v, want EOF (the gateway closing)", err)
			}
			if d := time.Since(start); d > 4*time.Second {
				t.Fatalf("connection closed after %v", d)
			}
		})
	}
}

// Over TLS the gateway does not follow the plaintext stream, so it cannot
// tell whether a chunked HTTP/1.1 request also had Content-Length: it
// serves the request and closes the connection after it (RFC 9112 6.1),
// so that nothing smuggled in its body is read as a request.
func TestTLSChunkedRequestClosesTheConnection(t *testing.T) {
	var seen atomic.Int64
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		seen.Add(1)
	}))
	certFile, keyFile, pool := selfSigned(t)
	cfg := strings.Replace(baseConfig, `address: "127.0.0.1:0"}]`,
		fmt.Sprintf(`address: "127.0.0.1:0", tls: {cert: %q, key: %q}}]`, certFile, keyFile), 1)
	h := start(t, cfg, map[string]string{"APP": app})
	conn, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"+
		"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || !resp.Close {
		t.Fatalf("status %d, close %v: want 200 and the connection closed", resp.StatusCode, resp.Close)
	}
	if resp, err := http.ReadResponse(br, nil); err == nil {
		t.Fatalf("the request after it was answered %d", resp.StatusCode)
	}
	if n := seen.Load(); n != 1 {
		t.Fatalf("the endpoint saw %d requests, want 1", n)
	}
	// A request with Content-Length keeps the connection.
	conn2, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	conn2.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn2, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	resp, err = http.ReadResponse(bufio.NewReader(conn2), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("status %d, close %v: want 200 on an open connection", resp.StatusCode, resp.Close)
	}
}
