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
// when the first byte of each request arrived, follows the HTTP/1 request
// stream (framer) to see the framing fields net/http hides from the
// handler, sniffs the status net/http writes when it refuses a request
// before any handler runs, and reports such requests when the connection
// closes.
type trackedConn struct {
	net.Conn
	sock *socket
	// scan is false on TLS listeners (the bytes are encrypted), once the
	// connection turns out to speak HTTP/2 and once it is upgraded.
	scan    atomic.Bool
	started bool // a byte was read (set by the reading goroutine)
	fr      framer

	reqStart  atomic.Int64 // mono() of the current request's first byte; 0 none
	active    atomic.Bool  // a handler is running
	h2        atomic.Bool
	status    atomic.Int32 // status net/http wrote outside a handler
	readErr   atomic.Value // last read error (error)
	closeOnce sync.Once
}

var h2Preface = []byte("PRI * HTTP/2.0")

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if c.reqStart.Load() == 0 {
			c.reqStart.Store(mono())
		}
		if c.scan.Load() {
			if !c.started && bytes.HasPrefix(p[:n], h2Preface) {
				c.h2.Store(true)
				c.scan.Store(false)
			} else if c.fr.feed(p[:n]); c.fr.h2 {
				c.h2.Store(true)
				c.scan.Store(false)
			}
		}
		c.started = true
	}
	if err != nil {
		c.readErr.Store(errBox{err})
	}
	return n, err
}

type errBox struct{ error }

func (c *trackedConn) Write(p []byte) (int, error) {
	if !c.active.Load() && c.reqStart.Load() != 0 && len(p) >= 12 && bytes.HasPrefix(p, []byte("HTTP/1.1 ")) {
		s := int32(p[9]-'0')*100 + int32(p[10]-'0')*10 + int32(p[11]-'0')
		c.status.Store(s)
	}
	return c.Conn.Write(p)
}

// startRequest is called by the handler of an HTTP/1 request; it returns
// when the request's first byte arrived and the framing facts of its head.
// ok is false when the head's facts are unknown: the framer stopped, or the
// facts at hand are not this request's (the request line's length, from
// the handler's view, differs).
func (c *trackedConn) startRequest(lineLen int) (start time.Time, h headFacts, ok bool) {
	c.active.Store(true)
	start = time.Now()
	if s := c.reqStart.Load(); s != 0 {
		start = base.Add(time.Duration(s - 1))
	}
	if !c.scan.Load() {
		return start, h, false
	}
	h, ok = c.fr.claim()
	if !ok || h.lineLen != lineLen {
		return start, headFacts{}, false
	}
	if h.start != 0 {
		start = base.Add(time.Duration(h.start - 1))
	}
	return start, h, true
}

// endRequest is called when the handler returns: the next bytes are the next request.
func (c *trackedConn) endRequest() {
	c.status.Store(0)
	c.reqStart.Store(0)
	c.active.Store(false)
}

// upgraded stops following the stream: the connection left HTTP/1.
func (c *trackedConn) upgraded() { c.scan.Store(false) }

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
