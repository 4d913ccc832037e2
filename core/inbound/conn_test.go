package inbound

import (
	"strings"
	"testing"
)

// TestScanHeadAcrossReads feeds request heads split at every byte position
// and checks that Content-Length is noticed in the head and ignored in the body.
func TestScanHeadAcrossReads(t *testing.T) {
	cases := []struct {
		name, data string
		want       bool
	}{
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", true},
		{"mixed case", "POST / HTTP/1.1\r\nHost: a\r\ncOnTeNt-LeNgTh: 5\r\n\r\nhello", true},
		{"te only, cl in body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n14\r\nx\r\nContent-Length: 1\r\n\r\n0\r\n\r\n", false},
		{"no cl", "GET / HTTP/1.1\r\nHost: a\r\nX-Content-Length-Ish: 1\r\n\r\n", false},
	}
	for _, c := range cases {
		for split := 1; split < len(c.data); split++ {
			for _, size := range []int{1, 3, 7, 4096} {
				tc := &trackedConn{scan: true}
				tc.headPhase.Store(true)
				data := c.data
				tc.scanHead([]byte(data[:split]))
				rest := data[split:]
				for len(rest) > 0 && tc.headPhase.Load() {
					n := min(size, len(rest))
					tc.scanHead([]byte(rest[:n]))
					rest = rest[n:]
				}
				if got := tc.sawCL.Load(); got != c.want {
					t.Fatalf("%s split %d size %d: sawCL = %v, want %v", c.name, split, size, got, c.want)
				}
				if tc.headPhase.Load() && strings.Contains(c.data, "\r\n\r\n") {
					t.Fatalf("%s split %d size %d: head end not seen", c.name, split, size)
				}
			}
		}
	}
}
