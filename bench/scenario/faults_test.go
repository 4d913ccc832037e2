package scenario

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/bench/fleet"
	"github.com/gatehouse/gatehouse/bench/harness"
)

// TestScenariosSmoke runs the hooks, slow_node and retry_storm scenarios
// end to end on tiny plans (a few seconds each, one environment, so one set
// of builds), so that they cannot rot unnoticed. Numbers mean nothing here;
// the checks are that every configuration ran, the hooks and the faults
// took effect, and the reports were written. nginx is skipped when absent.
func TestScenariosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Gatehouse and runs load for about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e, err := harness.NewEnv(ctx, harness.Options{
		Mode: harness.Quick, OutDir: t.TempDir(), WorkDir: t.TempDir(), Log: tlog{t},
		Command: "go test ./bench/scenario -run TestScenariosSmoke", BuildTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, name := range []string{"hooks", "slow_node", "retry_storm"} {
		if _, ok := Lookup(name); !ok {
			t.Errorf("%s not registered", name)
		}
	}
	t.Run("hooks", func(t *testing.T) { smokeHooks(ctx, t, e) })
	t.Run("slow_node", func(t *testing.T) { smokeSlowNode(ctx, t, e) })
	t.Run("retry_storm", func(t *testing.T) { smokeRetryStorm(ctx, t, e) })
}

func smokeHooks(ctx context.Context, t *testing.T, e *harness.Env) {
	rep, err := runHooks(ctx, e, harness.Plan{
		Reps: 1, Conns: 8, Closed: time.Second, Open: 500 * time.Millisecond,
		FixedRates: []float64{200}, Timeout: 5 * time.Second,
		MaxLagP99: 5 * time.Millisecond, MaxLag: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, pr := range rep.Peers {
		if pr.Skipped != "" {
			t.Errorf("%s skipped: %s", pr.Name, pr.Skipped)
			continue
		}
		ran[pr.Name] = true
		for _, f := range pr.Failures {
			t.Errorf("%s: %s", pr.Name, f)
		}
		if len(pr.Runs) != 2 {
			t.Errorf("%s: %d runs, want a closed and an open one", pr.Name, len(pr.Runs))
		}
		// A hook that rejected the benchmark's own requests (wrk sends
		// nothing but Host) would fail them all; on a busy machine a hook
		// may overrun its 5ms budget now and then (503, fail-closed).
		for _, r := range pr.Runs {
			if r.Requests == 0 || r.Errors*2 > r.Requests {
				t.Errorf("%s %s run: %d requests, %d errors (%s)", pr.Name, r.Kind, r.Requests, r.Errors, r.ErrorSample)
			} else if r.Errors > 0 {
				t.Logf("%s %s run: %d errors of %d (%s)", pr.Name, r.Kind, r.Errors, r.Requests, r.ErrorSample)
			}
		}
	}
	for _, must := range []string{"direct", hooksBase, hooksJS, hooksNoop, hooksGo, hooksPlugin} {
		if !ran[must] {
			t.Errorf("%s did not run", must)
		}
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{"Hook cost summary", "Target (JS validate + route", "Target (one plugin hook", "**Cold start**", "| " + hooksBase + " | 0 of 64 | 0 |", "| " + hooksJS + " | "} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q: %s", want, notes)
		}
	}
	path, err := harness.WriteReport(e, rep)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(path)
	for _, want := range []string{"| " + hooksJS + " | ", "| " + hooksPlugin + " | ", "## " + hooksJS + ": overhead from its passports"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}

	// The hooks took effect: the JS validate hook turns away a method, the
	// route hook rewrites the path and sets a header, the Go hook sets a
	// response header.
	var mu sync.Mutex
	var seenPath, seenClient string
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seenPath, seenClient = r.URL.Path, r.Header.Get("X-Client")
		mu.Unlock()
		io.WriteString(w, "ok\n")
	}))
	defer backend.Close()
	pluginBin, err := e.Build(ctx, "./bench/cmd/noopplugin", "noopplugin")
	if err != nil {
		t.Fatal(err)
	}
	peers, err := hooksPeers(filepath.Join(e.WorkDir, "hooks-check"), pluginBin, "")
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *harness.Instance {
		for _, p := range peers {
			if p.Name() == name {
				inst, err := p.Start(ctx, e, harness.StartConfig{Backend: backend.Listener.Addr().String(), Conns: 4})
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return inst
			}
		}
		t.Fatalf("no peer %s", name)
		return nil
	}
	do := func(method, url string) (*http.Response, string) {
		req, _ := http.NewRequestWithContext(ctx, method, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return resp, strings.TrimSpace(string(b))
	}
	js := start(hooksJS)
	defer js.Stop()
	if resp, body := do(http.MethodPatch, "http://"+js.Addr+"/"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PATCH through the JS validate hook: %s %q, want 405", resp.Status, body)
	}
	// On a busy machine a call may overrun its budget (503): try again.
	for try := 1; ; try++ {
		resp, body := do(http.MethodGet, "http://"+js.Addr+"/v1/orders")
		if resp.StatusCode == http.StatusOK {
			break
		}
		if try == 5 {
			t.Errorf("GET /v1/orders through the JS hooks: %s %q", resp.Status, body)
			break
		}
		t.Logf("GET /v1/orders through the JS hooks: %s %q", resp.Status, body)
	}
	mu.Lock()
	if seenPath != "/orders" || seenClient == "" {
		t.Errorf("the backend saw path %q, X-Client %q: the JS route hook did not run", seenPath, seenClient)
	}
	mu.Unlock()
	goh := start(hooksGo)
	defer goh.Stop()
	if resp, _ := do(http.MethodGet, "http://"+goh.Addr+"/"); resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("the Go hook did not set X-Frame-Options: %v", resp.Header)
	}
}

func smokeSlowNode(ctx context.Context, t *testing.T, e *harness.Env) {
	plan := slowNodePlan{Reps: 1, Endpoints: 3, Rate: 200, Conns: 16, Warmup: 300 * time.Millisecond, Scale: 0.04,
		Timeout: 5 * time.Second, MaxLagP99: 5 * time.Millisecond, MaxLag: 50 * time.Millisecond}
	res, err := runSlowNode(ctx, e, plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	if len(res.Runs) != len(slowNodeConfigs) {
		t.Fatalf("%d runs, want one per configuration (%d)", len(res.Runs), len(slowNodeConfigs))
	}
	for _, run := range res.Runs {
		if run.Requests == 0 || run.Latency.Histogram == nil || run.P9999 <= 0 || run.Fleet == nil {
			t.Errorf("%s: %d requests, p99.99 %dµs, fleet stats %v", run.Config, run.Requests, run.P9999, run.Fleet != nil)
			continue
		}
		restarts := run.Fleet.Total(func(e fleet.EndpointStats) int64 { return e.Restarts })
		slowed := run.slowed()
		switch {
		case run.Config == "round_robin" && (restarts != int64(plan.Endpoints) || slowed == 0):
			t.Errorf("round_robin: %d restarts, %d requests answered slowly: the schedule did not apply", restarts, slowed)
		case strings.HasPrefix(run.Config, "no faults") && (restarts != 0 || slowed != 0 || run.Errors != 0):
			t.Errorf("%s: %d restarts, %d slow answers, %d errors", run.Config, restarts, slowed, run.Errors)
		}
	}
	path, err := res.write(e)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(path)
	for _, want := range []string{"## Result", "| round_robin | ", "| least_in_flight | ", "| p2c_ewma | ", "p99.99", "## Fault schedule of rep 1", "slow_node-latency.svg", "## All runs"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, f := range []string{"slow_node.json", "slow_node-latency.svg", "slow_node-slowed.svg"} {
		if _, err := os.Stat(filepath.Join(e.OutDir, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
}

func smokeRetryStorm(ctx context.Context, t *testing.T, e *harness.Env) {
	plan := retryStormPlan{Reps: 1, Endpoints: 3, Rate: 200, Conns: 8, Warmup: 300 * time.Millisecond,
		Healthy: 500 * time.Millisecond, Outage: time.Second, Recovery: time.Second, Bucket: 100 * time.Millisecond,
		Timeout: 5 * time.Second, MaxLagP99: 5 * time.Millisecond, MaxLag: 50 * time.Millisecond}
	res, err := runRetryStorm(ctx, e, plan)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Failures {
		t.Error(f)
	}
	// The outage must show in every run; the numbers are checked only
	// where the schedule held (the generator kept time, the switches
	// landed in their phases): on a starved machine they say nothing.
	mult := map[string][]float64{}
	for _, run := range res.Runs {
		if len(run.Phases) != 3 {
			t.Errorf("%s: %d phases", run.Config, len(run.Phases))
			continue
		}
		h, o := run.Phases[0], run.Phases[1]
		if run.Valid && (h.Sent == 0 || o.Failed < o.Sent/2) {
			t.Errorf("%s: %d/%d failed while healthy, %d/%d during the outage", run.Config, h.Failed, h.Sent, o.Failed, o.Sent)
		}
		if !run.Valid || h.Failed != 0 || o.Failed < o.Sent*9/10 {
			t.Logf("%s: the schedule did not hold here (%v; %d/%d failed while healthy, %d/%d during the outage): not checked",
				run.Config, run.Problems, h.Failed, h.Sent, o.Failed, o.Sent)
			continue
		}
		for _, ph := range run.Phases {
			mult[run.Config] = append(mult[run.Config], ph.Multiplier)
		}
	}
	// Healthy: one attempt per request. Outage: the budget holds retries
	// to a fraction of the requests (plus its floor, large at this rate);
	// naive retries quadruple the load.
	if budget, naive := mult["gatehouse (budget)"], mult["gatehouse (naive)"]; len(budget) == 3 && len(naive) == 3 {
		if budget[0] < 0.9 || budget[0] > 1.1 || naive[0] < 0.9 || naive[0] > 1.1 {
			t.Errorf("healthy multipliers %.2f and %.2f, want about 1", budget[0], naive[0])
		}
		if naive[1] < 3 || budget[1] > naive[1]-1 {
			t.Errorf("outage multipliers: budget %.2f, naive %.2f", budget[1], naive[1])
		}
	}
	if lookPath("nginx") != "" {
		// nginx tries each server at most once per request.
		tries := float64(min(4, plan.Endpoints))
		if m := mult["nginx (max_fails=0)"]; len(m) == 3 && m[1] < tries-0.5 {
			t.Errorf("nginx with max_fails=0: multipliers %v, want about %.0f during the outage", m, tries)
		}
	} else if res.Skipped["nginx (tries 4)"] == "" {
		t.Error("nginx is not installed, but its configurations are not reported as skipped")
	}
	path, err := res.write(e)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := os.ReadFile(path)
	for _, want := range []string{"## Upstream load multiplier", "| gatehouse (budget) | ", "| gatehouse (naive) | ", "## What the client saw", "retry_storm-multiplier.svg", "## All runs"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, f := range []string{"retry_storm.json", "retry_storm-multiplier.svg", "retry_storm-errors.svg"} {
		if _, err := os.Stat(filepath.Join(e.OutDir, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
}

// TestSlowNodeSchedule pins the fault schedule's shape: deterministic per
// seed, every endpoint restarted once and back to ok, events in order and
// within the run.
func TestSlowNodeSchedule(t *testing.T) {
	a, length := slowNodeSchedule(1, 5, 1)
	b, _ := slowNodeSchedule(1, 5, 1)
	c, _ := slowNodeSchedule(2, 5, 1)
	if length != time.Minute {
		t.Errorf("length %v, want 1m", length)
	}
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("%d and %d events for the same seed", len(a), len(b))
	}
	same := true
	for i := range a {
		same = same && a[i] == b[i]
	}
	if !same {
		t.Error("the same seed gave different schedules")
	}
	if len(a) == len(c) {
		diff := false
		for i := range a {
			diff = diff || a[i] != c[i]
		}
		if !diff {
			t.Error("seeds 1 and 2 gave the same schedule")
		}
	}
	downs := map[int]int{}
	last := map[int]fleet.Mode{}
	for i, ev := range a {
		if i > 0 && ev.At < a[i-1].At {
			t.Errorf("event %d (%v) before event %d (%v)", i, ev, i-1, a[i-1])
		}
		if ev.At < 0 || ev.At > length {
			t.Errorf("event %v outside the run", ev)
		}
		if ev.Mode == fleet.ModeDown {
			downs[ev.Endpoint]++
		}
		last[ev.Endpoint] = ev.Mode
	}
	for ep := range 5 {
		if downs[ep] != 1 || last[ep] != fleet.ModeOK {
			t.Errorf("endpoint %d: %d restarts, last mode %q", ep, downs[ep], last[ep])
		}
	}
	if p := (fleet.Plan{Events: a}); p.Check(5) != nil {
		t.Errorf("the fleet refuses the schedule: %v", p.Check(5))
	}
}
