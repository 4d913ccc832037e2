package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// listener is the smallest valid start of a file: three lines, so a case's
// own keys start on line 4.
const listener = `listeners:
  - name: public
    address: 127.0.0.1:8080
`

// parseErrorTests are bad configurations with their exact errors; FuzzParse
// starts from them too.
var parseErrorTests = []struct {
	name string
	src  string
	want []string
}{
	{
		name: "unknown top-level key with suggestion",
		src:  listener + "loging: {level: info}\n",
		want: []string{`gatehouse.yaml:4:1: unknown key "loging"; did you mean "logging"?`},
	},
	{
		name: "unknown nested key lists allowed keys",
		src: listener + `    port: 80
`,
		want: []string{`gatehouse.yaml:4:5: listeners[0]: unknown key "port"; allowed keys: name, address, tls, h2c, trust_forwarded, keep_escaped_slashes`},
	},
	{
		name: "unknown key in limits with suggestion",
		src: listener + `limits:
  request:
    dedline: 3s
`,
		want: []string{`gatehouse.yaml:6:5: limits.request: unknown key "dedline"; did you mean "deadline"?`},
	},
	{
		name: "list where a mapping is expected",
		src:  listener + "limits: [server]\n",
		want: []string{`gatehouse.yaml:4:1: limits: expected a mapping, got a list`},
	},
	{
		name: "string for an int",
		src: listener + `limits:
  server:
    max_requests: abc
`,
		want: []string{`gatehouse.yaml:6:5: limits.server.max_requests: expected an integer, got "abc"`},
	},
	{
		name: "string where a list is expected",
		src: listener + `services:
  - name: users
    endpoints: 10.0.0.1:80
`,
		want: []string{`gatehouse.yaml:6:5: services[0].endpoints: expected a list, got "10.0.0.1:80"`},
	},
	{
		name: "mapping for a string",
		src: listener + `routes:
  - name: {a: b}
    service: users
services: [{name: users, endpoints: [10.0.0.1:80]}]
`,
		want: []string{`gatehouse.yaml:5:5: routes[0].name: expected a string, got a mapping`},
	},
	{
		name: "not a boolean",
		src: listener + `    h2c: yes
`,
		want: []string{`gatehouse.yaml:4:5: listeners[0].h2c: expected true or false, got "yes"`},
	},
	{
		name: "duplicate key",
		src: listener + `limits:
  request:
    deadline: 3s
    max_body_bytes: 1MiB
    deadline: 4s
`,
		want: []string{`gatehouse.yaml:8:5: limits.request: duplicate key "deadline" (first at line 6)`},
	},
	{
		name: "duplicate top-level key",
		src:  listener + "admin: {address: 127.0.0.1:9901}\nadmin: {address: 127.0.0.1:9902}\n",
		want: []string{`gatehouse.yaml:5:1: duplicate key "admin" (first at line 4)`},
	},
	{
		name: "bound present but empty",
		src: listener + `limits:
  request:
    deadline:
`,
		want: []string{`gatehouse.yaml:6:5: limits.request.deadline: missing value`},
	},
	{
		name: "bound null",
		src: listener + `limits:
  upstream:
    connect_timeout: null
`,
		want: []string{`gatehouse.yaml:6:5: limits.upstream.connect_timeout: missing value`},
	},
	{
		name: "section present but empty",
		src:  listener + "admin:\n",
		want: []string{`gatehouse.yaml:4:1: admin: missing value`},
	},
	{
		name: "zero duration",
		src: listener + `limits:
  request:
    deadline: 0s
`,
		want: []string{`gatehouse.yaml:6:5: limits.request.deadline: must be a positive duration, got "0s"`},
	},
	{
		name: "zero duration on a route",
		src: listener + `services: [{name: users, endpoints: [10.0.0.1:80]}]
routes:
  - name: a
    service: users
  - name: b
    service: users
    limits:
      request:
        deadline: 0s
`,
		want: []string{`gatehouse.yaml:12:9: routes[1].limits.request.deadline: must be a positive duration, got "0s"`},
	},
	{
		name: "duration without unit",
		src: listener + `limits:
  server:
    idle_timeout: 30
`,
		want: []string{`gatehouse.yaml:6:5: limits.server.idle_timeout: invalid duration "30": use a number with a unit (ns, us, ms, s, m, h), e.g. "250ms"`},
	},
	{
		name: "negative size",
		src: listener + `limits:
  server:
    max_header_bytes: -1KiB
`,
		want: []string{`gatehouse.yaml:6:5: limits.server.max_header_bytes: must be a positive size, got "-1KiB"`},
	},
	{
		name: "negative integer",
		src: listener + `limits:
  upstream:
    max_conns_per_endpoint: -5
`,
		want: []string{`gatehouse.yaml:6:5: limits.upstream.max_conns_per_endpoint: must be a positive integer, got "-5"`},
	},
	{
		name: "unknown size unit",
		src: listener + `limits:
  request:
    max_body_bytes: 10XB
`,
		want: []string{`gatehouse.yaml:6:5: limits.request.max_body_bytes: invalid size "10XB": unknown unit "XB" (use B, KB, MB, GB, KiB, MiB, GiB)`},
	},
	{
		name: "size overflow",
		src: listener + `limits:
  upstream:
    max_response_bytes: 9000000000GiB
`,
		want: []string{`gatehouse.yaml:6:5: limits.upstream.max_response_bytes: invalid size "9000000000GiB": out of range`},
	},
	{
		name: "integer overflow",
		src: listener + `limits:
  server:
    max_connections: 99999999999999999999
`,
		want: []string{`gatehouse.yaml:6:5: limits.server.max_connections: integer "99999999999999999999" out of range`},
	},
	{
		name: "rate without per second",
		src: listener + `limits:
  request:
    body_min_rate: 1KiB
`,
		want: []string{`gatehouse.yaml:6:5: limits.request.body_min_rate: invalid rate "1KiB": want a size per second, e.g. "1KiB/s"`},
	},
	{
		name: "zero rate",
		src: listener + `limits:
  request:
    client_min_rate: 0/s
`,
		want: []string{`gatehouse.yaml:6:5: limits.request.client_min_rate: must be a positive rate, got "0/s"`},
	},
	{
		name: "route to an unknown service",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80]
  - name: orders
    endpoints: [10.0.0.2:80]
routes:
  - name: r
    service: billing
`,
		want: []string{`gatehouse.yaml:11:5: routes[0].service: unknown service "billing" (known: users, orders)`},
	},
	{
		name: "route without service",
		src: listener + `routes:
  - name: r
`,
		want: []string{`gatehouse.yaml:5:5: routes[0].service: required`},
	},
	{
		name: "duplicate service name",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80]
  - name: users
    endpoints: [10.0.0.2:80]
`,
		want: []string{`gatehouse.yaml:7:5: services[1].name: duplicate service name "users" (also services[0].name, line 5)`},
	},
	{
		name: "duplicate route name",
		src: listener + `services: [{name: users, endpoints: [10.0.0.1:80]}]
routes:
  - name: api
    service: users
  - name: api
    service: users
`,
		want: []string{`gatehouse.yaml:8:5: routes[1].name: duplicate route name "api" (also routes[0].name, line 6)`},
	},
	{
		name: "duplicate listener address",
		src: listener + `  - name: private
    address: 127.0.0.1:08080
`,
		want: []string{`gatehouse.yaml:5:5: listeners[1].address: duplicate listener address "127.0.0.1:08080" (also listeners[0].address, line 3)`},
	},
	{
		// Regression: check said ok and run failed binding the admin listener.
		name: "admin address equal to a listener's",
		src:  listener + "admin:\n  address: 127.0.0.1:8080\n",
		want: []string{`gatehouse.yaml:5:3: admin.address: "127.0.0.1:8080" is taken by a listener (also listeners[0].address, line 3): the admin listener needs an address of its own`},
	},
	{
		name: "admin on a wildcard over a listener's port",
		src:  listener + "admin:\n  address: \":8080\"\n  token: t\n",
		want: []string{`gatehouse.yaml:5:3: admin.address: ":8080" is taken by a listener (also listeners[0].address, line 3): the admin listener needs an address of its own`},
	},
	{
		name: "listener on a specific host under another's wildcard",
		src: `listeners:
  - name: public
    address: 0.0.0.0:8080
  - name: private
    address: 127.0.0.1:8080
  - name: other
    address: "[::1]:8080"
`,
		want: []string{`gatehouse.yaml:5:5: listeners[1].address: listener address "127.0.0.1:8080" overlaps "0.0.0.0:8080" (also listeners[0].address, line 3): both would bind port 8080`},
	},
	{
		name: "bad listener address",
		src: `listeners:
  - name: public
    address: localhost
  - name: private
    address: 127.0.0.1:70000
`,
		want: []string{
			`gatehouse.yaml:3:5: listeners[0].address: must be host:port with a port from 1 to 65535, got "localhost"`,
			`gatehouse.yaml:5:5: listeners[1].address: port must be from 1 to 65535, got "127.0.0.1:70000"`,
		},
	},
	{
		name: "missing listener",
		src:  "admin: {address: 127.0.0.1:9901}\n",
		want: []string{`gatehouse.yaml: listeners: at least one listener is required`},
	},
	{
		name: "listener without name",
		src: `listeners:
  - address: 127.0.0.1:8080
`,
		want: []string{`gatehouse.yaml:2:5: listeners[0].name: required`},
	},
	{
		name: "TLS without key",
		src: listener + `    tls:
      cert: testdata/tls/cert.pem
`,
		want: []string{`gatehouse.yaml:4:5: listeners[0].tls.key: required`},
	},
	{
		name: "TLS with a missing file",
		src: listener + `    tls:
      cert: testdata/tls/missing.pem
      key: testdata/tls
`,
		want: []string{
			`gatehouse.yaml:5:7: listeners[0].tls.cert: cannot read "testdata/tls/missing.pem": no such file or directory`,
			`gatehouse.yaml:6:7: listeners[0].tls.key: "testdata/tls" is not a regular file`,
		},
	},
	{
		name: "non-loopback admin without token",
		src:  listener + "admin:\n  address: 0.0.0.0:9901\n",
		want: []string{`gatehouse.yaml:4:1: admin.token: required when admin.address "0.0.0.0:9901" is not a loopback address`},
	},
	{
		name: "logging level and format",
		src:  listener + "logging: {level: verbose, format: text}\n",
		want: []string{
			`gatehouse.yaml:4:11: logging.level: must be one of debug, info, warn, error; got "verbose"`,
			`gatehouse.yaml:4:27: logging.format: must be json or console; got "text"`,
		},
	},
	{
		name: "empty balancer",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80]
    balancer: ""
`,
		want: []string{`gatehouse.yaml:7:5: services[0].balancer: must not be empty; leave the key out for the default "p2c_ewma"`},
	},
	{
		name: "unknown protocol",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80]
    protocol: h3
`,
		want: []string{`gatehouse.yaml:7:5: services[0].protocol: must be one of http1, h2c, h2; got "h3"`},
	},
	{
		name: "tls with h2",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80]
    protocol: h2
    tls: true
`,
		want: []string{`gatehouse.yaml:8:5: services[0].tls: only valid with protocol http1 (h2 always uses TLS, h2c never does); got protocol "h2"`},
	},
	{
		name: "service without endpoints",
		src: listener + `services:
  - name: users
`,
		want: []string{`gatehouse.yaml:5:5: services[0].endpoints: at least one endpoint is required`},
	},
	{
		name: "bad and duplicate endpoints",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80, ":80", 10.0.0.1:080]
`,
		want: []string{
			`gatehouse.yaml:6:30: services[0].endpoints[1]: must be host:port with a host, got ":80"`,
			`gatehouse.yaml:6:37: services[0].endpoints[2]: duplicate endpoint "10.0.0.1:080" (also services[0].endpoints[0], line 6)`,
		},
	},
	{
		name: "idle above max connections on a service",
		src: listener + `services:
  - name: users
    endpoints: [10.0.0.1:80]
    limits: {upstream: {max_conns_per_endpoint: 16}}
`,
		want: []string{`gatehouse.yaml:7:14: services[0].limits.upstream.max_idle_per_endpoint: must not exceed max_conns_per_endpoint (128 > 16)`},
	},
	{
		name: "route match",
		src: listener + `services: [{name: users, endpoints: [10.0.0.1:80]}]
routes:
  - name: r
    service: users
    match:
      host: api.example.com:443
      path_prefix: api
      methods: [GET, get, GET]
`,
		want: []string{
			`gatehouse.yaml:9:7: routes[0].match.host: must be a host name without scheme or port, optionally starting with "*."; got "api.example.com:443"`,
			`gatehouse.yaml:10:7: routes[0].match.path_prefix: must start with "/", got "api"`,
			`gatehouse.yaml:11:22: routes[0].match.methods[1]: must be an upper-case method token such as "GET", got "get"`,
			`gatehouse.yaml:11:27: routes[0].match.methods[2]: duplicate method "GET" (also routes[0].match.methods[0], line 11)`,
		},
	},
	{
		name: "unknown key holding an anchor",
		src: listener + `base: &base {deadline: 3s}
`,
		want: []string{`gatehouse.yaml:4:1: unknown key "base"; allowed keys: listeners, admin, observe, logging, limits, services, routes, scripts, plugins, hooks, redis`},
	},
	{
		name: "merge key",
		src: listener + `limits:
  request:
    <<: {deadline: 3s}
`,
		want: []string{`gatehouse.yaml:6:5: limits.request: merge keys (<<) are not supported; write the keys out`},
	},
	{
		name: "unsupported tag",
		src: listener + `    trust_forwarded: !custom true
admin: {token: !!binary c2VjcmV0}
`,
		want: []string{
			`gatehouse.yaml:4:5: listeners[0].trust_forwarded: unsupported tag "!custom"`,
			`gatehouse.yaml:5:9: admin.token: unsupported tag "!!binary"`,
		},
	},
	{
		name: "key that is not a string",
		src:  listener + "? [admin]\n: {}\n",
		want: []string{`gatehouse.yaml:4:3: keys must be strings, got a list`},
	},
	{
		name: "two documents",
		src:  listener + "---\n" + listener,
		want: []string{`gatehouse.yaml:4:1: a configuration file holds exactly one YAML document; found another (remove the "---")`},
	},
	{
		name: "top level is a list",
		src:  "- listeners\n",
		want: []string{`gatehouse.yaml:1:1: the top level must be a mapping of keys (listeners, admin, observe, logging, limits, services, routes, scripts, plugins, hooks, redis), got a list`},
	},
	{
		name: "YAML syntax error",
		src:  listener + "limits: {server\n",
		want: []string{`gatehouse.yaml:4: invalid YAML: did not find expected ',' or '}'`},
	},
}

func TestParseErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("gatehouse.yaml", []byte(tt.src))
			if err == nil {
				t.Fatalf("Parse succeeded:\n%s", dump(t, c))
			}
			if c != nil {
				t.Errorf("Parse returned a config with an error")
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Parse error:\n%s\nwant:\n%s", got, want)
			}
			var es Errors
			if !errors.As(err, &es) || len(es) != len(tt.want) {
				t.Errorf("error is %T with %d errors, want Errors with %d", err, len(es), len(tt.want))
			}
		})
	}
}

// TestAllErrorsInLineOrder pins that decoding errors do not hide validation
// errors elsewhere, and that everything comes back sorted by line.
func TestAllErrorsInLineOrder(t *testing.T) {
	_, err := Parse("gatehouse.yaml", []byte(manyErrors))
	if err == nil || err.Error() != manyErrorsWant {
		t.Errorf("Parse error:\n%v\nwant:\n%s", err, manyErrorsWant)
	}
}

const manyErrors = `routes:
  - name: api
    service: billing
    limits:
      request:
        deadline: 0s
listeners:
  - name: public
    address: 127.0.0.1:8080
    tls: {cert: testdata/tls/cert.pem}
admin: {address: 10.0.0.1:9901}
limits:
  request:
    max_body_bytes: 10XB
    deadline:
  upstream:
    conect_timeout: 1s
services:
  - name: users
    endpoints: [10.0.0.1:80]
    protocol: h3
  - name: users
    endpoints: [10.0.0.2:80]
    balancer: ""
`

const manyErrorsWant = `gatehouse.yaml:3:5: routes[0].service: unknown service "billing" (known: users)
gatehouse.yaml:6:9: routes[0].limits.request.deadline: must be a positive duration, got "0s"
gatehouse.yaml:10:5: listeners[0].tls.key: required
gatehouse.yaml:11:1: admin.token: required when admin.address "10.0.0.1:9901" is not a loopback address
gatehouse.yaml:14:5: limits.request.max_body_bytes: invalid size "10XB": unknown unit "XB" (use B, KB, MB, GB, KiB, MiB, GiB)
gatehouse.yaml:15:5: limits.request.deadline: missing value
gatehouse.yaml:17:5: limits.upstream: unknown key "conect_timeout"; did you mean "connect_timeout"?
gatehouse.yaml:21:5: services[0].protocol: must be one of http1, h2c, h2; got "h3"
gatehouse.yaml:22:5: services[1].name: duplicate service name "users" (also services[0].name, line 19)
gatehouse.yaml:24:5: services[1].balancer: must not be empty; leave the key out for the default "p2c_ewma"`

// TestAliasExpansionBounded pins that a small file whose aliases expand to
// millions of values is refused instead of being decoded for seconds.
func TestAliasExpansionBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(listener + "services:\n  - &s {name: a, endpoints: &e [")
	for i := range 2000 {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "10.0.0.1:%d", i+1)
	}
	b.WriteString("]}\n")
	for range 1000 {
		b.WriteString("  - *s\n")
	}
	_, err := Parse("gatehouse.yaml", []byte(b.String()))
	var es Errors
	if !errors.As(err, &es) || len(es) != 1 ||
		es[0].Msg != "aliases expand to more than 131072 values; giving up" {
		t.Fatalf("Parse = %v, want one error about the expansion", err)
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse("gatehouse.yaml", []byte(manyErrors))
	var e *Error
	if !errors.As(err, &e) || e.Line != 3 || e.Path != "routes[0].service" {
		t.Errorf("errors.As(*Error) = %+v, want the first error", e)
	}
	if got := (&Error{Path: "a.b", Msg: "m"}).Error(); got != "a.b: m" {
		t.Errorf("Error without file = %q", got)
	}
	if got := (&Error{File: "f", Line: 2, Msg: "m"}).Error(); got != "f:2: m" {
		t.Errorf("Error without column and path = %q", got)
	}
	es := Errors{{File: "f", Line: 9, Col: 1, Msg: "late"}, {File: "f", Line: 2, Col: 3, Msg: "early"}}
	if got := es.Error(); got != "f:2:3: early\nf:9:1: late" {
		t.Errorf("Errors.Error() = %q, want sorted by line", got)
	}
}
