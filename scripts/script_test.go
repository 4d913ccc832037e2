package scripts

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/rs/zerolog"
)

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestCompileRefusesWithPosition(t *testing.T) {
	cases := []struct {
		name, src string
		want      string // substring of "file:line:col: message" after the file name
	}{
		{"syntax error", "exports.validate = function (req) {\n  var = 5;\n};", ":2:7: SyntaxError: Unexpected token ="},
		{"syntax error on line 1", "exports.validate = function (req { };", ":1:34: SyntaxError: Unexpected token {"},
		{"require fs", "var fs = require('fs');\nexports.validate = function () {};", "only available in directory bundles"},
		{"fetch at top level", "var r = fetch('http://x');\nexports.validate = function () {};", ":1:9: fetch is not available"},
		{"fetch in a phase", "exports.validate = function () {\n  return fetch('http://x');\n};", ":2:10: fetch is not available"},
		{"XMLHttpRequest", "exports.validate = function () { new XMLHttpRequest() };", ":1:38: XMLHttpRequest is not available"},
		{"setTimeout", "exports.validate = function () {\n\tsetTimeout(function () {}, 1);\n};", ":2:2: setTimeout is not available"},
		{"setInterval shorthand", "var o = {setInterval};\nexports.validate = function () {};", ":1:10: setInterval is not available"},
		{"BigInt literal", "var n = 10n;\nexports.validate = function () {};", ":1:9: BigInt is not available"},
		{"top-level throw", "var x = 1;\nthrow new Error('boom');\nexports.validate = function () {};", ":2:7: Error: boom"},
		{"top-level reference error", "exports.validate = function () {};\nundefinedThing.x = 1;", ":2:1: ReferenceError: undefinedThing is not defined"},
		{"top-level loop", "while (true) {}\nexports.validate = function () {};", "did not finish within"},
		{"unknown export", "exports.validdate = function () {};", `unknown export "validdate"`},
		{"export not a function", "exports.validate = 42;", "exports.validate is a number, want a function"},
		{"no phases", "var x = 1;", "exports no phase function"},
		{"reserved name", "var x = 1;\nexports.validate = function () { var __gatehouse_add = 1; };", ":2:38: __gatehouse_add: names beginning with __gatehouse_ are reserved"},
		{"computed private +=", "class C { #s = ''; f(o) { g().#s += 'x' } }\nexports.validate = function () {};", ":1:27: += on a private field of a computed object"},
	}
	opts := DefaultOptions()
	opts.CallTimeout = 200 * time.Millisecond
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeScript(t, t.TempDir(), "bad.js", c.src)
			_, err := Compile(p, opts)
			if err == nil {
				t.Fatal("compiled")
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("error %T %v, want *LoadError", err, err)
			}
			if !strings.HasPrefix(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want %s…%s", err, p, c.want)
			}
		})
	}
}

func TestBundleRequireIsSandboxed(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, dir, "lib/util.js", "exports.double = function (x) { return 2 * x };\nexports.name = require('../data.json').name;")
	writeScript(t, dir, "data.json", `{"name": "bundle"}`)
	writeScript(t, dir, "index.js", "var u = require('./lib/util');\nexports.validate = function () { return {labels: {n: String(u.double(21)), name: u.name}} };")
	s, err := Compile(dir, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Validate(ctxT(t, time.Second), &sdk.Request{})
	if err != nil || d.Labels["n"] != "42" || d.Labels["name"] != "bundle" {
		t.Fatalf("decision %+v, %v", d, err)
	}
	if s.Name() != filepath_Base(dir) {
		t.Errorf("name %q", s.Name())
	}

	refused := []struct{ src, want string }{
		{"var fs = require('fs');\nexports.validate = function () {};", `:1:18: require("fs"): only relative files of the bundle`},
		{"var h = require('http');\nexports.validate = function () {};", `require("http")`},
		{"var x = require('../outside.js');\nexports.validate = function () {};", "leaves the bundle directory"},
		{"var x = require('./missing');\nexports.validate = function () {};", "no such file in the bundle"},
		{"var n = './lib/util'; var x = require(n);\nexports.validate = function () {};", "string literal"},
		{"var r = require; exports.validate = function () {};", "may only be called directly"},
	}
	for _, c := range refused {
		writeScript(t, dir, "index.js", c.src)
		_, err := Compile(dir, DefaultOptions())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.src, err, c.want)
		}
	}
}

func filepath_Base(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func TestUndefinedPhaseReturnsZeroDecision(t *testing.T) {
	s := compileSrc(t, "exports.route = function () { return {service: 'b'} };", DefaultOptions())
	if s.Phases() != sdk.PhaseSetOf(sdk.PhaseRoute) || sdk.PhasesOf(s) != sdk.PhaseSetOf(sdk.PhaseRoute) {
		t.Fatalf("phases %v / %v", s.Phases(), sdk.PhasesOf(s))
	}
	ctx := ctxT(t, time.Second)
	if d, err := s.Validate(ctx, &sdk.Request{}); err != nil || d.Reject != nil || d.Labels != nil {
		t.Errorf("validate %+v %v", d, err)
	}
	if d, err := s.Route(ctx, &sdk.Request{}); err != nil || d.Service != "b" {
		t.Errorf("route %+v %v", d, err)
	}
	if st := s.Stats(); st.Calls != 1 {
		t.Errorf("calls %d, want 1 (undefined phases are not called)", st.Calls)
	}
}

// Decisions of the wrong type are errors of the call; values the core checks
// (status range, header names) pass through as decisions.
func TestDecisionConversion(t *testing.T) {
	cases := []struct {
		ret, want string // want: error substring, or "" for no error
		check     func(sdk.ValidateDecision) bool
	}{
		{`undefined`, "", func(d sdk.ValidateDecision) bool { return d.Reject == nil && d.Labels == nil }},
		{`null`, "", func(d sdk.ValidateDecision) bool { return d.Reject == nil }},
		{`{}`, "", func(d sdk.ValidateDecision) bool { return d.Reject == nil }},
		{`{reject: {status: 401, body: "no", header: {"WWW-Authenticate": "Bearer", "Retry-After": 5}}}`, "", func(d sdk.ValidateDecision) bool {
			return d.Reject != nil && d.Reject.Status == 401 && d.Reject.Body == "no" && d.Reject.Header["Retry-After"] == "5"
		}},
		{`{reject: {status: 999}}`, "", func(d sdk.ValidateDecision) bool { return d.Reject != nil && d.Reject.Status == 999 }},
		{`{labels: {user: "u1", n: 3, ok: true}}`, "", func(d sdk.ValidateDecision) bool {
			return d.Labels["user"] == "u1" && d.Labels["n"] == "3" && d.Labels["ok"] == "true"
		}},
		{`"allow"`, "is a string, want an object or undefined", nil},
		{`42`, "is a number", nil},
		{`[1, 2]`, "is an array", nil},
		{`function () {}`, "is a function", nil},
		{`{reject: {status: "abc"}}`, "reject.status is a string, want an integer", nil},
		{`{reject: {status: 401.5}}`, "want an integer", nil},
		{`{reject: {}}`, "reject.status is missing", nil},
		{`{reject: "no"}`, "reject is a string", nil},
		{`{stauts: 401}`, `unknown field "stauts"`, nil},
		{`{labels: {a: {}}}`, `labels["a"] is an object, want a string`, nil},
		{`{labels: "x"}`, "labels is a string", nil},
		{`Promise.resolve({})`, "is a Promise", nil},
		{`new Proxy({}, {ownKeys: function () { throw new Error("trap") }})`, "Error: trap", nil},
	}
	for _, c := range cases {
		s := compileSrc(t, "exports.validate = function (req) { return "+c.ret+" };", DefaultOptions())
		d, err := s.Validate(ctxT(t, time.Second), &sdk.Request{})
		switch {
		case c.want != "":
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("return %s: error %v, want %q", c.ret, err, c.want)
			}
		case err != nil:
			t.Errorf("return %s: %v", c.ret, err)
		case !c.check(d):
			t.Errorf("return %s: decision %+v", c.ret, d)
		}
		// The version keeps working after a bad decision.
		if _, err := s.Route(ctxT(t, time.Second), &sdk.Request{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOtherDecisions(t *testing.T) {
	s := compileSrc(t, `
exports.shape = function (req) { return {priority: req.header("x-p"), rateKey: "ip:" + req.clientIP, cost: 3} };
exports.route = function (req) { return {service: "users-v2", path: "/v2" + req.path, setHeader: {"X-A": "1"}, removeHeader: ["X-B"], timeoutMs: 250.5} };
exports.respond = function (req, resp) { return {setHeader: {"X-Status": String(resp.status), "X-Type": resp.header("content-type")}, removeHeader: ["Server"]} };
`, DefaultOptions())
	ctx := ctxT(t, time.Second)
	req := &sdk.Request{Path: "/u", ClientIP: "10.0.0.1", Header: sdk.Header{"X-P": {"critical"}}}
	sd, err := s.Shape(ctx, req)
	if err != nil || sd.Priority != sdk.PriorityCritical || sd.RateKey != "ip:10.0.0.1" || sd.Cost != 3 {
		t.Errorf("shape %+v %v", sd, err)
	}
	req.Header["X-P"] = []string{"urgent"}
	if _, err := s.Shape(ctx, req); err == nil || !strings.Contains(err.Error(), `priority "urgent" is not a tier`) {
		t.Errorf("shape with unknown tier: %v", err)
	}
	rd, err := s.Route(ctx, req)
	if err != nil || rd.Service != "users-v2" || rd.Path != "/v2/u" || rd.SetHeader["X-A"] != "1" || rd.RemoveHeader[0] != "X-B" || rd.Timeout != 250500*time.Microsecond {
		t.Errorf("route %+v %v", rd, err)
	}
	pd, err := s.Respond(ctx, req, &sdk.Response{Status: 404, Header: sdk.Header{"Content-Type": {"text/html"}}})
	if err != nil || pd.SetHeader["X-Status"] != "404" || pd.SetHeader["X-Type"] != "text/html" || pd.RemoveHeader[0] != "Server" {
		t.Errorf("respond %+v %v", pd, err)
	}
}

func TestThrowingScriptIsAnErrorWithPosition(t *testing.T) {
	s := compileSrc(t, "exports.validate = function (req) {\n  if (req.path === '/boom') throw new TypeError('bad path');\n  return {labels: {ok: 'yes'}};\n};", DefaultOptions())
	_, err := s.Validate(ctxT(t, time.Second), &sdk.Request{Path: "/boom"})
	var ce *CallError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "TypeError: bad path at ") || !strings.Contains(err.Error(), "s.js:2:") {
		t.Fatalf("error %v", err)
	}
	if d, err := s.Validate(ctxT(t, time.Second), &sdk.Request{Path: "/"}); err != nil || d.Labels["ok"] != "yes" {
		t.Fatalf("after a throw: %+v %v", d, err)
	}
	if st := s.Stats(); st.Failures != 1 || st.Discarded != 0 {
		t.Errorf("stats %+v: a thrown exception keeps the runtime", st)
	}
}

func TestInfiniteLoopStopsAtDeadlineAndVersionRecovers(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 1
	s := compileSrc(t, "exports.validate = function (req) {\n  if (req.path === '/spin') { while (true) {} }\n  return {labels: {ok: 'yes'}};\n};", opts)
	const budget = 50 * time.Millisecond
	start, startCPU := time.Now(), cpuTime()
	_, err := s.Validate(ctxT(t, budget), &sdk.Request{Path: "/spin"})
	elapsed, cpu := time.Since(start), cpuTime()-startCPU
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
	// CPU time: wall time stretches on a loaded machine.
	if cpu > budget+500*time.Millisecond || elapsed > 20*time.Second {
		t.Errorf("took %v (%v of CPU)", elapsed, cpu)
	}
	// The same Script (one runtime, which was discarded) serves the next call.
	if d, err := s.Validate(ctxT(t, time.Second), &sdk.Request{Path: "/"}); err != nil || d.Labels["ok"] != "yes" {
		t.Fatalf("next call: %+v %v", d, err)
	}
	if st := s.Stats(); st.Timeouts != 1 || st.Discarded != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestDeepRecursionAndCanceledContext(t *testing.T) {
	s := compileSrc(t, "function f(n) { return n === 0 ? 0 : 1 + f(n - 1) }\nexports.validate = function (req) { return {labels: {d: String(f(Number(req.path.slice(1))))}} };", DefaultOptions())
	if d, err := s.Validate(ctxT(t, time.Second), &sdk.Request{Path: "/100"}); err != nil || d.Labels["d"] != "100" {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := s.Validate(ctxT(t, time.Second), &sdk.Request{Path: "/100000"}); err == nil || !strings.Contains(err.Error(), "stack overflow") {
		t.Fatalf("deep recursion: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Validate(ctx, &sdk.Request{Path: "/1"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}

func TestPoolBoundsConcurrentCalls(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 1
	s := compileSrc(t, "exports.validate = function (req) { if (req.path === '/spin') { while (true) {} } };", opts)
	done := make(chan error)
	go func() {
		_, err := s.Validate(ctxT(t, 300*time.Millisecond), &sdk.Request{Path: "/spin"})
		done <- err
	}()
	// Wait until the spinning call holds the only runtime.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.pool.permits) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the spinning call never started")
		}
		time.Sleep(time.Millisecond)
	}
	_, err := s.Validate(ctxT(t, 20*time.Millisecond), &sdk.Request{})
	if err == nil || !strings.Contains(err.Error(), "every runtime busy (Options.PoolSize = 1)") {
		t.Errorf("second call: %v", err)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("spinning call: %v", err)
	}
}

func TestRequestView(t *testing.T) {
	s := compileSrc(t, `"use strict";
var kept;
exports.validate = function (req) {
	if (req.path === "/later") return {labels: {later: String(kept.method)}};
	kept = req;
	var ro = "ok";
	try { req.path = "/x"; ro = "writable" } catch (e) {}
	try { req.labels.tenant = "x"; ro = "writable" } catch (e) {}
	return {labels: {
		id: req.id, method: req.method, scheme: req.scheme, host: req.host, path: req.path, q: req.rawQuery,
		auth: req.header("AUTHORIZATION"), a: req.headers["x-multi"], all: req.headerValues("x-multi").join("|"),
		none: String(req.header("x-none")), cookie: req.headers.cookie,
		ip: req.clientIP, route: req.route, service: req.service, tenant: req.labels.tenant,
		tls: req.tls === null ? "none" : req.tls.version + "/" + req.tls.serverName + "/" + req.tls.alpn,
		body: String(req.body), trunc: String(req.bodyTruncated), ro: ro,
		keys: Object.keys(req).length > 10 ? "yes" : "no",
	}};
};`, onePool())
	req := &sdk.Request{
		ID: "r-1", Method: "POST", Scheme: "https", Host: "api.example.com", Path: "/u/1", RawQuery: "a=1",
		Header:   sdk.Header{"Authorization": {"Bearer t"}, "X-Multi": {"1", "2"}, "Cookie": {"a=1", "b=2"}},
		ClientIP: "192.0.2.1", Route: "users", Service: "users", Labels: map[string]string{"tenant": "acme"},
		TLS:  &sdk.TLSInfo{Version: "TLS 1.3", ServerName: "api.example.com", ALPN: "h2"},
		Body: []byte(`{"x":1}`), BodyTruncated: true,
	}
	d, err := s.Validate(ctxT(t, time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"id": "r-1", "method": "POST", "scheme": "https", "host": "api.example.com", "path": "/u/1", "q": "a=1",
		"auth": "Bearer t", "a": "1, 2", "all": "1|2", "none": "undefined", "cookie": "a=1; b=2",
		"ip": "192.0.2.1", "route": "users", "service": "users", "tenant": "acme",
		"tls": "TLS 1.3/api.example.com/h2", "body": `{"x":1}`, "trunc": "true", "ro": "ok", "keys": "yes",
	}
	for k, v := range want {
		if d.Labels[k] != v {
			t.Errorf("%s = %q, want %q", k, d.Labels[k], v)
		}
	}
	// The view is one object per runtime, pointed at the current call's
	// request (documented: do not keep it): a kept reference reads the
	// request of the call in progress, never a stale one.
	d, err = s.Validate(ctxT(t, time.Second), &sdk.Request{Path: "/later", Method: "DELETE"})
	if err != nil || d.Labels["later"] != "DELETE" {
		t.Errorf("kept view: %+v %v", d, err)
	}
	d, err = compileSrc(t, `exports.validate = function (req) { return {labels: {tls: String(req.tls), body: String(req.body)}} }`, DefaultOptions()).Validate(ctxT(t, time.Second), &sdk.Request{})
	if err != nil || d.Labels["tls"] != "null" || d.Labels["body"] != "undefined" {
		t.Errorf("plain request: %+v %v", d, err)
	}
}

func TestObserve(t *testing.T) {
	var buf bytes.Buffer
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&buf)
	s := compileSrc(t, `exports.observe = function (o) {
	if (o.status >= 500) throw new Error("bad status " + o.status);
	console.log("observed", o.request.path, o.outcome, o.totalMs, o.passport);
};`, opts)
	s.Observe(ctxT(t, time.Second), &sdk.Observation{Request: &sdk.Request{ID: "r9", Path: "/p"}, Status: 200, Outcome: "ok", Total: 1500 * time.Microsecond, Passport: "+0.01ms=DONE"})
	s.Observe(ctxT(t, time.Second), &sdk.Observation{Request: &sdk.Request{ID: "r10"}, Status: 503})
	out := buf.String()
	if !strings.Contains(out, `"message":"observed /p ok 1.5 +0.01ms=DONE"`) || !strings.Contains(out, `"request_id":"r9"`) {
		t.Errorf("log %s", out)
	}
	if !strings.Contains(out, "observe failed") || !strings.Contains(out, "bad status 503") {
		t.Errorf("failure not logged: %s", out)
	}
}

func TestConsoleIsTaggedAndRateLimited(t *testing.T) {
	var buf bytes.Buffer
	opts := DefaultOptions()
	opts.Logger = zerolog.New(&buf)
	opts.LogRate = 0.001 // effectively no refill during the test
	opts.LogBurst = 3
	s := compileSrc(t, `exports.validate = function (req) {
	for (var i = 0; i < 10; i++) console.warn("line", i, {a: [1, "x"]});
};`, opts)
	if _, err := s.Validate(ctxT(t, time.Second), &sdk.Request{ID: "req-7"}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines logged, want 3 (the burst):\n%s", len(lines), buf.String())
	}
	for _, want := range []string{`"level":"warn"`, `"file":"s"`, `"version":"` + s.ID() + `"`, `"request_id":"req-7"`, `"message":"line 0 {\"a\":[1,\"x\"]}"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("line %s lacks %s", lines[0], want)
		}
	}
	if st := s.Stats(); st.LogsDropped != 7 {
		t.Errorf("dropped %d, want 7", st.LogsDropped)
	}
}

func onePool() Options {
	o := DefaultOptions()
	o.PoolSize = 1
	return o
}

func TestCancellationInterruptsTheCall(t *testing.T) {
	s := compileSrc(t, "exports.validate = function () { while (true) {} };", onePool())
	ctx, cancel := context.WithCancel(context.Background()) // no deadline
	go func() {
		// Cancel once the call holds the runtime (or after 5 s at most).
		deadline := time.Now().Add(5 * time.Second)
		for len(s.pool.permits) != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := s.Validate(ctx, &sdk.Request{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want one wrapping context.Canceled", err)
	}
	// A context with neither deadline nor cancellation gets CallTimeout.
	opts := onePool()
	opts.CallTimeout = 50 * time.Millisecond
	s = compileSrc(t, "exports.validate = function () { while (true) {} };", opts)
	if _, err := s.Validate(context.Background(), &sdk.Request{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want one wrapping context.DeadlineExceeded", err)
	}
}

// The arguments of a phase function are made once per runtime: what a
// script does with them in one call never reaches the next.
func TestPhaseArgumentsDoNotCarryOver(t *testing.T) {
	cases := []struct{ name, src string }{
		// A sloppy-mode function's arguments object aliases its parameter.
		{"arguments", `exports.validate = function (req) {
	var m = req.method;
	arguments[0] = null;
	return {labels: {m: m}};
};`},
		// A Proxy's apply trap gets the arguments as an array it may keep.
		{"proxy", `var kept;
exports.validate = new Proxy(function (req) { return {labels: {m: req.method}}; }, {
	apply: function (target, that, args) {
		if (kept) kept[0] = null;
		kept = args;
		return Reflect.apply(target, that, args);
	},
});`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := compileSrc(t, c.src, onePool())
			for _, m := range []string{"GET", "POST", "PUT"} {
				d, err := s.Validate(ctxT(t, time.Second), &sdk.Request{Method: m})
				if err != nil || d.Labels["m"] != m {
					t.Fatalf("call with %s: %+v %v", m, d, err)
				}
			}
		})
	}
}

// Label and header values are converted through a small cache keyed by
// their content: each read still gets the value of the call in progress.
func TestCachedStringsFollowTheRequest(t *testing.T) {
	s := compileSrc(t, `exports.validate = function (req) {
	return {labels: {ua: String(req.header("user-agent")), h: String(req.headers["x-h"]), l: String(req.labels.l)}};
};`, onePool())
	// "abcXe" and "aZcYe" take the same cache slot; the long value is not
	// cached.
	long := strings.Repeat("v", 300)
	for _, v := range [][3]string{
		{"abcXe", "aZcYe", "abcXe"}, {"aZcYe", "abcXe", "aZcYe"}, {"x", "", long}, {long + "!", "y", "x"}, {"abcXe", "abcXe", "abcXe"},
	} {
		req := &sdk.Request{Header: sdk.Header{"User-Agent": {v[0]}, "X-H": {v[1]}}, Labels: map[string]string{"l": v[2]}}
		d, err := s.Validate(ctxT(t, time.Second), req)
		if err != nil || d.Labels["ua"] != v[0] || d.Labels["h"] != v[1] || d.Labels["l"] != v[2] {
			t.Fatalf("values %.20q: %.60v %v", v, d.Labels, err)
		}
	}
}

// A runtime's deadline timer may stay set after a call returns (see
// watchdog): it must not keep the runtimes of a version no longer in use
// from being collected, even when the last call had a deadline hours away.
func TestDroppedVersionIsCollected(t *testing.T) {
	s := compileSrc(t, "exports.validate = function (req) { return {labels: {m: req.method}} };", onePool())
	if _, err := s.Validate(ctxT(t, time.Hour), &sdk.Request{Method: "GET"}); err != nil {
		t.Fatal(err)
	}
	s.pool.mu.Lock()
	st := s.pool.idle[0]
	s.pool.mu.Unlock()
	collected := make(chan struct{})
	runtime.AddCleanup(st, func(ch chan struct{}) { close(ch) }, collected)
	// Neither s nor st is used below: only the timer could keep them.
	for i := 0; i < 50; i++ {
		runtime.GC()
		select {
		case <-collected:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatal("the runtime of a dropped version was not collected")
}

// TestRuntimesMadeOffTheCallPath: a script whose top-level code is slow
// never makes a call wait for it past the call's budget. A discarded
// runtime (an interrupted call) is made up for in the background, once,
// while the calls meanwhile fail within their budget; then calls succeed
// again.
func TestRuntimesMadeOffTheCallPath(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 2
	s := compileSrc(t, `var t0 = Date.now(); while (Date.now() - t0 < 300) {}
exports.validate = function (req) { if (req.path === '/spin') { while (true) {} } };`, opts)
	const budget = 20 * time.Millisecond
	// The slack covers a loaded machine; the top-level code takes 300ms.
	const slack = 150 * time.Millisecond
	call := func(path string) (time.Duration, error) {
		began := time.Now()
		_, err := s.Validate(ctxT(t, budget), &sdk.Request{Path: path})
		return time.Since(began), err
	}
	if took, err := call("/spin"); !errors.Is(err, context.DeadlineExceeded) || took > budget+slack {
		t.Fatalf("spinning call: %v after %v", err, took)
	}
	// The only runtime was discarded: the next call waits at most its
	// budget, not the 300ms of a new runtime's top-level code.
	took, err := call("/")
	if err == nil || !strings.Contains(err.Error(), "no runtime ready before the deadline") || took > budget+slack {
		t.Fatalf("call while the runtime is being made: %v after %v", err, took)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := call("/"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no runtime was made in the background")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.pool.mu.Lock()
	live, want := s.pool.live, s.pool.want
	s.pool.mu.Unlock()
	if live != 1 || want != 1 {
		t.Fatalf("the pool has %d runtimes and wants %d, want 1 and 1 (one made up for)", live, want)
	}
}

// TestPoolGrowsWithDemand: with calls in parallel the pool makes more
// runtimes (up to its size) in the background and keeps them.
func TestPoolGrowsWithDemand(t *testing.T) {
	opts := DefaultOptions()
	opts.PoolSize = 3
	s := compileSrc(t, `exports.validate = function (req) { var t0 = Date.now(); while (Date.now() - t0 < 20) {} };`, opts)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var wg sync.WaitGroup
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Validate(ctxT(t, time.Second), &sdk.Request{})
			}()
		}
		wg.Wait()
		s.pool.mu.Lock()
		live := s.pool.live
		s.pool.mu.Unlock()
		if live == 3 {
			return
		}
		if live > 3 || time.Now().After(deadline) {
			t.Fatalf("the pool has %d runtimes, want 3", live)
		}
	}
}
