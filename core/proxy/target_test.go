package proxy

import "testing"

func TestNormalPath(t *testing.T) {
	for _, c := range []struct{ in, want, why string }{
		{"/", "/", ""},
		{"/users/42", "/users/42", ""},
		{"/a/.hidden/...", "/a/.hidden/...", ""},
		{"/%61dmin/users", "/admin/users", ""},
		{"/%61%64%6d%69%6e/users", "/admin/users", ""},
		{"/%7euser/%2e%2e/admin", "/admin", ""},
		{"//admin/x", "/admin/x", ""},
		{"/./admin/x", "/admin/x", ""},
		{"/public/../admin/x", "/admin/x", ""},
		{"/api/../../admin", "/admin", ""},
		{"/a/b/..", "/a/", ""},
		{"/a/b/.", "/a/b/", ""},
		{"/a//b///c/", "/a/b/c/", ""},
		{"/q%20r/%e2%82%ac", "/q%20r/%E2%82%AC", ""},
		{"/caf\xc3\xa9", "/caf%C3%A9", ""},
		{"/a%2Fb", "", "the path has an encoded slash or backslash (listeners[].keep_escaped_slashes keeps them)"},
		{"/a%5cb", "", "the path has an encoded slash or backslash (listeners[].keep_escaped_slashes keeps them)"},
		{"/a%2", "", "the path has a '%' that is not an escape"},
		{"/a%zz", "", "the path has a '%' that is not an escape"},
		{"/a b", "", "the path has a space, a control byte or a '#'"},
		{"/a#b", "", "the path has a space, a control byte or a '#'"},
		{"a/b", "", "the path does not begin with '/'"},
		{"", "", "the path does not begin with '/'"},
	} {
		got, why := normalPath(c.in, false)
		if got != c.want || why != c.why {
			t.Errorf("normalPath(%q) = %q, %q; want %q, %q", c.in, got, why, c.want, c.why)
		}
	}
	// keep_escaped_slashes: kept, upper-cased, part of their segment.
	for in, want := range map[string]string{"/repos/a%2fb/../x": "/repos/x", "/repos/a%2Fb%5c/c": "/repos/a%2Fb%5C/c", "/%61%2F": "/a%2F"} {
		if got, why := normalPath(in, true); got != want || why != "" {
			t.Errorf("normalPath(%q, keep) = %q, %q; want %q", in, got, why, want)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	for _, c := range []struct{ method, host, path, query string }{
		{"GET /admin/x", "h", "/m", ""},
		{"GET<>", "h", "/q", ""},
		{"", "h", "/q", ""},
		{"GET", "a b", "/q", ""},
		{"GET", "evil.com/x?", "/q", ""},
		{"GET", "h", "/q", "x=1 HTTP/1.1"},
		{"GET", "h", "/q", "x=\x01"},
	} {
		if _, why := checkTarget(c.method, c.host, c.path, c.query, false); why == "" {
			t.Errorf("checkTarget(%q, %q, %q, %q) passed", c.method, c.host, c.path, c.query)
		}
	}
	if p, why := checkTarget("OPTIONS", "h", "*", "", false); p != "*" || why != "" {
		t.Errorf("OPTIONS * = %q, %q", p, why)
	}
	if p, why := checkTarget("GET", "[::1]:8080", "/%61", "a=b&c=%20", false); p != "/a" || why != "" {
		t.Errorf("= %q, %q", p, why)
	}
}

func BenchmarkNormalPathClean(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		normalPath("/api/v1/orders/12345/items", false)
	}
}
