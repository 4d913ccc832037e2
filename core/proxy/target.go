package proxy

import (
	"strings"

	"golang.org/x/net/http/httpguts"
)

// checkTarget checks the request's method, host and query, and returns
// its path in the form routes match and endpoints receive (normalPath), or
// why it is refused. HTTP/1 requests reach here parsed by net/http, which
// refuses most malformed heads; HTTP/2 pseudo-headers are only checked for
// CR, LF and NUL, and the gateway writes them into an HTTP/1 request line
// and Host field of its own: a method or query with a space in it would
// end up as another request line there.
func checkTarget(method, host, path, rawQuery string, keepEscapedSlashes bool) (string, string) {
	if method == "" || !httpguts.ValidHeaderFieldName(method) {
		return "", "the method is not a token"
	}
	if !httpguts.ValidHostHeader(host) {
		return "", "the host has bytes a host cannot have"
	}
	for i := 0; i < len(rawQuery); i++ {
		if c := rawQuery[i]; c <= ' ' || c == 0x7f || c == '#' {
			return "", "the query has a space, a control byte or a '#'"
		}
	}
	if path == "*" {
		return path, ""
	}
	return normalPath(path, keepEscapedSlashes)
}

// normalPath returns p with percent-encoded unreserved characters decoded
// (RFC 3986 6.2.2.2: %61 is a), other escapes in upper case, dot-segments
// removed (5.2.4: /a/../b is /b) and runs of slashes merged (//a is /a),
// so that a route sees the path the endpoint will act on: otherwise
// /%61dmin, /./admin, //admin or /public/../admin would miss a route (and
// its hooks) for /admin that the endpoint then serves. It refuses what no
// form makes unambiguous: an encoded slash or backslash (an endpoint that
// decodes it sees a separator the routes did not), a bad escape, a space
// or control byte. With keepEscapedSlashes (the listener's
// keep_escaped_slashes), an encoded slash or backslash is kept as it is,
// part of its segment. The common path, with none of these, is returned as
// it is, without allocating.
func normalPath(p string, keepEscapedSlashes bool) (string, string) {
	if p == "" || p[0] != '/' {
		return "", "the path does not begin with '/'"
	}
	clean := true
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c <= ' ' || c == 0x7f || c == '#':
			return "", "the path has a space, a control byte or a '#'"
		case c == '%' || c >= 0x80:
			clean = false
		case c == '/' && i+1 < len(p) && (p[i+1] == '/' || p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/' || p[i+2] == '.' && (i+3 == len(p) || p[i+3] == '/'))):
			clean = false // "//", "/." or "/.." segment
		}
	}
	if clean {
		return p, ""
	}
	// Decode what is unreserved; keep (upper-cased) what is not.
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
				return "", "the path has a '%' that is not an escape"
			}
			d := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
			i += 2
			switch {
			case (d == '/' || d == '\\') && !keepEscapedSlashes:
				return "", "the path has an encoded slash or backslash (listeners[].keep_escaped_slashes keeps them)"
			case unreserved(d):
				b.WriteByte(d)
			default:
				b.WriteByte('%')
				b.WriteByte(upperHex[d>>4])
				b.WriteByte(upperHex[d&15])
			}
		case c >= 0x80:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&15])
		default:
			b.WriteByte(c)
		}
	}
	return removeDots(b.String()), ""
}

// removeDots removes the dot-segments of p (which begins with '/') and
// empty segments, keeping a trailing slash.
func removeDots(p string) string {
	segs := strings.Split(p[1:], "/")
	out := segs[:0]
	for _, s := range segs {
		switch s {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, s)
		}
	}
	last := segs[len(segs)-1]
	trailing := last == "" || last == "." || last == ".."
	r := "/" + strings.Join(out, "/")
	if trailing && len(out) > 0 {
		r += "/"
	}
	return r
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// unreserved reports whether c is an RFC 3986 unreserved character.
func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
