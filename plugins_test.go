package gatehouse_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gatehouse "github.com/gatehouse/gatehouse"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/rs/zerolog"
)

// pluginBins are the plugin binaries built for TestPlugins.
type pluginBins struct {
	dir, authz, quota, misbehave, misbehave2 string
}

// buildPlugins builds the example plugins and the misbehaving test plugin
// (twice: builds "1" and "2") into dir.
func buildPlugins(t *testing.T, dir string) pluginBins {
	t.Helper()
	b := pluginBins{dir: dir, authz: filepath.Join(dir, "authz"), quota: filepath.Join(dir, "quota"),
		misbehave: filepath.Join(dir, "misbehave"), misbehave2: filepath.Join(dir, "misbehave2")}
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "./examples/plugins/authz", "./examples/plugins/quota", "./plugins/testdata/misbehave"},
		{"build", "-o", b.misbehave2, "-ldflags", "-X main.build=2", "./plugins/testdata/misbehave"},
	} {
		if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return b
}

// TestPlugins runs plugin binaries through the gateway end to end. The
// binaries are built once for all subtests.
func TestPlugins(t *testing.T) {
	bins := buildPlugins(t, t.TempDir())
	t.Run("AuthzAndQuota", func(t *testing.T) { testAuthzAndQuota(t, bins) })
	t.Run("FailurePolicy", func(t *testing.T) { testPluginFailurePolicy(t, bins) })
	t.Run("KilledUnderLoad", func(t *testing.T) { testPluginKilledUnderLoad(t, bins) })
	t.Run("ReadinessWhileDown", func(t *testing.T) { testPluginReadiness(t, bins) })
	t.Run("HotSwap", func(t *testing.T) { testPluginHotSwap(t, bins) })
	t.Run("StartAndReloadRefused", func(t *testing.T) { testPluginStartRefused(t, bins) })
	t.Run("Config", func(t *testing.T) { testPluginConfig(t, bins) })
	t.Run("BodyBytes", func(t *testing.T) { testPluginBodyBytes(t, bins) })
	t.Run("SingleRoute", func(t *testing.T) { testPluginSingleRoute(t, bins) })
}

// pluginConfig is a gateway with one route and the given plugins and
// global hook bindings (YAML list items, indented by 2; none when empty).
func pluginConfig(plugins, hooks string) string {
	s := `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
limits:
  request: {deadline: 5s}
  upstream: {connect_timeout: 500ms, header_timeout: 2s}
routes: [{name: app, service: app}]
services: [{name: app, endpoints: ["{{APP}}"]}]
`
	if plugins != "" {
		s += "plugins:\n" + plugins + "\nhooks:\n" + hooks + "\n"
	}
	return s
}

// getWith sends a GET with the given header pairs.
func getWith(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// hs256 signs a JWT for the authz example.
func hs256(secret string, claims map[string]any) string {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	body, _ := json.Marshal(claims)
	msg := head + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(msg))
	return msg + "." + enc.EncodeToString(mac.Sum(nil))
}

// pluginProcesses lists the running plugin processes of this test process
// and the socket directories of its plugins.
func pluginLeftovers() (procs []int, dirs []string) {
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == self {
				procs = append(procs, pid)
			}
		}
	}
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("gatehouse-plugin-%d-*", self)))
	return procs, matches
}

// checkNoLeftovers fails when a plugin process or socket directory of this
// test process is left; call it after the gateway shut down.
func checkNoLeftovers(t *testing.T) {
	t.Helper()
	procs, dirs := pluginLeftovers()
	if len(procs) > 0 || len(dirs) > 0 {
		t.Errorf("left after Shutdown: processes %v, socket directories %v", procs, dirs)
	}
}

func pluginStat(g *gatehouse.Gateway, name string) (st struct {
	PID                         int
	Up                          bool
	Restarts, Reloads, Refusals int64
	Calls                       int64
	Failures                    map[string]int64
	LastError                   string
}) {
	for _, s := range g.PluginStats() {
		if s.Name == name {
			st.PID, st.Up, st.Restarts, st.Reloads, st.Refusals = s.PID, s.Up, s.Restarts, s.Reloads, s.Refusals
			st.Calls, st.Failures, st.LastError = s.Calls, s.Failures, s.LastError
		}
	}
	return st
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// testAuthzAndQuota: the authz example allows and denies (401, 403) and
// labels the request; the quota example, a later phase, reads those labels
// (a user over quota is turned away with 429); a third plugin's respond
// phase sees the labels too. /metrics counts the calls; /readyz is true.
func testAuthzAndQuota(t *testing.T, bins pluginBins) {
	dir := t.TempDir()
	keys, quotaFile := filepath.Join(dir, "keys"), filepath.Join(dir, "quota")
	os.WriteFile(keys, []byte("k-gold alice gold\nk-free bob free\nk-over carol free\n"), 0o600)
	os.WriteFile(quotaFile, []byte("carol over\n"), 0o600)
	const secret = "0123456789abcdef0123"
	plugins := fmt.Sprintf(`  - name: authz
    path: %s
    config: {secret: %q, keys_file: %q, rules: [{path_prefix: /admin, tiers: [gold]}]}
  - name: quota
    path: %s
    config: {tiers: {gold: {priority: critical}, free: {priority: bulk}}, quota_file: %q}
  - name: echo
    path: %s
    env: ["SECRET_TOKEN=s3cr3t"]`, bins.authz, secret, keys, bins.quota, quotaFile, bins.misbehave)
	hooks := `  - {plugin: authz, budget: 2s}
  - {plugin: quota, budget: 2s}
  - {plugin: echo, phases: [respond], budget: 2s}`
	app := backend(t, named("app"))
	// Admission on, so that the tiers quota assigns show in its metrics.
	gwConfig := strings.Replace(pluginConfig(plugins, hooks), `endpoints: ["{{APP}}"]}`, `endpoints: ["{{APP}}"], admission: {enabled: true}}`, 1)
	h := start(t, gwConfig, map[string]string{"APP": app})
	c := client(t)

	resp, body := getWith(t, c, h.url+"/x")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no credentials: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body = getWith(t, c, h.url+"/x", "Authorization", "Bearer "+hs256("wrong-secret-0123456789", map[string]any{"sub": "x", "tier": "gold", "exp": time.Now().Add(time.Hour).Unix()})); resp.StatusCode != 401 {
		t.Fatalf("badly signed token: %d %q", resp.StatusCode, body)
	}
	if resp, body = getWith(t, c, h.url+"/admin/x", "X-Api-Key", "k-free"); resp.StatusCode != 403 {
		t.Fatalf("free tier on /admin: %d %q", resp.StatusCode, body)
	}
	if resp, body = getWith(t, c, h.url+"/x", "X-Api-Key", "k-over"); resp.StatusCode != 429 {
		t.Fatalf("user over quota (quota reads authz's user label): %d %q", resp.StatusCode, body)
	}
	resp, body = getWith(t, c, h.url+"/admin/x", "X-Api-Key", "k-gold")
	if resp.StatusCode != 200 || body != "app" || resp.Header.Get("X-Plugin-Labels") != "tier=gold,user=alice" {
		t.Fatalf("gold key on /admin: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	tok := hs256(secret, map[string]any{"sub": "dave", "tier": "free", "exp": time.Now().Add(time.Hour).Unix()})
	resp, body = getWith(t, c, h.url+"/x", "Authorization", "Bearer "+tok)
	if resp.StatusCode != 200 || resp.Header.Get("X-Plugin-Labels") != "tier=free,user=dave" {
		t.Fatalf("signed token: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	admin := "http://" + h.g.AdminAddr().String()
	if resp, _ := getWith(t, c, admin+"/readyz"); resp.StatusCode != 200 || !h.g.PluginsReady() {
		t.Fatalf("/readyz with every plugin up: %d", resp.StatusCode)
	}
	_, metrics := getWith(t, c, admin+"/metrics")
	for _, want := range []string{`gatehouse_plugin_calls_total{plugin="authz"}`, `gatehouse_plugin_up{plugin="quota",`,
		`gatehouse_plugin_call_seconds_bucket{plugin="authz",le=`, `gatehouse_plugin_failures_total{kind="timeout",plugin="authz"} 0`,
		`gatehouse_plugin_restarts_total{plugin="echo"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The priority quota gave each request, as admission saw it: alice
	// (gold) critical, dave (free) bulk; carol was turned away by quota
	// itself before admission, the others by authz.
	for series, want := range map[string]float64{
		`gatehouse_admission_admitted_total{service="app",tier="critical"}`: 1,
		`gatehouse_admission_admitted_total{service="app",tier="bulk"}`:     1,
		`gatehouse_admission_admitted_total{service="app",tier="default"}`:  0,
	} {
		if got, ok := pageValue(metrics, series); !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", series, got, ok, want)
		}
	}
	for _, st := range h.g.PluginStats() {
		if st.Transport != "frames" {
			t.Errorf("plugin %s called on %s, want the framed call socket", st.Name, st.Transport)
		}
		if st.Name == "authz" && st.Calls < 6 {
			t.Errorf("authz calls counted: %d", st.Calls)
		}
	}
	_, cfg := getWith(t, c, admin+"/admin/config")
	if strings.Contains(cfg, "s3cr3t") {
		t.Errorf("/admin/config shows a plugin's environment: %s", cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.g.Shutdown(ctx)
	checkNoLeftovers(t)
}

// testPluginFailurePolicy: a plugin that overruns its budget, errors or
// returns an invalid decision follows its binding's failure policy, within
// the budget and a small slack.
func testPluginFailurePolicy(t *testing.T, bins pluginBins) {
	plugins := fmt.Sprintf("  - {name: mb, path: %s}", bins.misbehave)
	hooks := `  - {plugin: mb, phases: [validate], budget: 250ms, on_failure: closed, failure_status: 503}`
	app := backend(t, named("app"))
	h := start(t, pluginConfig(plugins, hooks), map[string]string{"APP": app})
	c := client(t)
	// The first calls warm the connection up; on a loaded machine they may
	// take longer than the budget.
	waitFor(t, 5*time.Second, "a well-behaved call answered", func() bool {
		resp, _ := getWith(t, c, h.url+"/")
		return resp.StatusCode == 200
	})
	before := pluginStat(h.g, "mb").Failures
	for drained := false; !drained; { // the warm-up's records
		select {
		case <-h.recs:
		default:
			drained = true
		}
	}
	// The call returns at its deadline whatever the plugin does (the mux
	// waits for the answer only within the context, and the hook chain
	// exits at once): the slack is scheduling and the request's own path.
	const budget, slack = 250 * time.Millisecond, 100 * time.Millisecond
	for _, tc := range []struct{ header, value, kind string }{
		{"X-Sleep", "2s", "timeout"},
		{"X-Error", "1", "plugin_error"},
		{"X-Invalid", "1", "invalid"},
		{"X-Panic", "1", "plugin_error"},
	} {
		begun := time.Now()
		resp, body := getWith(t, c, h.url+"/", tc.header, tc.value)
		took := time.Since(begun)
		t.Logf("%s: answered after %s (budget %s)", tc.header, took.Round(time.Millisecond), budget)
		if resp.StatusCode != 503 {
			t.Errorf("%s: status %d %q, want 503 (on_failure: closed)", tc.header, resp.StatusCode, body)
		}
		if took > budget+slack {
			t.Errorf("%s: answered after %s, want within budget %s + %s", tc.header, took, budget, slack)
		}
		r := h.expect("hook_failed")
		if !strings.Contains(r.Err, "mb") {
			t.Errorf("%s: error %q does not name the plugin", tc.header, r.Err)
		}
	}
	st := pluginStat(h.g, "mb")
	for k, n := range before {
		st.Failures[k] -= n
	}
	if st.Failures["timeout"] != 1 || st.Failures["plugin_error"] != 2 || st.Failures["invalid"] != 0 {
		// An invalid decision is the core's finding (the plugin's call
		// itself succeeded): it is counted by the binding, not the plugin.
		t.Errorf("plugin failures by kind: %v", st.Failures)
	}
	// Open: the request goes on as if the plugin had no opinion.
	open := strings.ReplaceAll(pluginConfig(plugins, hooks), "on_failure: closed", "on_failure: open")
	if err := h.g.Reload(*parse(t, open, map[string]string{"APP": app})); err != nil {
		t.Fatal(err)
	}
	begun := time.Now()
	if resp, body := getWith(t, c, h.url+"/", "X-Sleep", "2s"); resp.StatusCode != 200 || time.Since(begun) > budget+slack {
		t.Errorf("open policy: %d %q after %s", resp.StatusCode, body, time.Since(begun))
	}
	// The plugin still sleeps in the calls it overran: Shutdown stops it
	// anyway, and nothing is left.
	shutdown(t, h)
}

// shutdown shuts the gateway down and checks that no plugin process or
// socket directory is left.
func shutdown(t *testing.T, h *harness) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.g.Shutdown(ctx)
	checkNoLeftovers(t)
}

// pageValue returns the value of series (name and labels, as /metrics
// prints them) in a /metrics page.
func pageValue(page, series string) (float64, bool) {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// testPluginKilledUnderLoad: a plugin killed with SIGKILL under load: the
// gateway keeps serving, requests in the gap get the failure policy at once
// (not after their budget), and the plugin is back within about a second.
func testPluginKilledUnderLoad(t *testing.T, bins pluginBins) {
	plugins := fmt.Sprintf("  - {name: mb, path: %s, restart: {backoff_min: 50ms}}", bins.misbehave)
	hooks := `  - {plugin: mb, phases: [validate], budget: 1s, on_failure: closed, failure_status: 503}`
	app := backend(t, named("app"))
	started := time.Now()
	h := start(t, pluginConfig(plugins, hooks), map[string]string{"APP": app})
	startTime := time.Since(started) // what a plugin start costs on this machine now, at least
	oldPID := pluginStat(h.g, "mb").PID
	if oldPID == 0 {
		t.Fatal("plugin not up")
	}
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		slowest  time.Duration // of the failed requests
		okAfter  atomic.Int64  // successes after the kill
		killed   atomic.Bool
		killedAt atomic.Int64 // UnixNano, once the SIGKILL is sent
		firstOK  atomic.Int64 // UnixNano: the first success of a request begun after the kill
	)
	c := client(t)
	t.Cleanup(func() { stop.Store(true); wg.Wait() }) // before the gateway shuts down
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				begun := time.Now()
				req, _ := http.NewRequest("GET", h.url+"/", nil)
				resp, err := c.Do(req)
				if err != nil {
					if !stop.Load() {
						t.Errorf("request failed at the client: %v", err)
					}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				took := time.Since(begun)
				mu.Lock()
				statuses[resp.StatusCode]++
				if resp.StatusCode != 200 {
					slowest = max(slowest, took)
				}
				mu.Unlock()
				if resp.StatusCode == 200 && killed.Load() {
					okAfter.Add(1)
				}
				// Begun after the kill, a success is the new process's.
				if k := killedAt.Load(); resp.StatusCode == 200 && k != 0 && begun.UnixNano() > k {
					firstOK.CompareAndSwap(0, time.Now().UnixNano())
				}
				time.Sleep(time.Millisecond) // paces the load
			}
		}()
	}
	waitFor(t, max(5*time.Second, 5*startTime), "calls flowing", func() bool { return pluginStat(h.g, "mb").Calls > 50 })
	killed.Store(true)
	if err := syscall.Kill(oldPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// SIGKILL is pending once kill returns: the old process answers
	// nothing more.
	killedAt.Store(time.Now().UnixNano())
	waitFor(t, max(5*time.Second, 5*startTime), "a request served by the new process", func() bool { return firstOK.Load() != 0 })
	back := time.Duration(firstOK.Load() - killedAt.Load())
	waitFor(t, 5*time.Second, "requests served by the new process", func() bool { return okAfter.Load() > 20 })
	stop.Store(true)
	wg.Wait()
	t.Logf("back after %s (a start took %s); statuses %v; slowest failure %s", back.Round(time.Millisecond),
		startTime.Round(time.Millisecond), statuses, slowest)
	// A backoff of 50ms and one start (about 150ms under -race on 2
	// cores): the "back within a second", from the kill to the
	// first request the new process answered.
	if back > time.Second {
		t.Errorf("plugin back after %s (a start took %s), want within 1s of the kill", back, startTime)
	}
	mu.Lock()
	defer mu.Unlock()
	for s := range statuses {
		if s != 200 && s != 503 {
			t.Errorf("status %d (%d times): want 200, or 503 from the failure policy", s, statuses[s])
		}
	}
	// The gap's requests failed fast: far below the 1s budget.
	if slowest > 500*time.Millisecond {
		t.Errorf("a request in the gap took %s: the policy should answer at once while the plugin is down", slowest)
	}
	st := pluginStat(h.g, "mb")
	if st.Restarts != 1 || !strings.Contains(st.LastError, "signal: killed") {
		t.Errorf("after the kill: restarts %d, last error %q", st.Restarts, st.LastError)
	}
	if syscall.Kill(oldPID, 0) == nil {
		t.Errorf("killed process %d not reaped", oldPID)
	}
	// /metrics says the same: one restart, and as many plugin failures as
	// requests the failure policy answered (each a 503: closed, validate
	// only), most of them unavailable.
	_, page := getWith(t, c, "http://"+h.g.AdminAddr().String()+"/metrics")
	if v, ok := pageValue(page, `gatehouse_plugin_restarts_total{plugin="mb"}`); !ok || v != 1 {
		t.Errorf("gatehouse_plugin_restarts_total = %v (found %v), want 1", v, ok)
	}
	var failures float64
	for _, k := range []string{"plugin_error", "timeout", "unavailable", "invalid", "too_large", "overloaded", "transport"} {
		v, ok := pageValue(page, `gatehouse_plugin_failures_total{kind="`+k+`",plugin="mb"}`)
		if !ok {
			t.Errorf("/metrics lacks the plugin's %s failures", k)
		}
		if float64(st.Failures[k]) != v {
			t.Errorf("/metrics: %s failures %v, the plugin's counters %d", k, v, st.Failures[k])
		}
		failures += v
	}
	if unavailable, _ := pageValue(page, `gatehouse_plugin_failures_total{kind="unavailable",plugin="mb"}`); unavailable == 0 ||
		failures != float64(statuses[503]) {
		t.Errorf("/metrics: %v plugin failures (%v unavailable), want one per 503 answered (%d) and some unavailable", failures, unavailable, statuses[503])
	}
	shutdown(t, h)
}

// testPluginReadiness: /readyz answers 503, naming the plugin, while a
// plugin is down (here for its 1s restart backoff), and 200 once it is back.
func testPluginReadiness(t *testing.T, bins pluginBins) {
	plugins := fmt.Sprintf("  - {name: mb, path: %s, restart: {backoff_min: 1s}}", bins.misbehave)
	hooks := `  - {plugin: mb, phases: [validate], budget: 1s, on_failure: closed, failure_status: 503}`
	h := start(t, pluginConfig(plugins, hooks), map[string]string{"APP": backend(t, named("app"))})
	c := client(t)
	readyz := "http://" + h.g.AdminAddr().String() + "/readyz"
	waitFor(t, 5*time.Second, "ready", func() bool { resp, _ := getWith(t, c, readyz); return resp.StatusCode == 200 })
	pid := pluginStat(h.g, "mb").PID
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "not ready while the plugin is down", func() bool {
		resp, body := getWith(t, c, readyz)
		return resp.StatusCode == 503 && strings.Contains(body, "plugin mb is down")
	})
	if resp, _ := getWith(t, c, h.url+"/"); resp.StatusCode != 503 {
		t.Errorf("request while the plugin is down: %d, want 503 (on_failure: closed)", resp.StatusCode)
	}
	waitFor(t, 10*time.Second, "ready again", func() bool { resp, _ := getWith(t, c, readyz); return resp.StatusCode == 200 })
	if st := pluginStat(h.g, "mb"); !st.Up || st.PID == pid {
		t.Errorf("after the restart: %+v", st)
	}
	if resp, _ := getWith(t, c, h.url+"/"); resp.StatusCode != 200 {
		t.Errorf("request once the plugin is back: %d", resp.StatusCode)
	}
	shutdown(t, h)
}

// testPluginHotSwap: a plugin binary replaced on disk is hot-swapped: a
// call in flight finishes on the old process, new requests go to the new
// build, and the old process stops. Then a broken binary is refused and
// the running version keeps serving.
func testPluginHotSwap(t *testing.T, bins pluginBins) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mb")
	copyExe(t, bins.misbehave, path)
	plugins := fmt.Sprintf("  - {name: mb, path: %s, watch: true}", path)
	hooks := `  - {plugin: mb, budget: 4s}`
	app := backend(t, named("app"))
	h := start(t, pluginConfig(plugins, hooks), map[string]string{"APP": app})
	c := client(t)
	resp, _ := getWith(t, c, h.url+"/")
	oldPID := resp.Header.Get("X-Plugin-Pid")
	if resp.StatusCode != 200 || resp.Header.Get("X-Plugin-Build") != "1" || oldPID == "" {
		t.Fatalf("first version: %d %v", resp.StatusCode, resp.Header)
	}
	// A slow call in flight on the old version.
	slow := make(chan *http.Response, 1)
	go func() {
		req, _ := http.NewRequest("GET", h.url+"/", nil)
		req.Header.Set("X-Sleep", "1500ms")
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("slow request: %v", err)
			slow <- nil
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		slow <- resp
	}()
	waitFor(t, 5*time.Second, "slow call started", func() bool { return pluginStat(h.g, "mb").Calls >= 3 })
	copyExe(t, bins.misbehave2, path)
	waitFor(t, 10*time.Second, "new build serving", func() bool {
		resp, _ := getWith(t, c, h.url+"/")
		return resp.Header.Get("X-Plugin-Build") == "2"
	})
	r := <-slow
	if r == nil || r.StatusCode != 200 || r.Header.Get("X-Plugin-Validated-By") != oldPID {
		t.Fatalf("call in flight during the swap: %+v", r)
	}
	pid, _ := strconv.Atoi(oldPID)
	waitFor(t, 5*time.Second, "old process stopped", func() bool { return syscall.Kill(pid, 0) != nil })
	if st := pluginStat(h.g, "mb"); st.Reloads != 1 || st.Restarts != 0 {
		t.Errorf("after the swap: reloads %d restarts %d", st.Reloads, st.Restarts)
	}

	// A broken binary: refused, build 2 keeps serving.
	broken := filepath.Join(dir, "broken")
	os.WriteFile(broken, []byte("#!/bin/sh\necho broken >&2\nexit 3\n"), 0o755)
	if err := os.Rename(broken, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "broken version refused", func() bool { return pluginStat(h.g, "mb").Refusals == 1 })
	if st := pluginStat(h.g, "mb"); !strings.Contains(st.LastError, "broken") {
		t.Errorf("refusal does not show the plugin's stderr: %q", st.LastError)
	}
	if resp, _ := getWith(t, c, h.url+"/"); resp.StatusCode != 200 || resp.Header.Get("X-Plugin-Build") != "2" {
		t.Fatalf("after a refused version: %d %v", resp.StatusCode, resp.Header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.g.Shutdown(ctx)
	checkNoLeftovers(t)
}

// copyExe installs src at dst as a deploy does: a new file renamed over
// the old one (writing into a running binary fails with "text file busy").
func copyExe(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

// testPluginStartRefused: a plugin that cannot start fails New with a
// clear error and leaves nothing behind; on Reload it refuses the new
// configuration and the running one keeps serving; a changed plugin
// configuration is applied as a hot reload.
func testPluginStartRefused(t *testing.T, bins pluginBins) {
	app := backend(t, named("app"))
	hooks := `  - {plugin: mb, phases: [respond], budget: 2s}`
	bad := fmt.Sprintf("  - {name: mb, path: %s, env: [MISBEHAVE_START=exit], start_timeout: 5s}", bins.misbehave)
	_, err := gatehouse.New(*parse(t, pluginConfig(bad, hooks), map[string]string{"APP": app}),
		gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop()))
	if err == nil || !strings.Contains(err.Error(), "plugins[0].path") || !strings.Contains(err.Error(), "misbehave: refusing to start") {
		t.Fatalf("New with a plugin that exits at start: %v", err)
	}
	checkNoLeftovers(t)
	garbage := strings.ReplaceAll(bad, "MISBEHAVE_START=exit", "MISBEHAVE_START=garbage")
	if _, err := gatehouse.New(*parse(t, pluginConfig(garbage, hooks), map[string]string{"APP": app}),
		gatehouse.WithLogger(zerolog.Nop()), gatehouse.WithAccessLog(zerolog.Nop())); err == nil || !strings.Contains(err.Error(), "stdout") {
		t.Fatalf("New with a plugin that writes garbage to stdout: %v", err)
	}
	checkNoLeftovers(t)

	good := fmt.Sprintf("  - {name: mb, path: %s, config: {version: a}}", bins.misbehave)
	h := start(t, pluginConfig(good, hooks), map[string]string{"APP": app})
	c := client(t)
	resp, _ := getWith(t, c, h.url+"/")
	pid := resp.Header.Get("X-Plugin-Pid")
	if resp.StatusCode != 200 || pid == "" {
		t.Fatalf("serving: %d %v", resp.StatusCode, resp.Header)
	}
	err = h.g.Reload(*parse(t, pluginConfig(bad, hooks), map[string]string{"APP": app}))
	if err == nil || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("Reload to a plugin that does not start: %v", err)
	}
	if resp, _ := getWith(t, c, h.url+"/"); resp.StatusCode != 200 || resp.Header.Get("X-Plugin-Pid") != pid {
		t.Fatalf("after a refused reload: %d %v (was pid %s)", resp.StatusCode, resp.Header, pid)
	}
	// A changed plugin config is a new version of the same plugin.
	if err := h.g.Reload(*parse(t, pluginConfig(strings.ReplaceAll(good, "version: a", "version: b"), hooks), map[string]string{"APP": app})); err != nil {
		t.Fatal(err)
	}
	if resp, _ := getWith(t, c, h.url+"/"); resp.StatusCode != 200 || resp.Header.Get("X-Plugin-Pid") == pid {
		t.Fatalf("after a config change: %d %v (was pid %s)", resp.StatusCode, resp.Header, pid)
	}
	// A removed plugin is stopped.
	old, _ := strconv.Atoi(pluginStatPID(h.g))
	if err := h.g.Reload(*parse(t, pluginConfig("", ""), map[string]string{"APP": app})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "removed plugin stopped", func() bool { return syscall.Kill(old, 0) != nil })
	if resp, _ := getWith(t, c, h.url+"/"); resp.StatusCode != 200 || resp.Header.Get("X-Plugin-Pid") != "" {
		t.Fatalf("without plugins: %d %v", resp.StatusCode, resp.Header)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h.g.Shutdown(ctx)
	checkNoLeftovers(t)
}

func pluginStatPID(g *gatehouse.Gateway) string {
	return strconv.Itoa(pluginStat(g, "mb").PID)
}

// testPluginConfig: plugin settings and bindings are validated with the
// file, line and key of each problem.
func testPluginConfig(t *testing.T, bins pluginBins) {
	notExec := filepath.Join(t.TempDir(), "plain")
	os.WriteFile(notExec, []byte("x"), 0o644)
	text := `listeners: [{name: public, address: "127.0.0.1:0"}]
plugins:
  - name: a
    path: ` + notExec + `
  - name: b
    path: ` + bins.misbehave + `
    restart: {backoff_min: 2s, backoff_max: 1s}
    max_message_bytes: 1KiB
    config: {x: 1}
    config_file: /nonexistent/file
    health: {interval: 0s}
  - name: b
    path: /nonexistent/plugin
hooks:
  - {plugin: nope}
  - {plugin: a, script: s}
routes: [{name: app, service: app}]
services: [{name: app, endpoints: ["127.0.0.1:1"]}]
`
	_, err := config.Parse("gw.yaml", []byte(text))
	if err == nil {
		t.Fatal("invalid plugin configuration accepted")
	}
	got := err.Error()
	for _, want := range []string{
		"gw.yaml:4:5: plugins[0].path: " + strconv.Quote(notExec) + " is not an executable file",
		"gw.yaml:11:14: plugins[1].health.interval: must be a positive duration",
		"plugins[1].restart.backoff_max: must be at least restart.backoff_min",
		"plugins[1].max_message_bytes: must be at least 4KiB",
		"plugins[1]: set at most one of config and config_file",
		"plugins[1].config_file: cannot read",
		"gw.yaml:12:5: plugins[2].name: duplicate plugin name \"b\"",
		"plugins[2].path: cannot use \"/nonexistent/plugin\"",
		"gw.yaml:15:6: hooks[0].plugin: unknown plugin \"nope\" (known: a, b, b)",
		"hooks[1]: names more than one hook",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors lack %q; got:\n%s", want, got)
		}
	}
	// Defaults: every bound set and finite.
	cfg, err := config.Parse("gw.yaml", []byte("listeners: [{name: p, address: \"127.0.0.1:0\"}]\nplugins: [{name: a, path: "+bins.misbehave+"}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Plugins[0]
	if p.StartTimeout.Std() != 10*time.Second || p.Health.Interval.Std() != time.Second || p.Restart.BackoffMax.Std() != 30*time.Second ||
		p.MaxConcurrent != 1024 || p.MaxMessageBytes != config.MiB || p.Cache.MaxTTL.Std() != time.Minute || !p.Watch || p.DrainTimeout.Std() != 10*time.Second {
		t.Errorf("defaults: %+v", p)
	}
	o, err := gatehouse.PluginOptions(p, zerolog.Nop())
	if err != nil || o.MaxBodyBytes != 64<<10 || o.HealthFailures != 3 || o.RestartBackoff != 50*time.Millisecond {
		t.Errorf("options from the defaults: %+v %v", o, err)
	}
	if !slices.Equal(o.Args, p.Args) {
		t.Errorf("args: %v", o.Args)
	}
}

// testPluginBodyBytes: a binding's body_bytes bounds the request body the
// plugin sees (here 8 of 16 bytes, marked truncated); the service still
// gets the whole body.
func testPluginBodyBytes(t *testing.T, bins pluginBins) {
	plugins := fmt.Sprintf("  - {name: mb, path: %s}", bins.misbehave)
	hooks := `  - {plugin: mb, budget: 2s, body_bytes: 8}`
	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %s", len(b), b)
	}))
	h := start(t, pluginConfig(plugins, hooks), map[string]string{"APP": app})
	c := client(t)
	post := func(body string) *http.Response {
		t.Helper()
		resp, err := c.Post(h.url+"/", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("%d %s", len(body), body); resp.StatusCode != 200 || string(got) != want {
			t.Fatalf("POST %q: %d %q, want 200 %q (the service gets the whole body)", body, resp.StatusCode, got, want)
		}
		return resp
	}
	if resp := post("0123456789abcdef"); resp.Header.Get("X-Plugin-Body") != "01234567" || resp.Header.Get("X-Plugin-Truncated") != "true" {
		t.Errorf("plugin saw body %q (truncated %q), want the first 8 bytes, truncated",
			resp.Header.Get("X-Plugin-Body"), resp.Header.Get("X-Plugin-Truncated"))
	}
	if resp := post("short"); resp.Header.Get("X-Plugin-Body") != "short" || resp.Header.Get("X-Plugin-Truncated") != "false" {
		t.Errorf("plugin saw body %q (truncated %q), want all of it", resp.Header.Get("X-Plugin-Body"), resp.Header.Get("X-Plugin-Truncated"))
	}
	shutdown(t, h)
}

// testPluginSingleRoute: a plugin bound to one route runs for that route's
// requests only.
func testPluginSingleRoute(t *testing.T, bins pluginBins) {
	cfg := fmt.Sprintf(`
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {access_log: false}
limits:
  request: {deadline: 5s}
  upstream: {connect_timeout: 500ms, header_timeout: 2s}
plugins:
  - {name: mb, path: %s}
routes:
  - name: guarded
    match: {path_prefix: /guarded}
    service: app
    hooks: [{plugin: mb, budget: 2s}]
  - {name: open, service: app}
services: [{name: app, endpoints: ["{{APP}}"]}]
`, bins.misbehave)
	h := start(t, cfg, map[string]string{"APP": backend(t, named("app"))})
	c := client(t)
	resp, body := getWith(t, c, h.url+"/guarded/x")
	if resp.StatusCode != 200 || body != "app" || resp.Header.Get("X-Plugin-Pid") == "" {
		t.Fatalf("bound route: %d %q %v, want the plugin's headers", resp.StatusCode, body, resp.Header)
	}
	calls := pluginStat(h.g, "mb").Calls
	for _, path := range []string{"/", "/other", "/guardedx"} {
		resp, body := getWith(t, c, h.url+path)
		if resp.StatusCode != 200 || body != "app" || resp.Header.Get("X-Plugin-Pid") != "" {
			t.Errorf("%s (route open): %d %q %v, want no plugin", path, resp.StatusCode, body, resp.Header)
		}
	}
	if got := pluginStat(h.g, "mb").Calls; got != calls {
		t.Errorf("plugin called %d times for requests of the other route", got-calls)
	}
	// An error on the bound route follows the binding's policy (closed,
	// 503); the other route does not call the plugin at all.
	if resp, _ := getWith(t, c, h.url+"/guarded/x", "X-Error", "1"); resp.StatusCode != 503 {
		t.Errorf("plugin error on the bound route: %d, want 503", resp.StatusCode)
	}
	if resp, _ := getWith(t, c, h.url+"/x", "X-Error", "1"); resp.StatusCode != 200 {
		t.Errorf("X-Error on the other route: %d, want 200", resp.StatusCode)
	}
	shutdown(t, h)
}
