package sdk

import (
	"net/textproto"
	"time"
)

// Header holds HTTP header fields keyed by canonical name (as
// textproto.CanonicalMIMEHeaderKey returns it, like http.Header). The core
// fills it; hooks treat it as read-only.
type Header map[string][]string

// Get returns the first value of the field named key, canonicalising key
// first, or "" when the field is absent.
func (h Header) Get(key string) string {
	v := h[textproto.CanonicalMIMEHeaderKey(key)]
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Values returns every value of the field named key, canonicalising key
// first. The returned slice is shared with the header: do not modify it.
func (h Header) Values(key string) []string {
	return h[textproto.CanonicalMIMEHeaderKey(key)]
}

// Has reports whether the field named key is present.
func (h Header) Has(key string) bool {
	_, ok := h[textproto.CanonicalMIMEHeaderKey(key)]
	return ok
}

// TLSInfo holds the facts of a TLS connection that hooks may see.
type TLSInfo struct {
	// Version is the negotiated protocol version, e.g. "TLS 1.3".
	Version string
	// ServerName is the SNI name the client asked for ("" when none).
	ServerName string
	// CipherSuite is the negotiated cipher suite's IANA name.
	CipherSuite string
	// ALPN is the negotiated application protocol, e.g. "h2" ("" when none).
	ALPN string
	// PeerSubject is the subject of the verified client certificate in RFC
	// 2253 form, "" when the client presented none.
	PeerSubject string
}

// Request is the read-only view of a request that hooks see. The core builds
// it once per request and hands the same view to every phase, updating Labels
// and Service between phases. A hook must not modify it or keep it after the
// call returns.
type Request struct {
	// ID is the gateway's request ID, also in logs and the passport.
	ID string
	// Method is the HTTP method, e.g. "GET".
	Method string
	// Scheme is "http" or "https".
	Scheme string
	// Host is the authority the client asked for (Host header or :authority).
	Host string
	// Path is the request path, not decoded, without the query.
	Path string
	// RawQuery is the query string without the leading '?', not decoded.
	RawQuery string
	// Header holds the request header fields, canonical keys.
	Header Header
	// ClientIP is the client's address without port, as the listener saw it
	// (or as trusted forwarding configuration resolved it).
	ClientIP string
	// TLS is nil on plain connections.
	TLS *TLSInfo
	// Route is the name of the matched route.
	Route string
	// Service is the service the route targets; the route phase may change it.
	Service string
	// Labels holds labels set by earlier hooks and phases; read-only for the
	// hook (a hook adds labels through its decision).
	Labels map[string]string
	// Body holds the start of the request body, only when the binding asks
	// for it, at most the binding's body bound (bytes). Nil otherwise.
	Body []byte
	// BodyTruncated reports that the body was longer than the bound and Body
	// holds only its first bytes.
	BodyTruncated bool
}

// Response is the view of an upstream (or gateway-generated) response that
// the respond phase sees.
type Response struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the response header fields, canonical keys; read-only.
	Header Header
}

// Observation is what the observe phase sees once a request is finished.
type Observation struct {
	// Request is the request view as the last phase saw it.
	Request *Request
	// Status is the status sent to the client (0 when none was sent).
	Status int
	// Outcome names how the request ended: "ok", or a failure kind such as
	// "rejected", "upstream_timeout", "client_gone".
	Outcome string
	// Total is the request's total time in the gateway.
	Total time.Duration
	// Overhead is Total minus the time spent waiting on others (client,
	// backend, external services).
	Overhead time.Duration
	// Passport is the request's passport in its text form, e.g.
	// "+0.01ms=HEADERS_READ +0.03ms=VALIDATED ... +12.4ms=DONE".
	Passport string
}
