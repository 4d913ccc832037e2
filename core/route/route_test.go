package route

import "testing"

func TestMatch(t *testing.T) {
	tb := NewTable([]Spec[string]{
		{Name: "users-get", Host: "api.example.com", PathPrefix: "/users", Methods: []string{"GET"}, Target: "users-ro"},
		{Name: "users", Host: "api.example.com", PathPrefix: "/users/", Target: "users"},
		{Name: "wild", Host: "*.example.org", PathPrefix: "/", Target: "wild"},
		{Name: "default", Target: "default"},
	})
	cases := []struct{ method, host, path, want string }{
		{"GET", "api.example.com", "/users", "users-get"},
		{"GET", "API.example.com:8080", "/users/42", "users-get"},
		{"POST", "api.example.com", "/users/42", "users"},
		{"POST", "api.example.com", "/usersx", "default"}, // segment boundary
		{"GET", "a.example.org", "/x", "wild"},
		{"GET", "example.org", "/x", "default"}, // wildcard needs a subdomain
		{"GET", "[::1]:80", "/", "default"},
	}
	for _, c := range cases {
		r := tb.Match(c.method, c.host, c.path)
		if r == nil || r.Name != c.want {
			t.Errorf("Match(%s %s %s) = %v, want %s", c.method, c.host, c.path, r, c.want)
		}
	}
	if NewTable[string](nil).Match("GET", "h", "/") != nil {
		t.Fatal("empty table matched")
	}
}
