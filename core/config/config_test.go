package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const sec = Duration(time.Second)

// exampleWant is testdata/gatehouse.yaml (the example of the design brief)
// spelled out in Go, without the help of NewService and NewRoute.
func exampleWant() *Config {
	c := Default()
	c.Source = "testdata/gatehouse.yaml"
	c.Listeners = []Listener{{Name: "public", Address: "127.0.0.1:8080", H2C: true}}
	c.Logging.Format = "console"
	c.Limits.Server.HeaderTimeout = 5 * sec
	c.Limits.Server.MaxHeaderBytes = 32 * KiB
	c.Limits.Request.Deadline = 10 * sec
	c.Limits.Request.MaxBodyBytes = MiB
	c.Limits.Request.BodyMinRate = Rate(2 * KiB)
	c.Limits.Upstream.ConnectTimeout = sec / 2
	c.Limits.Upstream.HeaderTimeout = 5 * sec

	def := c.NewService("")
	users := c.Limits.Upstream
	users.HeaderTimeout = 2 * sec
	c.Services = []Service{
		{Name: "users", Endpoints: []string{"127.0.0.1:9001", "127.0.0.1:9002"}, Balancer: "round_robin",
			Protocol: "http1", Limits: ServiceLimits{Upstream: users}, Retry: DefaultRetry(),
			Balancing: def.Balancing, Outlier: def.Outlier, HealthCheck: def.HealthCheck, Admission: def.Admission},
		{Name: "orders", Endpoints: []string{"127.0.0.1:9003"}, Balancer: "p2c_ewma",
			Protocol: "http1", Limits: ServiceLimits{Upstream: c.Limits.Upstream}, Retry: DefaultRetry(),
			Balancing: def.Balancing, Outlier: def.Outlier, HealthCheck: def.HealthCheck, Admission: def.Admission},
	}
	usersAPI := c.Limits.Request
	usersAPI.Deadline = 3 * sec
	c.Routes = []Route{
		{Name: "users-api", Service: "users",
			Match:  Match{Host: "api.example.com", PathPrefix: "/users", Methods: []string{"GET", "POST"}},
			Limits: RouteLimits{Request: usersAPI}, Priority: "default"},
		{Name: "default", Service: "orders", Match: Match{PathPrefix: "/"},
			Limits: RouteLimits{Request: c.Limits.Request}, Priority: "default"},
	}
	return c
}

// dump renders c for failure messages.
func dump(t *testing.T, c *Config) string {
	t.Helper()
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatalf("yaml.Marshal: %v", err)
	}
	return string(out)
}

func TestLoadExample(t *testing.T) {
	got, err := Load("testdata/gatehouse.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := exampleWant()
	if !got.Equal(want) || got.Source != want.Source {
		t.Fatalf("Load:\n%s\nwant:\n%s", dump(t, got), dump(t, want))
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate after Load: %v", err)
	}
	if err := want.Validate(); err != nil {
		t.Errorf("Validate of the same config built in Go: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, path := range []string{"testdata/gatehouse.yaml", "testdata/full.yaml"} {
		t.Run(path, func(t *testing.T) {
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			out, err := yaml.Marshal(c)
			if err != nil {
				t.Fatalf("yaml.Marshal: %v", err)
			}
			back, err := Parse("dump.yaml", out)
			if err != nil {
				t.Fatalf("Parse of the dump: %v\n%s", err, out)
			}
			if !back.Equal(c) {
				t.Fatalf("dump parses back to\n%s\nwant\n%s", dump(t, back), out)
			}
			again, _ := yaml.Marshal(back)
			if string(again) != string(out) {
				t.Errorf("second dump differs:\n%s\nfirst:\n%s", again, out)
			}
		})
	}
}

// inheritanceSrc has routes and services before limits: the global limits
// still apply to them.
const inheritanceSrc = `routes:
  - name: r
    service: s
    limits:
      request:
        max_body_bytes: 1KiB
  - name: plain
    service: s
services:
  - name: s
    endpoints: [10.0.0.1:80]
    limits: {upstream: {connect_timeout: 1s}}
listeners: [{name: l, address: ":8080"}]
limits:
  request: {deadline: 7s}
  upstream: {max_conns_per_endpoint: 64, max_idle_per_endpoint: 8}
`

func TestInheritance(t *testing.T) {
	c, err := Parse("gatehouse.yaml", []byte(inheritanceSrc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"route deadline from global in file", c.Routes[0].Limits.Request.Deadline, 7 * sec},
		{"route max_body_bytes from route", c.Routes[0].Limits.Request.MaxBodyBytes, KiB},
		{"route body_min_rate from default", c.Routes[0].Limits.Request.BodyMinRate, Rate(KiB)},
		{"global max_body_bytes untouched by route", c.Limits.Request.MaxBodyBytes, 8 * MiB},
		{"second route gets the global request limits", c.Routes[1].Limits.Request, c.Limits.Request},
		{"service connect_timeout from service", c.Services[0].Limits.Upstream.ConnectTimeout, sec},
		{"service max_conns from global in file", c.Services[0].Limits.Upstream.MaxConnsPerEndpoint, 64},
		{"service max_idle from global in file", c.Services[0].Limits.Upstream.MaxIdlePerEndpoint, 8},
		{"service header_timeout from default", c.Services[0].Limits.Upstream.HeaderTimeout, 15 * sec},
		{"global connect_timeout untouched by service", c.Limits.Upstream.ConnectTimeout, 2 * sec},
		{"service balancer default", c.Services[0].Balancer, "p2c_ewma"},
		{"service protocol default", c.Services[0].Protocol, "http1"},
		{"route path_prefix default", c.Routes[1].Match.PathPrefix, "/"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestEmptyInputKeepsDefaults(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "---\n", "~\n", "{}\n"} {
		_, err := Parse("gatehouse.yaml", []byte(src))
		const want = "gatehouse.yaml: listeners: at least one listener is required"
		if err == nil || err.Error() != want {
			t.Errorf("Parse(%q) = %v, want %s", src, err, want)
		}
	}
	// The same with a listener: everything else is the default.
	c, err := Parse("gatehouse.yaml", []byte("listeners: [{name: l, address: ':80'}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Listeners = []Listener{{Name: "l", Address: ":80"}}
	if !c.Equal(want) {
		t.Errorf("got\n%s\nwant\n%s", dump(t, c), dump(t, want))
	}
}

func TestValidateBuiltInGo(t *testing.T) {
	if err := Default().Validate(); err == nil || err.Error() != "listeners: at least one listener is required" {
		t.Errorf("Default().Validate() = %v", err)
	}
	c := Default()
	c.Listeners = []Listener{{Name: "l", Address: ":8080"}}
	c.Services = []Service{c.NewService("s", "10.0.0.1:80")}
	c.Services[0].Retry = Retry{}
	c.Services[0].Limits.Upstream.IdleTimeout = 0
	c.Routes = []Route{{Name: "r", Service: "s"}} // a literal: every request bound is zero
	c.Limits.Server.MaxRequests = -1
	want := strings.Join([]string{
		`limits.server.max_requests: must be a positive integer, got "-1"`,
		`services[0].limits.upstream.idle_timeout: must be a positive duration, got "0s"`,
		`services[0].retry.max_attempts: must be a positive integer, got "0"`,
		`services[0].retry.budget_percent: must be a positive integer, got "0"`,
		`services[0].retry.min_per_second: must be a positive integer, got "0"`,
		`services[0].retry.window: must be a positive duration, got "0s"`,
		`services[0].retry.backoff_base: must be a positive duration, got "0s"`,
		`services[0].retry.backoff_max: must be a positive duration, got "0s"`,
		`services[0].retry.replay_body_bytes: must be a positive size, got "0"`,
		`services[0].retry.min_attempt_time: must be a positive duration, got "0s"`,
		`routes[0].limits.request.deadline: must be a positive duration, got "0s"`,
		`routes[0].limits.request.max_body_bytes: must be a positive size, got "0"`,
		`routes[0].limits.request.body_min_rate: must be a positive rate, got "0/s"`,
		`routes[0].limits.request.body_rate_grace: must be a positive duration, got "0s"`,
		`routes[0].limits.request.client_min_rate: must be a positive rate, got "0/s"`,
		`routes[0].limits.request.upgrade_idle_timeout: must be a positive duration, got "0s"`,
	}, "\n")
	err := c.Validate()
	if err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}
	var es Errors
	if !errors.As(err, &es) || len(es) != 16 || es[0].Line != 0 || es[0].File != "" {
		t.Errorf("Validate returned %#v, want 16 *Error without position", err)
	}
}

func TestInheritedErrorReportedOnce(t *testing.T) {
	c := Default()
	c.Listeners = []Listener{{Name: "l", Address: ":8080"}}
	c.Limits.Upstream.MaxConnsPerEndpoint = 16 // below the default max_idle_per_endpoint 128
	c.Limits.Request.Deadline = 0
	c.Services = []Service{c.NewService("a", "10.0.0.1:80"), c.NewService("b", "10.0.0.2:80")}
	c.Routes = []Route{c.NewRoute("r", "a")}
	want := "limits.request.deadline: must be a positive duration, got \"0s\"\n" +
		"limits.upstream.max_idle_per_endpoint: must not exceed max_conns_per_endpoint (128 > 16)"
	if err := c.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant:\n%s", err, want)
	}
}

func TestPosAndErrorAt(t *testing.T) {
	c, err := Load("testdata/gatehouse.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path      string
		line, col int
	}{
		{"services[0].limits.upstream.header_timeout", 27, 9},
		{"services[1]", 28, 5},
		{"services[1].limits.upstream.connect_timeout", 28, 5}, // inherited: the service's position
		{"services[0].balancer", 24, 5},
		{"routes[0].match.methods[1]", 32, 72},
		{"listeners", 1, 1},
		{"nowhere", 0, 0},
	}
	for _, tt := range tests {
		file, line, col := c.Pos(tt.path)
		if file != "testdata/gatehouse.yaml" || line != tt.line || col != tt.col {
			t.Errorf("Pos(%q) = %s:%d:%d, want testdata/gatehouse.yaml:%d:%d", tt.path, file, line, col, tt.line, tt.col)
		}
	}
	e := c.ErrorAt("services[1].balancer", `unknown balancer "ewma"`)
	if want := `testdata/gatehouse.yaml:28:5: services[1].balancer: unknown balancer "ewma"`; e.Error() != want {
		t.Errorf("ErrorAt = %s, want %s", e, want)
	}
	if got := Default().ErrorAt("admin.token", "x").Error(); got != "admin.token: x" {
		t.Errorf("ErrorAt without source = %s", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load("testdata/nonexistent.yaml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestRedacted(t *testing.T) {
	c := exampleWant()
	c.Admin.Token = "s3cret"
	r := c.Redacted()
	if r.Admin.Token != "REDACTED" {
		t.Errorf("Redacted token = %q", r.Admin.Token)
	}
	if c.Admin.Token != "s3cret" {
		t.Errorf("Redacted changed the original token to %q", c.Admin.Token)
	}
	if out := dump(t, r); strings.Contains(out, "s3cret") {
		t.Errorf("redacted dump contains the secret:\n%s", out)
	}
	r.Admin.Token = c.Admin.Token
	if !r.Equal(c) {
		t.Errorf("Redacted changed more than the token")
	}
	if got := exampleWant().Redacted().Admin.Token; got != "" {
		t.Errorf("Redacted of an empty token = %q, want empty", got)
	}
}

func TestCloneIndependent(t *testing.T) {
	c := exampleWant()
	c.Listeners[0].TLS = &TLS{Cert: "a.pem", Key: "a.key"}
	orig := exampleWant()
	orig.Listeners[0].TLS = &TLS{Cert: "a.pem", Key: "a.key"}

	n := c.Clone()
	if !n.Equal(c) || n.Source != c.Source {
		t.Fatalf("Clone differs:\n%s", dump(t, n))
	}
	n.Listeners[0].TLS.Key = "b.key"
	n.Listeners[0].Name = "x"
	n.Services[0].Endpoints[0] = "10.9.9.9:1"
	n.Services[0].Limits.Upstream.ConnectTimeout = 9 * sec
	n.Routes[0].Match.Methods[0] = "PUT"
	n.Routes = append(n.Routes, n.Routes[0])
	n.Limits.Request.Deadline = sec
	if !c.Equal(orig) {
		t.Errorf("changing the clone changed the original:\n%s", dump(t, c))
	}
}

func TestEqual(t *testing.T) {
	a, b := exampleWant(), exampleWant()
	b.Source = "elsewhere.yaml"
	b.Routes[1].Match.Methods = []string{}
	if !a.Equal(b) {
		t.Errorf("Equal should ignore Source and empty versus absent lists")
	}
	b.Routes[1].Match.Methods = []string{"GET"}
	if a.Equal(b) {
		t.Errorf("Equal ignores methods")
	}
}

// exoticSrc is valid, with strings that YAML would read as other types or
// that need quoting, and values in unusual spellings.
const exoticSrc = `listeners:
  - {name: "~", address: ":1"}
  - {name: "true", address: "[::]:2", h2c: TRUE}
  - {name: "- x: #y", address: 'localhost:65535'}
  - {name: "é\tü \\ \"q\"", address: "127.0.0.1:3"}
  - {name: 12, address: "0.0.0.0:00004"}
admin: {address: "[::1]:9901", token: "null"}
limits:
  server: {max_header_bytes: 1.5KiB, max_requests: +7, idle_timeout: 1.5h}
  request: {body_min_rate: 0.5KB/s, max_body_bytes: 1000001}
services:
  - name: "*"
    endpoints: ["a:1", "A:2", "[fe80::1%eth0]:3"]
    balancer: "yes"
routes:
  - name: "0x10"
    service: "*"
    match: {host: "*.xn--e1afmkfd.example", path_prefix: "/a b", methods: [GET, M-SEARCH, "!#$%&'*+-.^_|~"]}
`

func TestRoundTripExotic(t *testing.T) {
	c, err := Parse("exotic.yaml", []byte(exoticSrc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := []string{c.Listeners[0].Name, c.Listeners[1].Name, c.Listeners[4].Name, c.Admin.Token}; got[0] != "~" || got[1] != "true" || got[2] != "12" || got[3] != "null" {
		t.Errorf("strings that look like other types decoded as %q", got)
	}
	if c.Limits.Server.MaxHeaderBytes != 1536 || c.Limits.Request.BodyMinRate != 500 || c.Limits.Server.MaxRequests != 7 {
		t.Errorf("unusual spellings decoded as %v, %v, %v", c.Limits.Server.MaxHeaderBytes, c.Limits.Request.BodyMinRate, c.Limits.Server.MaxRequests)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("dump.yaml", out)
	if err != nil {
		t.Fatalf("Parse of the dump: %v\n%s", err, out)
	}
	if !back.Equal(c) {
		t.Errorf("dump parses back to\n%s\nwant\n%s", dump(t, back), out)
	}
}

func TestScriptBounds(t *testing.T) {
	dir := t.TempDir()
	js := filepath.Join(dir, "s.js")
	if err := os.WriteFile(js, []byte("exports.validate = function () {};\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := func(extra string) []byte {
		return []byte("listeners: [{name: l, address: ':80'}]\nscripts:\n  - name: s\n    file: " + js + "\n" + extra)
	}
	c, err := Parse(filepath.Join(dir, "gatehouse.yaml"), src(""))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Scripts[0].MaxCallMemory; got != 64<<20 {
		t.Errorf("default max_call_memory %v, want 64MiB", got)
	}
	if got := c.Scripts[0].MaxRuntimeCalls; got != 10000 {
		t.Errorf("default max_runtime_calls %v, want 10000", got)
	}
	if _, err := Parse(filepath.Join(dir, "gatehouse.yaml"), src("    max_runtime_calls: -1\n")); err == nil ||
		!strings.Contains(err.Error(), `scripts[0].max_runtime_calls: must be a positive integer, got "-1"`) {
		t.Errorf("max_runtime_calls: -1: %v", err)
	}
	c, err = Parse(filepath.Join(dir, "gatehouse.yaml"), src("    max_call_memory: 16MiB\n"))
	if err != nil || c.Scripts[0].MaxCallMemory != 16<<20 {
		t.Fatalf("max_call_memory: 16MiB: %v, %v", c, err)
	}
	_, err = Parse(filepath.Join(dir, "gatehouse.yaml"), src("    max_call_memory: 0\n"))
	want := `gatehouse.yaml:5:5: scripts[0].max_call_memory: must be a positive size, got "0"`
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("max_call_memory: 0: %v, want ...%s", err, want)
	}
}
