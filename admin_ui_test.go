package gatehouse_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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
// requests on the happy path and on a failure exit, the key numbers and a
// waterfall. It saves a screenshot (GATEHOUSE_ARTIFACT_DIR, or the test's
// artifact directory with -artifacts).
func TestAdminPageShowsLiveStateMachine(t *testing.T) {
	browser := findChromium(t)
	h := start(t, `
listeners: [{name: public, address: "127.0.0.1:0"}]
admin: {address: "127.0.0.1:0"}
logging: {level: error, access_log: false}
services: [{name: svc, endpoints: ["{{BACKEND}}"]}]
routes: [{name: api, service: svc, match: {path_prefix: /api}}]
`, map[string]string{"BACKEND": backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond) // a visible upstream wait in the waterfall
		w.Write([]byte("ok"))
	}))})
	// Traffic: the happy path, and requests no route matches.
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
			if i%4 == 3 {
				path = "/nowhere"
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

	const ready = `(() => {
		const n = (sel) => Number((document.querySelector(sel) || {dataset: {}}).dataset.count || 0);
		return n('[data-edge="RESP_BODY_SENT>DONE"]') > 0 && n('[data-edge="HEADERS_READ>FAILED"]') > 0 &&
			document.querySelectorAll('#waterfalls .wf').length > 0 && Number(document.body.dataset.updates || 0) >= 2;
	})()`
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+h.g.AdminAddr().String()+"/")); err != nil {
		t.Fatalf("admin page: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](ready, chromedp.WithPollingTimeout(showsLoad),
		chromedp.WithPollingInterval(200*time.Millisecond))); err != nil {
		failed("the page did not show traffic on the happy path and a failure exit within %v: %v", showsLoad, err)
	}
	type view struct {
		Happy, Failure           string
		HappyLabel, FailureLabel string
		FailureClass             string
		Rate, Overhead           string
	}
	v, err := chromedp.Run(ctx, chromedp.Evaluate[view](`(() => {
		const e = (k) => document.querySelector('[data-edge="' + k + '"]');
		return {Happy: e("RESP_BODY_SENT>DONE").dataset.count, Failure: e("HEADERS_READ>FAILED").dataset.count,
			HappyLabel: e("RESP_BODY_SENT>DONE").textContent, FailureLabel: e("HEADERS_READ>FAILED").textContent,
			FailureClass: e("HEADERS_READ>FAILED").getAttribute("class"),
			Rate: document.querySelector('[data-key="rate"]').textContent,
			Overhead: document.querySelector('[data-key="overhead"]').textContent};
	})()`))
	if err != nil {
		failed("reading the page: %v", err)
	}
	t.Logf("page: %+v", v)
	if v.Happy == "0" || v.Failure == "0" || v.HappyLabel == "" || v.FailureLabel == "" || v.Overhead == "–" {
		failed("graph shows no traffic: %+v", v)
	}
	if v.FailureClass != "edge failure hot" {
		failed("failure exit drawn with class %q, want it red and hot", v.FailureClass)
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
