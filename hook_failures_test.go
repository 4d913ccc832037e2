package gatehouse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/sdk"
)

// hangHook is a validate hook that never answers: it waits for its call's
// context to end.
type hangHook struct{}

func (hangHook) Validate(ctx context.Context, _ *sdk.Request) (sdk.ValidateDecision, error) {
	<-ctx.Done()
	return sdk.ValidateDecision{}, ctx.Err()
}

// brokenResponder is a respond hook that fails.
type brokenResponder struct{}

func (brokenResponder) Respond(context.Context, *sdk.Request, *sdk.Response) (sdk.RespondDecision, error) {
	return sdk.RespondDecision{SetHeader: map[string]string{"X-Edited": "1"}}, errors.New("respond hook broke")
}

func init() {
	hook.RegisterGo("test_hang", func(map[string]any) (any, error) { return hangHook{}, nil })
	hook.RegisterGo("test_respond_broken", func(map[string]any) (any, error) { return brokenResponder{}, nil })
}

// recordsTo returns an observer option sending each finished request's
// record (copied) to a channel, after the access log has written it.
func recordsTo(ch chan rec) gatehouse.Option {
	return gatehouse.WithObserver(proxy.ObserverFunc(func(r *proxy.Record) {
		select {
		case ch <- rec{Outcome: r.Outcome.String(), Route: r.Route, Passport: r.Passport.String(), Err: r.Err, Status: r.Status}:
		default:
		}
	}))
}

// TestHookFailuresAreRecorded pins the bug where a hook that failed open
// (or in the respond phase) left no trace: the access log said success with
// no error, the passport's HOOK_EXIT was that of a successful call, and no
// /admin/passports filter found the request. Now the HOOK_EXIT says how the
// call failed and which policy applied, the access log line lists the
// failure, and kind=hook_failed (or hook_failed=true) finds the request,
// its hook segment marked failed.
func TestHookFailuresAreRecorded(t *testing.T) {
	app := backend(t, named("app"))
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: true}
services: [{name: app, endpoints: ["{{APP}}"]}]
routes:
  - {name: open, service: app, match: {path_prefix: /open}, hooks: [{go: test_hang, budget: 50ms, on_failure: open}]}
  - {name: respond, service: app, match: {path_prefix: /respond}, hooks: [{go: test_respond_broken, budget: 50ms, on_failure: closed, failure_status: 503}]}
  - {name: closed, service: app, match: {path_prefix: /closed}, hooks: [{go: test_hang, budget: 50ms, on_failure: closed, failure_status: 503}]}
  - {name: plain, service: app, match: {path_prefix: /plain}}
`, map[string]string{"APP": app})
	access := &logBuf{}
	recs := make(chan rec, 100)
	g, _ := serveLogged(t, cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.New(access)), recordsTo(recs))
	c := client(t)
	url := "http://" + g.Addr("public").String()
	type hookFailure struct{ Hook, Version, Phase, Kind, Policy, Error string }
	for _, tc := range []struct {
		path, outcome string
		status        int
		stamp         string      // the HOOK_EXIT the passport must hold
		logged        hookFailure // the access log's hook_failures entry
	}{
		{"/open", "success", 200, "HOOK_EXIT(validate:test_hang@go,failed=timeout,policy=open)",
			hookFailure{"test_hang", "go", "validate", "timeout", "open", ""}},
		// The response is decided before the respond phase: its failure goes on (open) whatever the binding says.
		{"/respond", "success", 200, "HOOK_EXIT(respond:test_respond_broken@go,failed=error,policy=open)",
			hookFailure{"test_respond_broken", "go", "respond", "error", "open", "respond hook broke"}},
		{"/closed", "hook_failed", 503, "HOOK_EXIT(validate:test_hang@go,failed=timeout,policy=closed)",
			hookFailure{"test_hang", "go", "validate", "timeout", "closed", ""}},
		{"/plain", "success", 200, "", hookFailure{}},
	} {
		resp, err := c.Get(url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("X-Edited") != "" {
			t.Errorf("%s: %d %v, want %d without the failed hook's edit", tc.path, resp.StatusCode, resp.Header, tc.status)
		}
		var r rec
		select {
		case r = <-recs:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no record", tc.path)
		}
		if r.Outcome != tc.outcome {
			t.Errorf("%s: outcome %s, want %s", tc.path, r.Outcome, tc.outcome)
		}
		if tc.stamp != "" && !strings.Contains(r.Passport, tc.stamp) {
			t.Errorf("%s: passport %s lacks %s", tc.path, r.Passport, tc.stamp)
		}
		if tc.stamp == "" && strings.Contains(r.Passport, "failed=") {
			t.Errorf("%s: passport %s marks a failure", tc.path, r.Passport)
		}
		// The access log line was written before the record reached this observer.
		line := access.find(`"kind":"access"`, `"path":"`+tc.path+`"`)
		if line == "" {
			t.Fatalf("%s: no access log line in %q", tc.path, access.lines())
		}
		m := decodeUnique(t, line)
		if m["outcome"] != tc.outcome {
			t.Errorf("%s: access log outcome %v", tc.path, m["outcome"])
		}
		list, _ := m["hook_failures"].([]any)
		if tc.logged.Hook == "" {
			if m["hook_failures"] != nil {
				t.Errorf("%s: access log lists hook failures: %s", tc.path, line)
			}
			continue
		}
		if len(list) != 1 {
			t.Fatalf("%s: access log hook_failures %v in %s", tc.path, m["hook_failures"], line)
		}
		f := list[0].(map[string]any)
		got := hookFailure{fmt.Sprint(f["hook"]), fmt.Sprint(f["version"]), fmt.Sprint(f["phase"]), fmt.Sprint(f["kind"]), fmt.Sprint(f["policy"]), ""}
		want := tc.logged
		want.Error = ""
		if got != want || f["error"] == nil || tc.logged.Error != "" && f["error"] != tc.logged.Error {
			t.Errorf("%s: access log hook failure %v, want %+v", tc.path, f, tc.logged)
		}
	}
	type item struct {
		Path, Outcome string
		HookFailures  []struct{ Hook, Phase, Kind, Policy string }
		Segments      []struct {
			Kind, Name, Note string
			Failed           bool
		}
	}
	paths := func(q string) []string {
		t.Helper()
		var items []item
		adminJSON(t, g, "/admin/passports"+q, &items)
		out := []string{}
		for _, it := range items {
			out = append(out, it.Path)
		}
		return out
	}
	// The rings are filled before the observers after them run: every
	// request is there.
	for q, want := range map[string][]string{
		"?kind=hook_failed":                 {"/closed", "/respond", "/open"},
		"?hook_failed=true&outcome=success": {"/respond", "/open"},
		"?kind=failed":                      {"/closed"},
		"?hook_failed=false":                {"/plain"},
	} {
		if got := paths(q); !slices.Equal(got, want) {
			t.Errorf("/admin/passports%s = %q, want %q", q, got, want)
		}
	}
	var items []item
	adminJSON(t, g, "/admin/passports?kind=hook_failed&route=open", &items)
	if len(items) != 1 || len(items[0].HookFailures) != 1 || items[0].HookFailures[0].Kind != "timeout" || items[0].HookFailures[0].Policy != "open" {
		t.Fatalf("hook_failed, route open: %+v", items)
	}
	found := false
	for _, s := range items[0].Segments {
		if s.Kind == "hook" {
			found = true
			if !s.Failed || s.Name != "validate:test_hang@go" || s.Note != "failed=timeout,policy=open" {
				t.Errorf("hook segment %+v, want failed with its label and how", s)
			}
		}
	}
	if !found {
		t.Errorf("no hook segment in %+v", items[0].Segments)
	}
}

// series is one sample of a Prometheus text page.
type series struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleRE = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$`)
	labelRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// scrape reads /metrics and returns the samples of family name.
func scrape(t *testing.T, g *gatehouse.Gateway, name string) []series {
	t.Helper()
	code, page := adminGet(t, g, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	var out []series
	for _, line := range strings.Split(page, "\n") {
		m := sampleRE.FindStringSubmatch(line)
		if m == nil || m[1] != name {
			continue
		}
		s := series{name: m[1], labels: map[string]string{}}
		for _, l := range labelRE.FindAllStringSubmatch(m[2], -1) {
			s.labels[l[1]] = l[2]
		}
		s.value, _ = strconv.ParseFloat(m[3], 64)
		out = append(out, s)
	}
	return out
}

// value returns the sample of ss whose labels include want, and whether
// there is one.
func value(ss []series, want map[string]string) (float64, bool) {
	for _, s := range ss {
		all := true
		for k, v := range want {
			all = all && s.labels[k] == v
		}
		if all {
			return s.value, true
		}
	}
	return 0, false
}

var hookVersionRE = regexp.MustCompile(`HOOK_ENTER\(validate:s@([^)]+)\)`)

// TestHookCountersPerVersion pins the bug where hook counters were labelled
// with the version current at scrape time: after a broken script was fixed,
// /metrics (and /admin/api/hooks) blamed the old version's failures on the
// new one before any call to it. Now calls and failures count under the
// version that ran them.
func TestHookCountersPerVersion(t *testing.T) {
	dir := t.TempDir()
	file := writeScript(t, dir, "s.js", `exports.validate = function(req) { throw new Error("broken"); };`)
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: s, file: "{{FILE}}"}]
routes: [{name: app, service: app, hooks: [{script: s, budget: 1s, on_failure: open}]}]
`, map[string]string{"APP": backend(t, named("app")), "FILE": file})
	c := client(t)
	get := func() int {
		t.Helper()
		resp, err := c.Get(h.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const broken = 5
	var oldID string
	for i := 0; i < broken; i++ {
		if code := get(); code != 200 {
			t.Fatalf("fail-open broken script: %d", code)
		}
		m := hookVersionRE.FindStringSubmatch(h.next().Passport)
		if m == nil {
			t.Fatal("no hook call in the passport")
		}
		oldID = m[1]
	}
	// The fix: the script now rejects with 418 (a decision, not a failure).
	writeScript(t, dir, "s.js.tmp", `exports.validate = function(req) { return {reject: {status: 418}}; };`)
	if err := os.Rename(filepath.Join(dir, "s.js.tmp"), file); err != nil {
		t.Fatal(err)
	}
	// Wait for the new version to serve, without calling it: its series
	// appears (with zero counts) once it is current.
	var newID string
	waitFor(t, 10*time.Second, "the fixed version's series", func() bool {
		for _, s := range scrape(t, h.g, "gatehouse_hook_calls_total") {
			if s.labels["hook"] == "s" && s.labels["version"] != oldID {
				newID = s.labels["version"]
				return true
			}
		}
		return false
	})
	failures := scrape(t, h.g, "gatehouse_hook_failures_total")
	calls := scrape(t, h.g, "gatehouse_hook_calls_total")
	if v, _ := value(failures, map[string]string{"hook": "s", "version": oldID, "kind": "error"}); v != broken {
		t.Errorf("old version %s: %v failures, want %d", oldID, v, broken)
	}
	if v, ok := value(failures, map[string]string{"hook": "s", "version": newID, "kind": "error"}); !ok || v != 0 {
		t.Errorf("fixed version %s before any call: %v failures (present %v), want 0", newID, v, ok)
	}
	if v, _ := value(calls, map[string]string{"hook": "s", "version": newID}); v != 0 {
		t.Errorf("fixed version %s before any call: %v calls", newID, v)
	}
	// Calls to the fixed version count under it (a request that still took
	// the old version counts under the old one).
	oldCalls, newCalls := broken, 0
	for newCalls < 3 {
		switch code := get(); code {
		case 418:
			newCalls++
		case 200:
			oldCalls++
		default:
			t.Fatalf("status %d", code)
		}
		h.next()
	}
	failures = scrape(t, h.g, "gatehouse_hook_failures_total")
	calls = scrape(t, h.g, "gatehouse_hook_calls_total")
	for _, w := range []struct {
		id            string
		calls, failed int
	}{{oldID, oldCalls, oldCalls}, {newID, newCalls, 0}} {
		if v, _ := value(calls, map[string]string{"hook": "s", "version": w.id}); v != float64(w.calls) {
			t.Errorf("version %s: %v calls, want %d", w.id, v, w.calls)
		}
		if v, _ := value(failures, map[string]string{"hook": "s", "version": w.id, "kind": "error"}); v != float64(w.failed) {
			t.Errorf("version %s: %v failures, want %d", w.id, v, w.failed)
		}
	}
	var rows []struct {
		Hook, Version string
		Current       bool
		Calls         int64
		Failures      map[string]int64
	}
	adminJSON(t, h.g, "/admin/api/hooks", &rows)
	if len(rows) != 2 || rows[0].Version != newID || !rows[0].Current || rows[0].Calls != int64(newCalls) || rows[0].Failures["error"] != 0 ||
		rows[1].Version != oldID || rows[1].Current || rows[1].Calls != int64(oldCalls) || rows[1].Failures["error"] != int64(oldCalls) {
		t.Errorf("/admin/api/hooks = %+v, want the fixed version (current, %d calls, no failures) then the broken one (%d calls, all failed)",
			rows, newCalls, oldCalls)
	}
}

// TestReloadDoesNotBlockScrapes pins the bug where a reload starting a slow
// plugin held the gateway's lock for the plugin's whole start: /metrics and
// /admin/config waited for it (up to start_timeout). The plugin here is a
// shell script that never completes the handshake.
func TestReloadDoesNotBlockScrapes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the slow plugin is a shell script")
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	plugin := filepath.Join(dir, "slow")
	if err := os.WriteFile(plugin, []byte(fmt.Sprintf("#!/bin/sh\n: > %q\nexec %q 30\n", started, sleep)), 0o755); err != nil {
		t.Fatal(err)
	}
	app := backend(t, named("app"))
	h := start(t, baseConfig, map[string]string{"APP": app})
	next := parse(t, baseConfig+`
plugins: [{name: slow, path: "{{PLUGIN}}", start_timeout: 3s}]
`, map[string]string{"APP": app, "PLUGIN": plugin})
	reloaded := make(chan error, 1)
	go func() { reloaded <- h.g.Reload(*next) }()
	waitFor(t, 10*time.Second, "the plugin process to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	for _, path := range []string{"/metrics", "/admin/config"} {
		answered := make(chan int, 1)
		go func() {
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Get("http://" + h.g.AdminAddr().String() + path)
			if err != nil {
				answered <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			answered <- resp.StatusCode
		}()
		select {
		case code := <-answered:
			if code != 200 {
				t.Errorf("%s during the reload: %d", path, code)
			}
		case err := <-reloaded:
			t.Fatalf("%s answered only after the reload's plugin start (%v)", path, err)
		}
	}
	err = <-reloaded
	var ce config.Errors
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "plugins[0].path") {
		t.Fatalf("reload with a plugin that never starts: %v", err)
	}
	// The running version still serves.
	if resp, err := client(t).Get(h.url + "/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the refused reload: %v", err)
	} else {
		resp.Body.Close()
	}
}

// scriptHosts counts the goroutines the script package runs: at rest, the
// watchers of the script hosts (an open host watches its file until it is
// closed).
func scriptHosts() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			// The memory watch's sampler runs while a runtime is made,
			// whatever host makes it: it is not a host's.
			count := 0
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "\ncreated by github.com/gatehouse/gatehouse/scripts.") && !strings.Contains(g, "scripts.memWatchLoop") {
					count++
				}
			}
			return count
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestRefusedListenerReloadLeaksNothing pins two bugs of a reload refused
// because a new listener's address is in use: the script hosts it had
// opened were never closed (each refusal left a host watching and compiling
// the file), and the error named no position in the configuration file.
func TestRefusedListenerReloadLeaksNothing(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	file := writeScript(t, dir, "v.js", `exports.validate = function(req) {
  return req.header("X-Key") === gatehouse.config.key ? undefined : {reject: {status: 401}};
};`)
	const text = `
listeners:
  - {name: public, address: "127.0.0.1:0"}{{MORE}}
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: v, file: "{{FILE}}", config: {key: "{{KEY}}"}}]
routes: [{name: app, service: app, hooks: [{script: v, budget: 1s}]}]
`
	vars := map[string]string{"APP": backend(t, named("app")), "FILE": file, "KEY": "a", "MORE": ""}
	h := start(t, text, vars)
	before := scriptHosts()
	if before < 1 {
		t.Fatalf("%d script hosts running", before)
	}
	// A new listener on a busy address, and a change of the script's config
	// (a new host for it).
	vars["KEY"], vars["MORE"] = "b", "\n  - {name: clash, address: \""+busy.Addr().String()+"\"}"
	next := parse(t, text, vars)
	err = h.g.Reload(*next)
	var ce config.Errors
	if !errors.As(err, &ce) || len(ce) != 1 {
		t.Fatalf("reload onto a busy address: %v, want a configuration error", err)
	}
	line := 1 + strings.Count(strings.ReplaceAll(text, "{{MORE}}", vars["MORE"])[:strings.Index(strings.ReplaceAll(text, "{{MORE}}", vars["MORE"]), "name: clash")], "\n")
	if e := ce[0]; e.File != "test.yaml" || e.Line != line || e.Col == 0 || e.Path != "listeners[1].address" ||
		!strings.HasPrefix(err.Error(), fmt.Sprintf("test.yaml:%d:%d: listeners[1].address: ", line, e.Col)) {
		t.Errorf("error %q (%+v), want it at test.yaml:%d, key listeners[1].address", err, e, line)
	}
	// The host the refused reload opened is closed again.
	deadline := time.Now().Add(5 * time.Second)
	for n := scriptHosts(); n != before; n = scriptHosts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d script hosts after the refused reload, want %d", n, before)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The running version serves on, with its script's config.
	c := client(t)
	for key, want := range map[string]int{"a": 200, "b": 401} {
		req, _ := http.NewRequest("GET", h.url+"/", nil)
		req.Header.Set("X-Key", key)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("key %s after the refused reload: %d, want %d", key, resp.StatusCode, want)
		}
	}
	// The same change without the clash applies, still one host per script.
	vars["MORE"] = ""
	if err := h.g.Reload(*parse(t, text, vars)); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for n := scriptHosts(); n != before; n = scriptHosts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d script hosts after the reload, want %d", n, before)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A script that keeps what it allocates is stopped by its memory bound
// (scripts[].max_call_memory), well before a long budget runs out: the
// binding's failure policy answers, the failure is of kind error and says
// why, and the gateway keeps serving.
func TestScriptMemoryBoundFollowsPolicy(t *testing.T) {
	app := backend(t, named("app"))
	dir := t.TempDir()
	js := writeScript(t, dir, "keep.js", `exports.validate = function (req) {
  if (req.path !== "/keep") return;
  var kept = [], s = "x".repeat(1 << 20);
  for (var i = 0; ; i++) kept.push(s.slice(1) + "y");
};`)
	cfg := parse(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: true}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: keep, file: "`+js+`", max_call_memory: 16MiB}]
routes:
  - {name: all, service: app, hooks: [{script: keep, budget: 20s, failure_status: 503}]}
`, map[string]string{"APP": app})
	access := &logBuf{}
	recs := make(chan rec, 10)
	g, _ := serveLogged(t, cfg, gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.New(access)), recordsTo(recs))
	c := client(t)
	url := "http://" + g.Addr("public").String()
	began := time.Now()
	resp, err := c.Get(url + "/keep")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if took := time.Since(began); resp.StatusCode != 503 || took > 10*time.Second {
		t.Fatalf("GET /keep: %d after %v, want the failure policy's 503 long before the 20s budget", resp.StatusCode, took)
	}
	select {
	case r := <-recs:
		if r.Outcome != "hook_failed" || !strings.Contains(r.Passport, "failed=error,policy=closed") {
			t.Errorf("record %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no record")
	}
	line := access.find(`"kind":"access"`, `"path":"/keep"`)
	if !strings.Contains(line, "Options.MaxCallMemory = 16.0 MiB") {
		t.Errorf("access log line does not say the memory bound stopped the hook: %s", line)
	}
	resp, err = c.Get(url + "/ok")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET /ok after: %d", resp.StatusCode)
	}
}

// The same hook bound twice in one scope (here a script's validate and
// route phases as two bindings) is one series per hook, scope and version:
// duplicate series made the registry fail every scrape of /metrics.
func TestHookBoundTwiceInAScopeIsOneSeries(t *testing.T) {
	dir := t.TempDir()
	file := writeScript(t, dir, "s.js", `exports.validate = function(req) {};
exports.route = function(req) { throw new Error("broken"); };`)
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
services: [{name: app, endpoints: ["{{APP}}"]}]
scripts: [{name: s, file: "{{FILE}}"}]
hooks: [{script: s, phases: [validate], budget: 1s}]
routes: [{name: app, service: app, hooks: [{script: s, phases: [validate], budget: 1s}, {script: s, phases: [route], budget: 1s, on_failure: open}]}]
`, map[string]string{"APP": backend(t, named("app")), "FILE": file})
	c := client(t)
	const n = 3
	for range n {
		resp, err := c.Get(h.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	resp, err := c.Get("http://" + h.g.AdminAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	calls := map[string]string{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "gatehouse_hook_calls_total{") {
			k, v, _ := strings.Cut(line, "} ")
			if _, dup := calls[k]; dup {
				t.Errorf("series %s} twice", k)
			}
			calls[k] = v
		}
		if strings.HasPrefix(line, `gatehouse_hook_failures_total{hook="s",kind="error",scope="app"`) && !strings.HasSuffix(line, fmt.Sprintf(" %d", n)) {
			t.Errorf("%s, want %d route failures", line, n)
		}
	}
	// Global: n validate calls; the route's two bindings: n validate and n route calls.
	want := map[string]string{"global": fmt.Sprint(n), "app": fmt.Sprint(2 * n)}
	for k, v := range calls {
		matched := false
		for scope, w := range want {
			if strings.Contains(k, `scope="`+scope+`"`) {
				matched = true
				if v != w {
					t.Errorf("%s} %s, want %s", k, v, w)
				}
			}
		}
		if !matched {
			t.Errorf("series %s} of an unexpected scope", k)
		}
	}
	if len(calls) != 2 {
		t.Errorf("hook call series %v, want one per scope", calls)
	}
}
