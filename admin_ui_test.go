package gatehouse_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// findChromium returns the headless browser to drive, or skips (fails when
// GATEHOUSE_REQUIRE_CHROMIUM=1, as in CI).
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("GATEHOUSE_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium not found and GATEHOUSE_REQUIRE_CHROMIUM=1 (install the Debian package chromium)")
	}
	t.Skip("chromium not found: install the Debian package chromium to run the admin page test")
	return ""
}

// TestAdminPageShowsLiveStateMachine loads the admin page in a headless
// browser while traffic flows, and checks that the state machine shows
// requests on the happy path and on a failure exit with p99 times, that the
// key numbers are live (a rate above zero, sparklines with points: the page
// once showed 0.00 req/s and empty sparklines for the first seconds because
// the meters fold in every 5 s), a waterfall, and the hooks table with the
// bound script's name, version and error rate. It saves a screenshot
// (GATEHOUSE_ARTIFACT_DIR, or the test's artifact directory with -artifacts).
func TestAdminPageShowsLiveStateMachine(t *testing.T) {
	browser := findChromium(t)
	// A validate hook that fails (throws) on /api/boom: on_failure open lets
	// those requests through, and the hook's error rate is 1 in 8 calls.
	dir := t.TempDir()
	script := filepath.Join(dir, "gate.js")
	if err := os.WriteFile(script, []byte(`exports.validate = function (req) {
  if (req.path === "/api/boom") { throw new Error("boom"); }
  return { labels: { checked: "yes" } };
};
`), 0o644); err != nil {
		t.Fatal(err)
	}
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
services: [{name: svc, endpoints: ["{{BACKEND}}"]}]
scripts: [{name: gate, file: "{{SCRIPT}}"}]
routes: [{name: api, service: svc, match: {path_prefix: /api}, hooks: [{script: gate, budget: 1s, on_failure: open}]}]
`, map[string]string{"SCRIPT": script, "BACKEND": backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // a visible upstream wait in the waterfall
		w.Write([]byte("ok"))
	}))})
	// Traffic: the happy path, the hook failing, and requests no route matches.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := &http.Client{Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			path := "/api/x"
			switch i % 8 {
			case 3, 7:
				path = "/nowhere"
			case 5:
				path = "/api/boom"
			}
			if resp, err := c.Get(h.url + path); err == nil {
				resp.Body.Close()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// Bounds for a busy CI machine (2 cores, go test -race ./... running
	// alongside): chromium may take tens of seconds to start there. The
	// page polls the admin API every second.
	const (
		whole     = 3 * time.Minute  // browser start, page load and polling
		showsLoad = 90 * time.Second // until the graph shows both edges
	)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1500, 1100))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, whole)
	defer cancel()
	// failed saves what the page showed, then fails the test.
	failed := func(format string, args ...any) {
		t.Helper()
		sctx, scancel := context.WithTimeout(bctx, 20*time.Second)
		defer scancel()
		if png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)); err == nil {
			saveArtifact(t, "admin-page-failed.png", png)
		}
		if st, err := chromedp.Run(sctx, chromedp.Evaluate[string](`document.getElementById("status").textContent + " / " + (document.body.dataset.updates || "0") + " updates"`)); err == nil {
			t.Logf("page status: %s", st)
		}
		t.Fatalf(format, args...)
	}

	// Everything the page should show once traffic has flowed a few
	// seconds; polled, since the page polls the admin API every second.
	const ready = `(() => {
		const n = (sel) => Number((document.querySelector(sel) || {dataset: {}}).dataset.count || 0);
		const hook = document.querySelector('#hooks tr[data-hook]');
		return n('[data-edge="RESP_BODY_SENT>DONE"]') > 0 && n('[data-edge="HEADERS_READ>FAILED"]') > 0 &&
			document.querySelectorAll('#waterfalls .wf').length > 0 && Number(document.body.dataset.updates || 0) >= 2 &&
			parseFloat(document.querySelector('[data-key="rate"]').textContent) > 0 &&
			Number(document.querySelector('#key-rate polyline').getAttribute("data-points") || 0) >= 3 &&
			hook !== null && !hook.cells[4].textContent.startsWith("0.00");
	})()`
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+h.g.AdminAddr().String()+"/")); err != nil {
		t.Fatalf("admin page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](ready, chromedp.WithPollingTimeout(showsLoad),
		chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		failed("the page did not show live traffic (edges, rate, sparklines, hook errors) within %v: %v", showsLoad, err)
	}
	type view struct {
		Happy, Failure           string
		HappyLabel, FailureLabel string
		FailureClass             string
		Rate, RateAvg, Overhead  string
		RatePoints, RateLine     string
		OverheadPoints           string
		Hooks                    [][]string
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[view](`(() => {
		const e = (k) => document.querySelector('[data-edge="' + k + '"]');
		const line = (id) => document.querySelector('#' + id + ' polyline');
		return {Happy: e("RESP_BODY_SENT>DONE").dataset.count, Failure: e("HEADERS_READ>FAILED").dataset.count,
			HappyLabel: e("RESP_BODY_SENT>DONE").textContent, FailureLabel: e("HEADERS_READ>FAILED").textContent,
			FailureClass: e("HEADERS_READ>FAILED").getAttribute("class"),
			Rate: document.querySelector('[data-key="rate"]').textContent,
			RateAvg: document.querySelector('[data-key="rate-avg"]').textContent,
			Overhead: document.querySelector('[data-key="overhead"]').textContent,
			RatePoints: line("key-rate").getAttribute("data-points"), RateLine: line("key-rate").getAttribute("points"),
			OverheadPoints: line("key-overhead").getAttribute("points"),
			Hooks: Array.from(document.querySelectorAll('#hooks tr[data-hook]'), tr => Array.from(tr.cells, c => c.textContent))};
	})()`))
	if err != nil {
		failed("reading the page: %v", err)
	}
	t.Logf("page: %+v", v)
	if v.Happy == "0" || v.Failure == "0" || v.Overhead == "–" {
		failed("graph shows no traffic: %+v", v)
	}
	if v.FailureClass != "edge failure hot" {
		failed("failure exit drawn with class %q, want it red and hot", v.FailureClass)
	}
	// Edge labels: "recent/total · p99 <duration>".
	label := regexp.MustCompile(`^\d+(\.\d+)?[kM]?/\d+(\.\d+)?[kM]? · p99 \d+(\.\d+)?(µs|ms|s)$`)
	for _, l := range []string{v.HappyLabel, v.FailureLabel} {
		if !label.MatchString(l) {
			failed("edge label %q does not read as counts and a p99 duration", l)
		}
	}
	if !regexp.MustCompile(`^\d+(\.\d+)?(µs|ms|s)$`).MatchString(v.Overhead) {
		failed("overhead p99.9 %q is not a duration", v.Overhead)
	}
	rate, err := strconv.ParseFloat(strings.TrimSuffix(v.Rate, " req/s"), 64)
	if err != nil || rate <= 0 || !strings.HasSuffix(v.Rate, " req/s") || !strings.Contains(v.RateAvg, "1 min") {
		failed("rate %q (averages %q): want a live rate above zero while traffic flows", v.Rate, v.RateAvg)
	}
	// Sparklines: points drawn, and the rate's above the baseline (y = 38 is zero).
	pts := strings.Fields(v.RateLine)
	if n, _ := strconv.Atoi(v.RatePoints); n < 3 || len(pts) != n || len(strings.Fields(v.OverheadPoints)) < 3 {
		failed("sparklines: rate %s points %q, overhead %q", v.RatePoints, v.RateLine, v.OverheadPoints)
	}
	above := false
	for _, p := range pts {
		if _, y, ok := strings.Cut(p, ","); ok {
			if f, err := strconv.ParseFloat(y, 64); err == nil && f < 37 {
				above = true
			}
		}
	}
	if !above {
		failed("rate sparkline %q is flat at zero", v.RateLine)
	}
	// Hooks table: hook, scope, version, calls, errors, mean.
	if len(v.Hooks) != 1 || len(v.Hooks[0]) != 6 {
		failed("hooks table rows %q, want the one bound script", v.Hooks)
	}
	row := v.Hooks[0]
	var api []struct{ Hook, Version string }
	adminJSON(t, h.g, "/admin/api/hooks", &api)
	if len(api) != 1 || !strings.Contains(row[0], "gate") || row[0] != api[0].Hook || row[2] != api[0].Version || row[2] == "" || row[2] == "–" {
		failed("hooks row %q, want the script gate with its version (API: %+v)", row, api)
	}
	errRate, err := strconv.ParseFloat(strings.TrimSuffix(row[4], " %"), 64)
	if err != nil || errRate < 5 || errRate > 25 { // one call in six throws (/nowhere calls no hook)
		failed("hook error rate %q, want about 17 %%", row[4])
	}
	if calls, err := strconv.Atoi(row[3]); err != nil || calls == 0 {
		failed("hook calls %q", row[3])
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100 is a PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(png))
	}
	saveArtifact(t, "admin-page.png", png)
}

// saveArtifact writes a test artifact to GATEHOUSE_ARTIFACT_DIR (.ci/run
// sets .ci/artifacts), or else to the test's artifact directory (kept with
// go test -artifacts, a temporary directory otherwise).
func saveArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dir := os.Getenv("GATEHOUSE_ARTIFACT_DIR")
	if dir == "" {
		dir = t.ArtifactDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifact: %s (%d bytes)", path, len(data))
}
