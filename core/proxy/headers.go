package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/gatehouse/gatehouse/core/failure"
)

// hopHeaders are removed in both directions (RFC 9110 section 7.6.1), plus
// any header the Connection field lists.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// IsHopByHop reports whether name (any case) is a hop-by-hop header.
func IsHopByHop(name string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(h, name) {
			return true
		}
	}
	return false
}

// stripHopByHop removes hop-by-hop fields from h and returns the Upgrade
// protocol if the message asked for one.
func stripHopByHop(h http.Header) (upgrade string) {
	if c := h["Connection"]; len(c) > 0 {
		for _, v := range c {
			for _, f := range strings.Split(v, ",") {
				f = textproto.TrimString(f)
				if f == "" {
					continue
				}
				if strings.EqualFold(f, "upgrade") {
					upgrade = h.Get("Upgrade")
				}
				if !strings.EqualFold(f, "te") {
					h.Del(f)
				}
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
	return upgrade
}

// setForwarded sets X-Forwarded-For/-Proto/-Host for the outbound request.
func setForwarded(h http.Header, r *Request) {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	proto := "http"
	if r.TLS {
		proto = "https"
	}
	if r.TrustForwarded {
		if prior := h["X-Forwarded-For"]; len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		if h.Get("X-Forwarded-Proto") != "" {
			proto = h.Get("X-Forwarded-Proto")
		}
		if v := h.Get("X-Forwarded-Host"); v != "" {
			h["X-Forwarded-Host"] = []string{v}
		} else {
			h["X-Forwarded-Host"] = []string{r.Host}
		}
	} else {
		h["X-Forwarded-Host"] = []string{r.Host}
		// The other forwarding fields an endpoint may read are the
		// client's claims too.
		delete(h, "Forwarded")
		delete(h, "X-Real-Ip")
	}
	h["X-Forwarded-For"] = []string{ip}
	h["X-Forwarded-Proto"] = []string{proto}
}

var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// RequestID returns the client's X-Request-Id when it is well formed
// (1–128 characters of letters, digits, '-', '_', '.', ':'), else a new one:
// a per-process random prefix and a counter.
func RequestID(h http.Header) string {
	if v := h["X-Request-Id"]; len(v) == 1 && validID(v[0]) {
		return v[0]
	}
	return idPrefix + "-" + strconv.FormatUint(idCounter.Add(1), 36)
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// bodyReadFailure classifies a failed read of the request body: a body
// that is not valid chunked encoding (a bad chunk size, a bare LF, a bad
// trailer: net/http's reader reports these as plain errors) is the
// client's malformed request, answered 400; anything else (the
// connection closed or reset mid-body) is the client going away.
func bodyReadFailure(err error) *failure.Error {
	msg := err.Error()
	for _, s := range malformedBody {
		if strings.Contains(msg, s) {
			return failure.Wrap(failure.Malformed, err, "malformed request body")
		}
	}
	return failure.Wrap(failure.ClientGone, err, "client went away during the request body")
}

// malformedBody are the parts of net/http's chunked-reader errors (see
// net/http/internal/chunked.go and transfer.go).
var malformedBody = []string{"chunk", "header line too long", "trailer", "malformed"}
