package gatehouse_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// A route's hooks cannot be bypassed with another spelling of its path:
// escapes of unreserved characters, dot-segments and doubled slashes are
// normalised before routes match, and the endpoint receives the path the
// routes saw; an encoded slash, which an endpoint may decode into a
// separator, is refused.
func TestPathFormsCannotBypassARoute(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RawPath+"|"+r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "reached "+r.URL.Path)
	}))
	cfg := strings.Replace(baseConfig, "routes:\n  - name: app\n    service: app\n", `routes:
  - name: admin
    match: {path_prefix: /admin}
    service: app
    hooks: [{go: require_header, config: {header: X-Api-Key, status: 401}}]
  - name: public
    match: {path_prefix: /}
    service: app
`, 1)
	h := start(t, cfg, map[string]string{"APP": app})
	for _, c := range []struct {
		target string
		status int
		path   string // what the endpoint gets, when it gets the request
	}{
		{"/admin/users", 401, ""},
		{"/%61dmin/users", 401, ""},
		{"/%61%64%6d%69%6e/users", 401, ""},
		{"//admin/users", 401, ""},
		{"/./admin/users", 401, ""},
		{"/public/../admin/users", 401, ""},
		{"/public/%2e%2e/admin/users", 401, ""},
		{"/admin%2Fusers", 400, ""},
		{"/public/x", 200, "/public/x"},
		{"/public/./x//y", 200, "/public/x/y"},
		{"/%7Euser", 200, "/~user"},
	} {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", c.target)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		body, _ := io.ReadAll(resp.Body)
		conn.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d (%q), want %d", c.target, resp.StatusCode, body, c.status)
		}
		if c.path != "" && string(body) != "reached "+c.path {
			t.Errorf("%s: the endpoint got %q, want the path %s", c.target, body, c.path)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range seen {
		if strings.Contains(s, "admin") {
			t.Errorf("an admin path reached the endpoint without the key: %s", s)
		}
	}
}

// HTTP/2 pseudo-headers reach the gateway checked only for CR, LF and NUL;
// a method, authority or path with a space or junk in it would go into the
// HTTP/1 request line and Host field the gateway writes upstream. They are
// refused with 400, and the endpoint sees nothing.
func TestH2PseudoHeadersChecked(t *testing.T) {
	// A raw endpoint: Go's server would refuse a broken request line
	// itself, hiding what the gateway sent.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var heads []string
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					var head strings.Builder
					for {
						line, err := br.ReadString('\n')
						if err != nil {
							return
						}
						head.WriteString(line)
						if line == "\r\n" {
							break
						}
					}
					mu.Lock()
					heads = append(heads, head.String())
					mu.Unlock()
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	_, fr := startH2C(t, ln.Addr().String())
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	cases := []struct{ method, authority, path string }{
		{"GET /admin/x", "x", "/m"},
		{"GET<>", "x", "/q"},
		{"GET", "a b", "/q"},
		{"GET", "evil.com/x?", "/q"},
		{"GET", "x", "/q?x=1 HTTP/1.1"},
		{"GET", "x", "/ok"}, // the control: answered by the endpoint
	}
	for i, k := range cases {
		hbuf.Reset()
		for _, f := range [][2]string{{":method", k.method}, {":scheme", "http"}, {":authority", k.authority}, {":path", k.path}} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: true})
	}
	status := map[uint32]string{}
	dec := hpack.NewDecoder(4096, nil)
	for len(status) < len(cases) {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d answers: %v", len(status), err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			fields, err := dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				t.Fatal(err)
			}
			for _, hf := range fields {
				if hf.Name == ":status" {
					status[f.StreamID] = hf.Value
				}
			}
		case *http2.RSTStreamFrame:
			status[f.StreamID] = "reset"
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v after %d answers", f.ErrCode, len(status))
		}
	}
	for i, k := range cases {
		want := "400"
		if i == len(cases)-1 {
			want = "200"
		}
		if got := status[uint32(2*i+1)]; got != want && !(want == "400" && got == "reset") {
			t.Errorf("%q %q %q: %s, want %s", k.method, k.authority, k.path, got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heads) != 1 || !strings.HasPrefix(heads[0], "GET /ok HTTP/1.1\r\n") {
		t.Errorf("the endpoint got %q, want only the control", heads)
	}
}

// The client's Connection field names hop-by-hop headers of its own; it
// cannot remove the headers a route hook sets for the endpoint.
func TestConnectionCannotStripHookHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	cfg := withRouteScript(t, `exports.route = function (req) { return { setHeader: { "X-Authenticated-User": "alice" } } };`)
	h := start(t, cfg, map[string]string{"APP": app})
	req, _ := http.NewRequest("GET", h.url+"/x", nil)
	req.Header.Set("Connection", "X-Authenticated-User, X-Hop")
	req.Header.Set("X-Hop", "1")
	resp, err := client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	hdr := <-got
	if v := hdr.Get("X-Authenticated-User"); v != "alice" {
		t.Errorf("X-Authenticated-User = %q upstream, want the hook's alice", v)
	}
	if v := hdr.Get("X-Hop"); v != "" {
		t.Errorf("X-Hop, named in the client's Connection, reached the endpoint: %q", v)
	}
}

// startH2C runs a gateway with an h2c listener in front of app and opens
// a raw HTTP/2 connection to it: preface and settings sent, closed at the
// test's end.
func startH2C(t *testing.T, app string) (*harness, *http2.Framer) {
	t.Helper()
	cfg := strings.Replace(baseConfig, `listeners: [{name: public, address: "127.0.0.1:0"}]`, `listeners: [{name: public, address: "127.0.0.1:0", h2c: true}]`, 1)
	h := start(t, cfg, map[string]string{"APP": app})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	return h, fr
}

// An HTTP/2 request net/http's server refuses itself (here without a
// :path, which is a stream error) never reaches a handler: it is still a
// malformed request in the access records, named by the server's error.
func TestH2RefusedStreamIsRecorded(t *testing.T) {
	h, fr := startH2C(t, backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })))
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: true})
	for reset := false; !reset; {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no reset of the stream: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID != 1 || f.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("reset of stream %d with %v, want stream 1, PROTOCOL_ERROR", f.StreamID, f.ErrCode)
			}
			reset = true
		case *http2.HeadersFrame:
			t.Fatalf("stream %d answered, want a reset", f.StreamID)
		}
	}
	r := h.expect("malformed")
	if r.Status != 400 || !strings.Contains(r.Err, "bad_path_method") || !strings.Contains(r.Err, "HTTP/2 request reset") {
		t.Errorf("record %+v, want status 400 and the server's error named", r)
	}
}

// A request body that is not valid chunked encoding is the client's
// malformed request: 400, not a silent close (client_gone).
func TestMalformedChunkedBodyIs400(t *testing.T) {
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	for _, body := range []string{"zz\r\nhello\r\n0\r\n\r\n", "fffffffffffffffffff\r\n", "5\nhello\n0\n\n"} {
		conn, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%s", body)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil {
			t.Errorf("%q: no answer: %v", body, err)
			continue
		}
		if resp.StatusCode != 400 {
			t.Errorf("%q: status %d, want 400", body, resp.StatusCode)
		}
		if r := h.expect("malformed"); r.Status != 400 {
			t.Errorf("%q: record %+v", body, r)
		}
	}
}

// Behind a trusted proxy (trust_forwarded), the client is the address that
// proxy added last to X-Forwarded-For, for hooks as for everything else;
// without it, the peer, and the client's own forwarding claims (Forwarded,
// X-Real-IP) do not reach the endpoint.
func TestClientAddressBehindATrustedProxy(t *testing.T) {
	got := make(chan http.Header, 1)
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	for _, trust := range []bool{false, true} {
		cfg := withRouteScript(t, `exports.route = function (req) { return { setHeader: { "X-Seen-Client": req.clientIP } } };`)
		if trust {
			cfg = strings.Replace(cfg, `address: "127.0.0.1:0"}]`, `address: "127.0.0.1:0", trust_forwarded: true}]`, 1)
		}
		h := start(t, cfg, map[string]string{"APP": app})
		req, _ := http.NewRequest("GET", h.url+"/x", nil)
		req.Header.Add("X-Forwarded-For", "1.2.3.4")
		req.Header.Add("X-Forwarded-For", "5.6.7.8, 203.0.113.9")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		req.Header.Set("X-Real-IP", "6.6.6.6")
		resp, err := client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		hdr := <-got
		want := "127.0.0.1"
		if trust {
			want = "203.0.113.9"
		}
		if v := hdr.Get("X-Seen-Client"); v != want {
			t.Errorf("trust_forwarded %v: the hook saw client %q, want %q", trust, v, want)
		}
		if !trust && (hdr.Get("Forwarded") != "" || hdr.Get("X-Real-Ip") != "") {
			t.Errorf("the client's Forwarded / X-Real-IP reached the endpoint: %q %q", hdr.Get("Forwarded"), hdr.Get("X-Real-Ip"))
		}
	}
}

// A request net/http refuses before any handler runs is logged with the
// status the client got, not the outcome's usual one.
func TestRefusedHeadLoggedWithItsStatus(t *testing.T) {
	app := backend(t, http.NotFoundHandler())
	h := start(t, baseConfig, map[string]string{"APP": app})
	for _, c := range []struct {
		head   string
		status int
	}{
		{"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"GET / HTTP/2.5\r\nHost: x\r\n\r\n", 505},
		{"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
	} {
		resp := rawRequest(t, h.addr, c.head)
		if resp.StatusCode != c.status {
			t.Errorf("%q: status %d, want %d", c.head, resp.StatusCode, c.status)
		}
		if r := h.expect("malformed"); r.Status != c.status {
			t.Errorf("%q: logged %d, the client got %d", c.head, r.Status, c.status)
		}
	}
}

// A request still in flight when the drain ends is cut by the gateway:
// its outcome says so (shutting_down), not that the client went away, and
// Shutdown's error names the bound.
func TestDrainCutIsShuttingDown(t *testing.T) {
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	defer close(release)
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	go client(t).Get(h.url + "/slow")
	select {
	case <-arrived: // in flight
	case <-time.After(5 * time.Second):
		t.Fatal("the request never reached the endpoint")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := h.g.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "drain_timeout") {
		t.Errorf("Shutdown = %v, want an error naming the drain bound", err)
	}
	if r := h.expect("shutting_down"); !strings.Contains(r.Err, "drain") {
		t.Errorf("record %+v", r)
	}
}

// keep_escaped_slashes passes %2F through, as part of its segment, for
// APIs that carry one in a path segment.
func TestKeepEscapedSlashes(t *testing.T) {
	got := make(chan string, 1)
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.URL.EscapedPath() }))
	cfg := strings.Replace(baseConfig, `address: "127.0.0.1:0"}]`, `address: "127.0.0.1:0", keep_escaped_slashes: true}]`, 1)
	h := start(t, cfg, map[string]string{"APP": app})
	resp := rawRequest(t, h.addr, "GET /projects/group%2fsub/../group%2Fapp/x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if p := <-got; p != "/projects/group%2Fapp/x" {
		t.Errorf("the endpoint got %q", p)
	}
}

// withRouteScript returns baseConfig with src, a script file of its own,
// bound to the route.
func withRouteScript(t *testing.T, src string) string {
	t.Helper()
	script := filepath.Join(t.TempDir(), "route.js")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(baseConfig, "routes:\n  - name: app\n    service: app\n", `scripts:
  - {name: route, file: "`+script+`"}
routes:
  - name: app
    service: app
    hooks: [{script: route, budget: 200ms}]
`, 1)
}

// TestRequestSmugglingFormsRefused sends request heads whose body framing
// another server on the path may read differently, alone and pipelined
// behind an innocent request (in the same write, so that they arrive in
// the same read): each is refused with 400 and the connection is closed,
// and nothing after it reaches the endpoint.
func TestRequestSmugglingFormsRefused(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	const smuggled = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	forms := map[string]string{
		"cl and te":          "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"te and cl":          "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n",
		"bare LF":            "POST /b HTTP/1.1\nHost: x\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
		"http/1.0 te":        "POST /b HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		"http/1.0 te, no cl": "POST /b HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"folded te":          "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
		"options *":          "OPTIONS * HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	}
	for name, form := range forms {
		for _, lead := range []string{"", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"} {
			mu.Lock()
			seen = nil
			mu.Unlock()
			conn, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, lead+form+smuggled)
			br := bufio.NewReader(conn)
			if lead != "" {
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("%s behind %q: %v", name, lead, err)
				}
				io.Copy(io.Discard, resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: the request before it got %d", name, resp.StatusCode)
				}
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("%s behind %q: %v", name, lead, err)
			}
			io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != 400 {
				t.Fatalf("%s behind %q: status %d, want 400", name, lead, resp.StatusCode)
			}
			// The connection is closed: no answer to what follows.
			if resp, err := http.ReadResponse(br, nil); err == nil {
				t.Fatalf("%s behind %q: the request after it was answered %d", name, lead, resp.StatusCode)
			}
			conn.Close()
			mu.Lock()
			for _, s := range seen {
				if s != "GET /a" && s != "POST /a" {
					t.Fatalf("%s behind %q: %q reached the endpoint", name, lead, s)
				}
			}
			mu.Unlock()
		}
	}
}

// TestPipelinedRequestsWithBodiesServed checks that the framing checks do
// not refuse requests that only look like smuggling inside a body, and
// that "OPTIONS *" is answered without upsetting the requests after it.
func TestPipelinedRequestsWithBodiesServed(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path+" "+strconv.Itoa(len(b)))
		mu.Unlock()
	}))
	h := start(t, baseConfig, map[string]string{"APP": app})
	fake := "\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	stream := "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: " + strconv.Itoa(len(fake)) + "\r\n\r\n" + fake +
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(len(fake)), 16) + "\r\n" + fake + "\r\n0\r\n\r\n" +
		"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(conn, stream)
	br := bufio.NewReader(conn)
	for i, want := range []int{200, 200, 200, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != want || resp.Close {
			t.Fatalf("response %d: status %d (close %v), want %d on an open connection", i, resp.StatusCode, resp.Close, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(seen, ", "); got != "POST /1 "+strconv.Itoa(len(fake))+", POST /2 "+strconv.Itoa(len(fake))+", GET /3 0" {
		t.Fatalf("endpoint saw %s", got)
	}
}
