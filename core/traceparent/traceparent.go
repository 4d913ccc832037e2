// Package traceparent reads and writes the trace context a request carries:
// W3C Trace Context (the traceparent header) and, accepted on the way in,
// Zipkin's B3 (the single b3 header or the X-B3-* headers). It decides
// whether a request is sampled and names the span the gateway opens for it,
// so that the proxy can tell the endpoint its parent before any span exists;
// the spans themselves are built after the request, from the passport (see
// package trace). It imports nothing of the gateway.
package traceparent

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
	"unsafe"
)

// TraceID and SpanID are the W3C identifiers; all-zero is invalid.
type (
	TraceID [16]byte
	SpanID  [8]byte
)

// IsValid reports whether id is not all zeros.
func (id TraceID) IsValid() bool { return id != TraceID{} }

// IsValid reports whether id is not all zeros.
func (id SpanID) IsValid() bool { return id != SpanID{} }

// String returns id in lower-case hex.
func (id TraceID) String() string { return hex.EncodeToString(id[:]) }

// String returns id in lower-case hex.
func (id SpanID) String() string { return hex.EncodeToString(id[:]) }

// Format says which header the incoming context came in.
type Format uint8

// The formats.
const (
	None    Format = iota // no incoming context: the gateway starts the trace
	W3C                   // traceparent
	B3                    // b3 (single header)
	B3Multi               // X-B3-TraceId, X-B3-SpanId, X-B3-Sampled
)

// Context is one request's trace context. The zero value means tracing is
// off for the request: nothing is injected and no span is built.
type Context struct {
	Trace TraceID
	// Span is the id of the gateway's request span.
	Span SpanID
	// Parent is the caller's span, when the request came with a context.
	Parent SpanID
	// Sampled is the decision for the whole trace.
	Sampled bool
	// From is the format the incoming context was read from.
	From Format
}

// On reports whether c was started (tracing is on for the request).
func (c *Context) On() bool { return c.Span.IsValid() }

// Sampler decides which new traces are sampled.
type Sampler struct {
	// threshold: a trace is sampled when the low 63 bits of its id are below it.
	threshold uint64
}

// NewSampler returns a sampler that keeps ratio (0 to 1) of the traces the
// gateway starts, decided from the trace id so that every gateway keeps the
// same ones.
func NewSampler(ratio float64) Sampler {
	switch {
	case ratio >= 1:
		return Sampler{threshold: 1 << 63}
	case ratio <= 0:
		return Sampler{}
	}
	return Sampler{threshold: uint64(ratio * (1 << 63))}
}

func (s Sampler) sample(id TraceID) bool {
	var x uint64
	for _, b := range id[8:] {
		x = x<<8 | uint64(b)
	}
	return x&(1<<63-1) < s.threshold
}

// Start fills c for a request with headers h: it continues the caller's
// trace when h carries a valid context (and follows the caller's sampling
// decision), otherwise it starts a new trace and samples it with s. It
// allocates nothing.
func (s Sampler) Start(c *Context, h http.Header) {
	*c = Context{}
	switch {
	case readW3C(c, h):
		c.From = W3C
	case readB3(c, h):
		c.From = B3
	case readB3Multi(c, h):
		c.From = B3Multi
	default:
		*c = Context{}
		fillRandom(c.Trace[:])
		c.Sampled = s.sample(c.Trace)
	}
	fillRandom(c.Span[:])
}

func fillRandom(b []byte) {
	for {
		for i := 0; i < len(b); i += 8 {
			x := rand.Uint64()
			for j := i; j < len(b) && j < i+8; j++ {
				b[j] = byte(x)
				x >>= 8
			}
		}
		for _, c := range b {
			if c != 0 {
				return
			}
		}
	}
}

// single returns the header's only value, or "".
func single(h http.Header, key string) string {
	if v := h[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// readW3C parses "00-<32 hex>-<16 hex>-<2 hex>" (later versions are read by
// their first four fields, as the specification asks).
func readW3C(c *Context, h http.Header) bool {
	v := single(h, "Traceparent")
	if len(v) < 55 || (len(v) > 55 && (v[:2] == "00" || v[55] != '-')) {
		return false
	}
	if v[2] != '-' || v[35] != '-' || v[52] != '-' || v[:2] == "ff" || !lowerHex(v[:2]) {
		return false
	}
	if !decodeHex(c.Trace[:], v[3:35]) || !decodeHex(c.Parent[:], v[36:52]) || !lowerHex(v[53:55]) {
		return false
	}
	if !c.Trace.IsValid() || !c.Parent.IsValid() {
		return false
	}
	var flags [1]byte
	decodeHex(flags[:], v[53:55])
	c.Sampled = flags[0]&1 == 1
	return true
}

// readB3 parses "traceid-spanid[-sampled[-parentspanid]]" or a lone "0"/"1"/"d"
// (a sampling decision without ids, which starts no trace here).
func readB3(c *Context, h http.Header) bool {
	v := single(h, "B3")
	tid, rest, ok := strings.Cut(v, "-")
	if !ok {
		return false
	}
	sid, rest, _ := strings.Cut(rest, "-")
	sampled, _, _ := strings.Cut(rest, "-")
	if !b3IDs(c, tid, sid) {
		return false
	}
	c.Sampled = sampled == "1" || sampled == "d"
	if sampled == "" {
		c.Sampled = true // no decision: the caller defers to us; keep what it sent
	}
	return true
}

func readB3Multi(c *Context, h http.Header) bool {
	if !b3IDs(c, single(h, "X-B3-Traceid"), single(h, "X-B3-Spanid")) {
		return false
	}
	s := single(h, "X-B3-Sampled")
	c.Sampled = s == "1" || s == "true" || s == "" || single(h, "X-B3-Flags") == "1"
	return true
}

// b3IDs reads a 16- or 32-hex trace id (a short one is left-padded) and a
// 16-hex span id.
func b3IDs(c *Context, tid, sid string) bool {
	c.Trace = TraceID{}
	switch len(tid) {
	case 32:
		if !decodeHex(c.Trace[:], tid) {
			return false
		}
	case 16:
		if !decodeHex(c.Trace[8:], tid) {
			return false
		}
	default:
		return false
	}
	if len(sid) != 16 || !decodeHex(c.Parent[:], sid) {
		return false
	}
	return c.Trace.IsValid() && c.Parent.IsValid()
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// decodeHex decodes lower-case hex s into dst (len(s) == 2*len(dst)).
func decodeHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) || !lowerHex(s) {
		return false
	}
	for i := range dst {
		dst[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return true
}

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}

const hexDigits = "0123456789abcdef"

// AppendTraceparent appends "00-<trace>-<span>-<flags>" naming the
// gateway's span as the parent of what the endpoint does.
func (c *Context) AppendTraceparent(dst []byte) []byte {
	dst = append(dst, "00-"...)
	dst = appendHex(dst, c.Trace[:])
	dst = append(dst, '-')
	dst = appendHex(dst, c.Span[:])
	if c.Sampled {
		return append(dst, "-01"...)
	}
	return append(dst, "-00"...)
}

// traceparentValue is an outbound traceparent header's value.
type traceparentValue struct {
	s [1]string
	b [55]byte
}

func appendHex(dst, b []byte) []byte {
	for _, x := range b {
		dst = append(dst, hexDigits[x>>4], hexDigits[x&15])
	}
	return dst
}

// Inject writes c into the outbound headers h: traceparent always (replacing
// the caller's, whose parent is now the gateway's span), and the B3 form the
// caller used, so an endpoint that reads only B3 stays in the trace. The
// caller's tracestate passes through untouched.
func (c *Context) Inject(h http.Header) {
	// One allocation holds the header's value slice and its bytes; the
	// bytes are written once, before the string is made, and never again.
	v := new(traceparentValue)
	v.s[0] = unsafe.String(&v.b[0], len(c.AppendTraceparent(v.b[:0])))
	h["Traceparent"] = v.s[:]
	var buf [55]byte
	switch c.From {
	case B3:
		b := appendHex(buf[:0], c.Trace[:])
		b = append(b, '-')
		b = appendHex(b, c.Span[:])
		if c.Sampled {
			b = append(b, "-1"...)
		} else {
			b = append(b, "-0"...)
		}
		h["B3"] = []string{string(b)}
	case B3Multi:
		h["X-B3-Traceid"] = []string{string(appendHex(buf[:0], c.Trace[:]))}
		h["X-B3-Spanid"] = []string{string(appendHex(buf[:0], c.Span[:]))}
		h["X-B3-Parentspanid"] = []string{string(appendHex(buf[:0], c.Parent[:]))}
		if c.Sampled {
			h["X-B3-Sampled"] = []string{"1"}
		} else {
			h["X-B3-Sampled"] = []string{"0"}
		}
		delete(h, "X-B3-Flags")
	}
}
