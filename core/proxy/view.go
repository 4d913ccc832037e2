package proxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// Request is the core's view of an inbound request. The adapter fills it;
// the engine owns Header and may edit it in place (it becomes the outbound
// header).
type Request struct {
	// ID is the request ID (X-Request-Id), received or generated.
	ID string
	// Method, Host, Path (escaped, as received) and RawQuery of the request.
	Method, Host, Path, RawQuery string
	// ProtoMajor is 1 or 2.
	ProtoMajor int
	// Header is the request header; hop-by-hop fields are still present.
	Header http.Header
	// ContentLength is the declared body length, -1 when unknown (chunked, HTTP/2).
	ContentLength int64
	// Body is the request body, nil when there is none.
	Body io.Reader
	// RemoteAddr is the client's ip:port.
	RemoteAddr string
	// TLS is true on HTTPS listeners; TLSInfo describes the connection for hooks.
	TLS     bool
	TLSInfo *sdk.TLSInfo
	// Ctx ends when the client goes away.
	Ctx context.Context
	// Start is when the request's first byte arrived.
	Start time.Time
	// BadFraming, when set, says why the request's framing is refused
	// (both Content-Length and Transfer-Encoding, and the like): 400 and
	// the connection closed.
	BadFraming string
	// Cut, when set, says the server is closing the connections left at
	// the end of its drain (limits.server.drain_timeout): a request that
	// loses its client then is shutting_down, not client_gone.
	Cut *atomic.Bool
	// HeadTooLarge is true for a head over limits.server.max_header_bytes
	// that net/http's slack let through.
	HeadTooLarge bool
	// TrustForwarded keeps incoming X-Forwarded-* headers (see config.Listener).
	TrustForwarded bool
	// KeepEscapedSlashes passes %2F and %5C in the path through (see
	// config.Listener).
	KeepEscapedSlashes bool
	// Listener names the listener that accepted the request.
	Listener string
}

// ClientSide is how the engine answers the client. It is http.ResponseWriter
// plus the parts of http.ResponseController the engine uses, so that the
// engine does not depend on net/http's server.
type ClientSide interface {
	Header() http.Header
	WriteHeader(status int)
	Write(p []byte) (int, error)
	Flush() error
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
	EnableFullDuplex() error
	Hijack() (net.Conn, *bufio.ReadWriter, error)
}
