package inbound

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

type wantHead struct {
	method, uri string
	cl, te      bool
	folded      bool
}

// framerCases are request streams, each with the heads the framer must
// see in it (and whether it must end lost).
var framerCases = []struct {
	name  string
	data  string
	heads []wantHead
	lost  bool
}{
	{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", []wantHead{{method: "GET", uri: "/"}}, false},
	{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		[]wantHead{{method: "POST", uri: "/", cl: true, te: true}}, false},
	{"mixed case", "POST / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 5\r\n\r\nhello", []wantHead{{method: "POST", uri: "/", cl: true}}, false},
	{"no cl", "GET / HTTP/1.1\r\nHost: a\r\nX-Content-Length-Ish: 1\r\n\r\n", []wantHead{{method: "GET", uri: "/"}}, false},
	{"pipelined cl and te behind a get",
		"GET /a HTTP/1.1\r\nHost: a\r\n\r\nPOST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		[]wantHead{{method: "GET", uri: "/a"}, {method: "POST", uri: "/b", cl: true, te: true}}, false},
	{"a head in a content-length body is body",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 46\r\n\r\n\r\n\r\nGET /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nxxxxGET /c HTTP/1.1\r\nHost: a\r\n\r\n",
		[]wantHead{{method: "POST", uri: "/a", cl: true}, {method: "GET", uri: "/c"}}, false},
	{"content-length in a chunked body is body, and trailers",
		"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n16;ext=\"v\"\r\nx\r\nContent-Length: 1\r\n\r\n0\r\nX-Trailer: 1\r\n\r\n" +
			"PUT /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		[]wantHead{{method: "POST", uri: "/a", te: true}, {method: "PUT", uri: "/b", cl: true, te: true}}, false},
	{"bare LF heads",
		"GET /a HTTP/1.1\nHost: a\n\nPOST /b HTTP/1.1\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\r\n\r\n",
		[]wantHead{{method: "GET", uri: "/a"}, {method: "POST", uri: "/b", cl: true, te: true}}, false},
	{"a folded line is part of its field",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n content-length: 5\r\n\r\n", []wantHead{{method: "GET", uri: "/"}}, false},
	{"folded transfer-encoding",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", []wantHead{{method: "POST", uri: "/", te: true, folded: true}}, true},
	{"line ends before a request after a POST",
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n",
		[]wantHead{{method: "POST", uri: "/a", cl: true}, {method: "GET", uri: "/b"}}, false},
	{"http/1.0 with transfer-encoding",
		"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", []wantHead{{method: "POST", uri: "/", cl: true, te: true}}, false},
	{"chunk line with a bare LF", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
		[]wantHead{{method: "POST", uri: "/", te: true}}, true},
	{"http/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00", nil, true},
	{"unsupported transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
		[]wantHead{{method: "POST", uri: "/", te: true}}, true},
}

func (w wantHead) lineLen() int { return len(w.method) + 1 + len(w.uri) + 1 + len("HTTP/1.1") }

// TestFramerAcrossReads feeds each stream split at every byte position,
// then in pieces of several sizes, and checks the heads seen.
func TestFramerAcrossReads(t *testing.T) {
	for _, c := range framerCases {
		for split := 1; split < len(c.data); split++ {
			for _, size := range []int{1, 3, 7, 4096} {
				var f framer
				f.feed([]byte(c.data[:split]))
				for rest := c.data[split:]; len(rest) > 0; {
					n := min(size, len(rest))
					f.feed([]byte(rest[:n]))
					rest = rest[n:]
				}
				where := func() string { return c.name + ", split at " + itoa(split) + ", reads of " + itoa(size) }
				if f.lost != c.lost {
					t.Fatalf("%s: lost = %v, want %v", where(), f.lost, c.lost)
				}
				if len(f.heads) != len(c.heads) {
					t.Fatalf("%s: %d heads, want %d", where(), len(f.heads), len(c.heads))
				}
				for i, w := range c.heads {
					h, _ := f.claim()
					if h.lineLen != w.lineLen() || h.cl != w.cl || h.te != w.te || h.folded != w.folded {
						t.Fatalf("%s: head %d = %+v, want %+v", where(), i, h, w)
					}
					if h.start == 0 {
						t.Fatalf("%s: head %d has no start", where(), i)
					}
				}
				if _, ok := f.claim(); ok {
					t.Fatalf("%s: a head left over", where())
				}
			}
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

// checkAgainstNetHTTP reads data as net/http's server does, request by
// request with their bodies, and checks that the framer saw the same heads
// for as long as net/http accepted them: the same request lines, with the
// framing fields net/http acted on.
func checkAgainstNetHTTP(t *testing.T, data []byte) {
	var f framer
	f.feed(data)
	br := bufio.NewReaderSize(strings.NewReader(string(data)), 4096)
	lastPOST := false
	for i := 0; ; i++ {
		if lastPOST {
			// net/http's tolerance for old clients: line ends after a POST.
			peek, _ := br.Peek(4)
			n := 0
			for n < len(peek) && (peek[n] == '\r' || peek[n] == '\n') {
				n++
			}
			br.Discard(n)
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if req.Body != nil {
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
		}
		lastPOST = req.Method == "POST"
		h, ok := f.claim()
		if !ok {
			if !f.lost {
				t.Fatalf("request %d (%s %s) parsed by net/http, not seen by the framer, which is not lost", i, req.Method, req.RequestURI)
			}
			return
		}
		if want := len(req.Method) + 1 + len(req.RequestURI) + 1 + len(req.Proto); h.lineLen != want {
			t.Fatalf("request %d (%s %s): framer's request line is %d bytes, net/http's %d", i, req.Method, req.RequestURI, h.lineLen, want)
		}
		if chunked := len(req.TransferEncoding) > 0; chunked && !h.te {
			t.Fatalf("request %d: net/http framed it chunked, the framer saw no Transfer-Encoding", i)
		}
		if len(req.TransferEncoding) == 0 && req.ProtoAtLeast(1, 1) && h.te {
			t.Fatalf("request %d: the framer saw Transfer-Encoding, net/http did not frame it chunked", i)
		}
		if len(req.TransferEncoding) == 0 && (req.Header.Get("Content-Length") != "") != h.cl {
			t.Fatalf("request %d: Content-Length: net/http %q, framer %v", i, req.Header.Get("Content-Length"), h.cl)
		}
		if badFraming(h, req.ProtoMinor) != "" {
			return // refused, and the connection closed
		}
	}
}

func TestFramerAgreesWithNetHTTP(t *testing.T) {
	for _, c := range framerCases {
		checkAgainstNetHTTP(t, []byte(c.data))
	}
}

// FuzzFramerAgreesWithNetHTTP looks for a stream the framer and net/http
// frame differently.
func FuzzFramerAgreesWithNetHTTP(f *testing.F) {
	for _, c := range framerCases {
		f.Add([]byte(c.data))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkAgainstNetHTTP(t, data) })
}

// BenchmarkFramerHead is the framer's cost for a typical request head.
func BenchmarkFramerHead(b *testing.B) {
	head := []byte("GET /api/v1/orders?limit=10 HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n" +
		"Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\nAuthorization: Bearer abcdefghijklmnop\r\nCookie: session=0123456789abcdef\r\n\r\n")
	var f framer
	b.SetBytes(int64(len(head)))
	b.ReportAllocs()
	for b.Loop() {
		f.feed(head)
		f.claim()
	}
}
