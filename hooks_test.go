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
		if took > 2*time.Second {
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
	for hookName, kind := range map[string]string{"spin": "timeout", "throw": "error", "status": "invalid", "service": "invalid", "badtype": "error"} {
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
	for i := 1; i <= 50; i++ {
		tmp := filepath.Join(dir, ".v.js.tmp")
		if i%2 == 0 {
			valid.Store(fmt.Sprint(i), true)
			os.WriteFile(tmp, []byte(version(i)), 0o644)
		} else {
			os.WriteFile(tmp, []byte("exports.respond = function( {"), 0o644) // does not compile
		}
		os.Rename(tmp, path)
		time.Sleep(20 * time.Millisecond) // paces the edits; the assertions do not depend on it
	}
	// Wait until the last valid version serves, then stop.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get(h.url + "/")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("X-Script-Version") == "50" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the last valid version never served")
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed or came from no valid version (e.g. %v)", failed.Load(), done.Load(), bad.Load())
	}
}
