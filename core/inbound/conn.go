package inbound

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
)

// base anchors the monotonic offsets stored in atomics.
var base = time.Now()

func mono() int64 { return int64(time.Since(base)) + 1 } // never 0: 0 means "unset"

// trackedConn is a client connection as the listener sees it. It records
// when the first byte of each request arrived, notices a request head that
// carries Content-Length (net/http drops it when Transfer-Encoding is also
// present), sniffs the status net/http writes when it refuses a request
// before any handler runs, and reports such requests when the connection
// closes.
type trackedConn struct {
	net.Conn
	sock *socket
	// scan is false on TLS listeners (the bytes are encrypted) and once the
	// connection turns out to speak HTTP/2.
	scan bool

	reqStart  atomic.Int64 // mono() of the current request's first byte; 0 none
	active    atomic.Bool  // a handler is running
	headPhase atomic.Bool  // reading a request head
	sawCL     atomic.Bool  // the current head has Content-Length
	h2        atomic.Bool
	status    atomic.Int32 // status net/http wrote outside a handler
	readErr   atomic.Value // last read error (error)
	carry     [15]byte     // tail of the head read so far, for matches across reads
	ncarry    int
	closeOnce sync.Once
}

var (
	contentLength = []byte("\ncontent-length:")
	headEnd       = []byte("\r\n\r\n")
	h2Preface     = []byte("PRI * HTTP/2.0")
)

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.reqStart.Load() == 0 {
			c.reqStart.Store(mono())
		}
		if c.scan && c.headPhase.Load() {
			c.scanHead(p[:n])
		}
	}
	if err != nil {
		c.readErr.Store(errBox{err})
	}
	return n, err
}

type errBox struct{ error }

// scanHead looks for a Content-Length field in the request head. It stops
// at the end of the head so body bytes are never inspected. A field name or
// the head's end may straddle two reads: the last 15 bytes of the head so far
// are carried over ("\ncontent-length:" is 16 bytes long).
func (c *trackedConn) scanHead(b []byte) {
	if c.ncarry == 0 && bytes.HasPrefix(b, h2Preface) {
		c.h2.Store(true)
		c.scan = false
		return
	}
	var probe [15 + 32]byte
	k := copy(probe[:], c.carry[:c.ncarry])
	k += copy(probe[k:], b[:min(len(b), 32)])
	end, done := len(b), false
	if i := bytes.Index(probe[:k], headEnd); i >= 0 {
		done, k = true, i+4
		end = max(0, k-c.ncarry)
	} else if i := bytes.Index(b, headEnd); i >= 0 {
		done, end = true, i+4
		k = min(k, c.ncarry+end)
	}
	if hasFieldFold(probe[:k]) || hasFieldFold(b[:end]) {
		c.sawCL.Store(true)
	}
	if done {
		c.headPhase.Store(false)
		c.ncarry = 0
		return
	}
	if len(b) >= len(c.carry) {
		c.ncarry = copy(c.carry[:], b[len(b)-len(c.carry):])
		return
	}
	var joined [15 + 15]byte
	n := copy(joined[:], c.carry[:c.ncarry])
	n += copy(joined[n:], b)
	c.ncarry = copy(c.carry[:], joined[max(0, n-len(c.carry)):n])
}

// hasFieldFold reports whether b contains "\ncontent-length:" in any case.
func hasFieldFold(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 || len(b)-i < len(contentLength) {
			return false
		}
		if bytes.EqualFold(b[i:i+len(contentLength)], contentLength) {
			return true
		}
		b = b[i+1:]
	}
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if !c.active.Load() && c.reqStart.Load() != 0 && len(p) >= 12 && bytes.HasPrefix(p, []byte("HTTP/1.1 ")) {
		s := int32(p[9]-'0')*100 + int32(p[10]-'0')*10 + int32(p[11]-'0')
		c.status.Store(s)
	}
	return c.Conn.Write(p)
}

// startRequest is called by the handler; it returns when the request's first
// byte arrived and whether its head had Content-Length.
func (c *trackedConn) startRequest() (start time.Time, sawCL bool) {
	c.active.Store(true)
	s := c.reqStart.Load()
	if s == 0 {
		return time.Now(), false
	}
	return base.Add(time.Duration(s - 1)), c.sawCL.Load()
}

// endRequest is called when the handler returns: the next bytes are the next request.
func (c *trackedConn) endRequest() {
	c.sawCL.Store(false)
	c.status.Store(0)
	c.reqStart.Store(0)
	c.headPhase.Store(true)
	c.active.Store(false)
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.sock.release(c)
		if s := c.reqStart.Load(); s != 0 && !c.active.Load() && !c.h2.Load() {
			c.sock.abandoned(c, base.Add(time.Duration(s-1)))
		}
	})
	return err
}

// abandonedKind tells why a request never reached a handler, and the
// status net/http answered it with (0: none, or the kind's own). A read
// that timed out is a header timeout whatever net/http answered (it
// answers 400 to some timeouts in the middle of a line).
func (c *trackedConn) abandonedKind() (failure.Kind, int, string) {
	if v, ok := c.readErr.Load().(errBox); ok {
		var ne net.Error
		if errors.As(v.error, &ne) && ne.Timeout() {
			return failure.HeaderTimeout, 0, "request head not received within limits.server.header_timeout"
		}
	}
	switch s := int(c.status.Load()); {
	case s == 408:
		return failure.HeaderTimeout, 0, "request head not received within limits.server.header_timeout"
	case s == 431:
		return failure.HeaderTooLarge, 0, "request head over limits.server.max_header_bytes"
	case s == 501:
		return failure.Malformed, s, "request head asks for what the server does not implement (a Transfer-Encoding other than chunked)"
	case s == 505:
		return failure.Malformed, s, "request head with an HTTP version the server does not speak"
	case s == 417:
		return failure.Malformed, s, "request head with an Expect the server cannot meet"
	case s >= 400 && s < 600:
		return failure.Malformed, s, "malformed request head"
	}
	return failure.ClientGone, 0, "client closed the connection in the middle of a request head"
}
