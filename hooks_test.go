package gatehouse_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const hooksConfig = `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
limits:
  request: {deadline: 5s}
  upstream: {connect_timeout: 500ms, header_timeout: 2s}
scripts:
  - {name: validate, file: examples/scripts/validate.js}
  - {name: respond, file: examples/scripts/respond.js}
  - {name: canary, file: examples/scripts/route, config: {canaryPercent: 50, overrideKey: k}}
hooks:
  - {script: validate, budget: 200ms}
  - {script: respond, budget: 200ms}
routes:
  - name: users
    match: {path_prefix: /users}
    service: users
    hooks: [{script: canary, budget: 200ms}]
  - name: keyed
    match: {path_prefix: /keyed}
    service: users
    hooks: [{go: require_header, config: {header: X-Tenant, status: 403}}]
services:
  - {name: users, endpoints: ["{{V1}}"]}
  - {name: users-v2, endpoints: ["{{V2}}"]}
`

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "leaky/1.0")
		io.WriteString(w, name)
	})
}

func TestScriptHooksEndToEnd(t *testing.T) {
	h := start(t, hooksConfig, map[string]string{"V1": backend(t, named("v1")), "V2": backend(t, named("v2"))})
	c := client(t)
	do := func(path string, hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", h.url+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	// validate.js: no credentials → 401 with the script's body.
	resp, body := do("/users/1", nil)
	if resp.StatusCode != 401 {
		t.Fatalf("no credentials: %d %q", resp.StatusCode, body)
	}
	r := h.next()
	if r.Outcome != "rejected" || !strings.Contains(r.Passport, "HOOK_ENTER(validate:validate@") {
		t.Fatalf("record %+v", r)
	}
	// With credentials: routed by the canary, answered with security headers.
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		resp, body = do("/users/1", map[string]string{"Authorization": "Bearer t", "X-User-Id": fmt.Sprint("user-", i)})
		if resp.StatusCode != 200 {
			t.Fatalf("user %d: %d %q", i, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Server") != "" {
			t.Fatalf("respond hook not applied: %v", resp.Header)
		}
		seen[body]++
		h.next()
	}
	if seen["v1"] == 0 || seen["v2"] == 0 {
		t.Fatalf("canary at 50%% sent %v", seen)
	}
	// The same user always lands on the same side.
	first := ""
	for i := 0; i < 5; i++ {
		_, body = do("/users/1", map[string]string{"Authorization": "Bearer t", "X-User-Id": "stable"})
		if first == "" {
			first = body
		} else if body != first {
			t.Fatalf("user moved from %s to %s", first, body)
		}
		h.next()
	}
	// A compiled-in Go hook on one route.
	resp, _ = do("/keyed", map[string]string{"Authorization": "Bearer t"})
	if resp.StatusCode != 403 {
		t.Fatalf("require_header: %d", resp.StatusCode)
	}
	resp, body = do("/keyed", map[string]string{"Authorization": "Bearer t", "X-Tenant": "a"})
	if resp.StatusCode != 200 || body != "v1" {
		t.Fatalf("require_header with the header: %d %q", resp.StatusCode, body)
	}
}

// writeScript writes a script file in dir and returns its path.
func writeScript(t *testing.T, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAdversarialScriptsFollowPolicy(t *testing.T) {
	dir := t.TempDir()
	scripts := map[string]string{
		"spin":     `exports.validate = function(req) { while (true) {} };`,
		"alloc":    `exports.validate = function(req) { var a = []; while (true) { a.push(new Array(1000).join("x")); } };`,
		"recurse":  `function f(n) { return f(n + 1) + 1; } exports.validate = function(req) { return f(0); };`,
		"throw":    `exports.validate = function(req) { throw new Error("nope"); };`,
		"badtype":  `exports.validate = function(req) { return "yes"; };`,
		"status":   `exports.validate = function(req) { return {reject: {status: 999}}; };`,
		"service":  `exports.route = function(req) { return {service: "nowhere"}; };`,
		"hop":      `exports.route = function(req) { return {setHeader: {"Connection": "close"}}; };`,
		"loosen":   `exports.route = function(req) { return {timeoutMs: 3600000}; };`,
		"hostedit": `exports.route = function(req) { return {setHeader: {"Host": "evil.example"}}; };`,
		"doubling": `exports.validate = function(req) { var s = "x"; while (true) { s += s; } };`,
		"redos":    `exports.validate = function(req) { return /^(a+)+\1$/.test("a".repeat(40) + "b") ? undefined : {reject: {status: 400}}; };`,
	}
	var cfg strings.Builder
	cfg.WriteString(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts:
`)
	for name, src := range scripts {
		fmt.Fprintf(&cfg, "  - {name: %s, file: %q}\n", name, writeScript(t, dir, name+".js", src))
	}
	cfg.WriteString("routes:\n")
	for name := range scripts {
		fmt.Fprintf(&cfg, "  - {name: %s, match: {path_prefix: /%s}, service: app, hooks: [{script: %s, budget: 100ms, failure_status: 503}]}\n", name, name, name)
	}
	cfg.WriteString("  - {name: ok, match: {path_prefix: /ok}, service: app}\n")
	h := start(t, cfg.String(), map[string]string{"APP": backend(t, named("app"))})
	c := client(t)
	for name := range scripts {
		began := time.Now()
		resp, err := c.Get(h.url + "/" + name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		took := time.Since(began)
		if resp.StatusCode != 503 {
			t.Errorf("%s: status %d, want the failure policy's 503", name, resp.StatusCode)
		}
		// The budget plus a small slack (scheduling under -race on a shared
		// 2-core machine), never the script's own running time.
		if took > 100*time.Millisecond+200*time.Millisecond {
			t.Errorf("%s: answered after %v with a 100ms budget", name, took)
		}
		if r := h.next(); r.Outcome != "hook_failed" {
			t.Errorf("%s: record %+v", name, r)
		}
	}
	// The gateway is healthy afterwards.
	resp, err := c.Get(h.url + "/ok")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthy route after the adversarial ones: %v", err)
	}
	resp.Body.Close()
	// Each failure is counted by kind on /metrics.
	resp, err = c.Get("http://" + h.g.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for hookName, kind := range map[string]string{"spin": "timeout", "throw": "error", "status": "invalid", "service": "invalid", "badtype": "invalid"} {
		want := fmt.Sprintf(`gatehouse_hook_failures_total{hook=%q,kind=%q,scope=%q,`, hookName, kind, hookName)
		i := strings.Index(string(m), want)
		if i < 0 || !strings.HasPrefix(strings.SplitN(string(m[i:]), "\n", 2)[0][strings.Index(string(m[i:]), "} ")+2:], "1") {
			t.Errorf("metrics lack %s... 1", want)
		}
	}
}

func TestScriptReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	version := func(n int) string {
		return fmt.Sprintf(`exports.respond = function(req, resp) { return {setHeader: {"X-Script-Version": "%d"}}; };`, n)
	}
	path := writeScript(t, dir, "v.js", version(0))
	cfg := `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false, level: error}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: v, file: "` + path + `"}]
routes: [{name: app, service: app, hooks: [{script: v, budget: 5s}]}]  # generous: this test is about reloads, not budgets
`
	h := start(t, cfg, map[string]string{"APP": backend(t, named("app"))})
	c := client(t)
	valid := sync.Map{}
	valid.Store("0", true)
	var failed, done atomic.Int64
	var bad atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(h.url + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				v := resp.Header.Get("X-Script-Version")
				if _, ok := valid.Load(v); resp.StatusCode != 200 || !ok {
					failed.Add(1)
					bad.Store(fmt.Sprintf("status %d version %q", resp.StatusCode, v))
				}
				done.Add(1)
			}
		}()
	}
	// Each edit waits until the gateway has acted on it (the new version
	// serves, or the refusal is counted) before the next, so that every one
	// of the 50 versions is compiled and judged on its own rather than
	// merged with the next by the watcher's debounce.
	metric := func(name string) float64 {
		_, page := getWith(t, c, "http://"+h.g.AdminAddr().String()+"/metrics")
		v, _ := pageValue(page, name+`{script="v"}`)
		return v
	}
	serving := func() string {
		resp, err := c.Get(h.url + "/")
		if err != nil {
			return ""
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.Header.Get("X-Script-Version")
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("edit not acted on within 10s: %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	reloads0, refusals0 := metric("gatehouse_script_reloads_total"), metric("gatehouse_script_refusals_total")
	for i := 1; i <= 50; i++ {
		tmp := filepath.Join(dir, ".v.js.tmp")
		src := []byte("exports.respond = function( {") // does not compile
		if i%2 == 0 {
			valid.Store(fmt.Sprint(i), true)
			src = []byte(version(i))
		}
		if err := os.WriteFile(tmp, src, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			want := fmt.Sprint(i)
			waitFor("version "+want+" serves", func() bool { return serving() == want })
		} else {
			want := refusals0 + float64(i+1)/2
			waitFor(fmt.Sprintf("refusal %d counted", (i+1)/2), func() bool { return metric("gatehouse_script_refusals_total") >= want })
		}
	}
	if got := metric("gatehouse_script_reloads_total") - reloads0; got != 25 {
		t.Errorf("reloads = %v, want 25", got)
	}
	if got := metric("gatehouse_script_refusals_total") - refusals0; got != 25 {
		t.Errorf("refusals = %v, want 25", got)
	}
	close(stop)
	wg.Wait()
	if done.Load() < 100 {
		t.Fatalf("only %d requests ran during the 50 edits", done.Load())
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed or came from no valid version (e.g. %v)", failed.Load(), done.Load(), bad.Load())
	}
}

// TestScriptSeesBoundedBody: a binding with body_bytes gives the script at
// most that many bytes of the request body (and says when it was cut),
// while the service still receives the whole body.
func TestScriptSeesBoundedBody(t *testing.T) {
	dir := t.TempDir()
	path := writeScript(t, dir, "b.js", `exports.validate = function (req) {
	if (req.body.indexOf("evil") >= 0) return {reject: {status: 400, body: "evil body"}};
	if (req.path === "/probe") return {reject: {status: 418, body: req.body.length + ":" + req.bodyTruncated}};
};`)
	var got atomic.Int64
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(int64(len(b)))
	}))
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false, level: error}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: b, file: "`+path+`"}]
routes: [{name: app, service: app, hooks: [{script: b, budget: 1s, body_bytes: 64}]}]
`, map[string]string{"APP": app})
	c := client(t)
	post := func(p, body string) (int, string) {
		resp, err := c.Post(h.url+p, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if st, b := post("/probe", strings.Repeat("x", 200)); st != 418 || b != "64:true" {
		t.Errorf("probe of a 200-byte body: %d %q, want 418 \"64:true\"", st, b)
	}
	if st, b := post("/probe", "short"); st != 418 || b != "5:false" {
		t.Errorf("probe of a 5-byte body: %d %q, want 418 \"5:false\"", st, b)
	}
	if st, _ := post("/x", "an evil body"); st != 400 {
		t.Errorf("evil body: %d, want 400", st)
	}
	// "evil" past the first 64 bytes is not seen; the service gets it all.
	long := strings.Repeat("y", 100) + "evil"
	if st, _ := post("/x", long); st != 200 || got.Load() != int64(len(long)) {
		t.Errorf("evil past the bound: status %d, service got %d bytes, want 200 and %d", st, got.Load(), len(long))
	}
}
