package inbound

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/sdk"
)

type ctxKey struct{}

// unreadBodyGrace bounds the reading of a request body left unread by the
// answer (a rejection, an error): time for a client that is sending it to
// finish, so that the connection's close does not reset the answer.
const unreadBodyGrace = time.Second

// handler adapts net/http to the engine: it builds the core's request view
// and a ClientSide over the ResponseWriter, and runs the current runtime.
type handler struct {
	name           string
	trustForwarded bool
	tls            bool
	current        func() *proxy.Runtime
	// maxHeaderBytes is limits.server.max_header_bytes: net/http lets a
	// head 4 KiB past its MaxHeaderBytes through (its read buffer's slack),
	// so the handler holds the head to the bound itself.
	maxHeaderBytes int
	// keepEscapedSlashes is the listener's keep_escaped_slashes.
	keepEscapedSlashes bool
	// retiring is set when a reload replaced this handler's server: its
	// HTTP/1 responses then say "Connection: close", so clients move to the
	// new server between requests instead of racing an idle-connection close.
	retiring atomic.Bool
	// cut is set just before the server closes the connections still open
	// at the end of its drain (shutdown, or a reload that replaced it):
	// the requests that end then were cut by the gateway, not their client.
	cut atomic.Bool
}

// clientSide is the ClientSide over net/http's ResponseWriter.
type clientSide struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	close bool         // add "Connection: close" (retiring server, unknown framing; HTTP/1)
	tc    *trackedConn // the connection, when tracked
}

func (c *clientSide) Header() http.Header { return c.w.Header() }
func (c *clientSide) WriteHeader(s int) {
	if c.close && s >= 200 {
		c.w.Header().Set("Connection", "close")
	}
	c.w.WriteHeader(s)
}
func (c *clientSide) Write(p []byte) (int, error)        { return c.w.Write(p) }
func (c *clientSide) Flush() error                       { return c.rc.Flush() }
func (c *clientSide) SetReadDeadline(t time.Time) error  { return c.rc.SetReadDeadline(t) }
func (c *clientSide) SetWriteDeadline(t time.Time) error { return c.rc.SetWriteDeadline(t) }
func (c *clientSide) EnableFullDuplex() error            { return c.rc.EnableFullDuplex() }
func (c *clientSide) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if c.tc != nil {
		c.tc.upgraded() // what follows is not HTTP/1 any more
	}
	return c.rc.Hijack()
}

type work struct {
	req proxy.Request
	cs  clientSide
}

var workPool = sync.Pool{New: func() any { return new(work) }}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wk := workPool.Get().(*work)
	req := &wk.req
	start := time.Now()
	req.BadFraming = ""
	// closeAfter: the framing of this request cannot be checked, so the
	// connection is not trusted with another request (HTTP/1).
	closeAfter := false
	var tracked *trackedConn
	if r.ProtoMajor == 1 {
		if tc, ok := r.Context().Value(ctxKey{}).(*trackedConn); ok {
			tracked = tc
			var facts headFacts
			start, facts, ok = tc.startRequest(len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto))
			defer tc.endRequest()
			if ok {
				req.BadFraming = badFraming(facts, r.ProtoMinor)
			} else {
				closeAfter = true
			}
		} else if len(r.TransferEncoding) > 0 {
			// Over TLS the framer does not see the stream: whether a
			// chunked request also had Content-Length is unknown, and
			// RFC 9112 6.1 asks to close the connection after such a
			// request.
			closeAfter = true
		}
	}
	if r.Method == http.MethodOptions && r.RequestURI == "*" && req.BadFraming == "" {
		// "OPTIONS *" asks about the server itself: answered here as
		// net/http would, after the framing checks (the server is built
		// with DisableGeneralOptionsHandler so that they run).
		if r.ContentLength != 0 {
			io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 4<<10))
		}
		if closeAfter {
			w.Header().Set("Connection", "close")
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		*wk = work{}
		workPool.Put(wk)
		return
	}
	req.Start = start
	req.Method = r.Method
	req.Host = r.Host
	req.Path = r.URL.EscapedPath()
	if r.RequestURI == "*" {
		req.Path = "*"
	}
	req.RawQuery = r.URL.RawQuery
	req.ProtoMajor = r.ProtoMajor
	req.HeadTooLarge = h.maxHeaderBytes > 0 && headSize(r) > h.maxHeaderBytes
	req.Header = r.Header
	req.ContentLength = r.ContentLength
	req.Body = nil
	if r.Body != nil && r.Body != http.NoBody {
		req.Body = r.Body
	}
	req.RemoteAddr = r.RemoteAddr
	req.TLS = r.TLS != nil || h.tls
	req.TLSInfo = nil
	if cs := r.TLS; cs != nil {
		req.TLSInfo = &sdk.TLSInfo{Version: tls.VersionName(cs.Version), ServerName: cs.ServerName,
			CipherSuite: tls.CipherSuiteName(cs.CipherSuite), ALPN: cs.NegotiatedProtocol}
		if len(cs.PeerCertificates) > 0 {
			req.TLSInfo.PeerSubject = cs.PeerCertificates[0].Subject.String()
		}
	}
	req.Ctx = r.Context()
	req.TrustForwarded = h.trustForwarded
	req.KeepEscapedSlashes = h.keepEscapedSlashes
	req.Cut = &h.cut
	req.Listener = h.name
	req.ID = proxy.RequestID(r.Header)
	wk.cs = clientSide{w: w, rc: http.NewResponseController(w), tc: tracked,
		close: r.ProtoMajor == 1 && (h.retiring.Load() || closeAfter)}

	abort := h.current().Serve(&wk.cs, req)
	if r.ProtoMajor == 1 && r.ContentLength != 0 {
		// After the handler, net/http reads what is left of the body (up
		// to 256 KiB) to reuse the connection, with no deadline of its
		// own: a client that declared a body and never sends it would
		// hold the connection (and a max_connections slot) for good. A
		// body read to its end is not affected; the next request on the
		// connection gets net/http's own deadlines.
		wk.cs.SetReadDeadline(time.Now().Add(unreadBodyGrace))
	}

	*wk = work{}
	workPool.Put(wk)
	if abort {
		// The response head went out and the body was cut: abort the
		// stream so the client sees a broken response, not a short one.
		panic(http.ErrAbortHandler)
	}
}

// badFraming says why a request head's framing is refused, from the
// fields net/http hid from the handler ("" when it is fine). Each is a
// request whose body another server on the path may frame differently
// (RFC 9112 6.1, 6.3, 5.2): request smuggling.
func badFraming(h headFacts, protoMinor int) string {
	switch {
	case h.te && h.cl:
		return "request has both Content-Length and Transfer-Encoding"
	case h.te && protoMinor == 0:
		return "HTTP/1.0 request has Transfer-Encoding"
	case h.folded:
		return "request has Content-Length or Transfer-Encoding continued on another line (obs-fold)"
	}
	return ""
}

func connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, ctxKey{}, tc)
	}
	return ctx
}

// headSize is the size of r's head as a client sends it in HTTP/1.1: the
// request line and one "Name: value\r\n" line per value (HTTP/2 heads,
// HPACK-decoded, are counted the same way).
func headSize(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len("HTTP/1.1\r\n") + len("\r\n")
	if r.Host != "" && r.Header.Get("Host") == "" {
		n += len("Host: \r\n") + len(r.Host) // net/http moves Host out of the header
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 4 + len(v)
		}
	}
	return n
}
