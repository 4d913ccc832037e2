// Package route matches requests to routes: host (exact or "*.suffix"),
// path prefix at a segment boundary and method. The first route in
// configuration order that matches wins.
package route

import "strings"

// Rule is one compiled route. Target is opaque to this package (the engine
// stores its per-route state there).
type Rule[T any] struct {
	Name     string
	host     string // lower case; "" = any
	wildcard bool   // host is ".suffix" and matches any subdomain
	prefix   string // "/" matches everything
	methods  []string
	Target   T
}

// Table is an ordered list of rules. It is immutable once built, so it can
// be swapped atomically on reload and read without locks.
type Table[T any] struct{ rules []Rule[T] }

// Spec describes one rule to compile.
type Spec[T any] struct {
	Name       string
	Host       string
	PathPrefix string
	Methods    []string
	Target     T
}

// NewTable compiles specs in order.
func NewTable[T any](specs []Spec[T]) *Table[T] {
	t := &Table[T]{rules: make([]Rule[T], 0, len(specs))}
	for _, s := range specs {
		r := Rule[T]{Name: s.Name, prefix: s.PathPrefix, methods: s.Methods, Target: s.Target}
		if r.prefix == "" {
			r.prefix = "/"
		}
		if len(r.prefix) > 1 {
			r.prefix = strings.TrimSuffix(r.prefix, "/")
		}
		h := strings.ToLower(s.Host)
		if strings.HasPrefix(h, "*.") {
			r.wildcard, h = true, h[1:]
		}
		r.host = h
		t.rules = append(t.rules, r)
	}
	return t
}

// Match returns the first rule matching the request, or nil. host may carry
// a port; it is compared without it, case-insensitively.
func (t *Table[T]) Match(method, host, path string) *Rule[T] {
	host = stripPort(host)
	for i := range t.rules {
		r := &t.rules[i]
		if r.host != "" && !hostMatches(r, host) {
			continue
		}
		if !prefixMatches(r.prefix, path) {
			continue
		}
		if len(r.methods) > 0 && !contains(r.methods, method) {
			continue
		}
		return r
	}
	return nil
}

// Prefix returns the rule's normalised path prefix.
func (r *Rule[T]) Prefix() string { return r.prefix }

func hostMatches[T any](r *Rule[T], host string) bool {
	if r.wildcard {
		return len(host) > len(r.host) && strings.EqualFold(host[len(host)-len(r.host):], r.host)
	}
	return strings.EqualFold(host, r.host)
}

func prefixMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func stripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}
