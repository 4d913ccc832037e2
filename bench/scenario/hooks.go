package scenario

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
)

func init() {
	Register(Scenario{
		Name:    "hooks",
		Summary: "Gatehouse without hooks, with a JS validate and a JS route hook, with a Go hook: throughput, CPU/request, latency, passport overhead",
		Run:     hooks,
	})
}

// hookScripts are the benchmark's JavaScript hooks, written into the work
// directory for each run.
//
//go:embed testdata/hooks/*.js
var hookScripts embed.FS

// hooksPlans: quick finishes in under a minute; full in about seven and a
// half.
var hooksPlans = map[harness.Mode]harness.Plan{
	harness.Quick: {
		Reps: 3, Conns: 64,
		Warmup: 200 * time.Millisecond, Closed: time.Second, Open: 600 * time.Millisecond,
		FixedRates: []float64{2500},
		Timeout:    5 * time.Second,
		MaxLagP99:  time.Millisecond, MaxLag: 20 * time.Millisecond,
	},
	harness.Full: {
		Reps: 5, Conns: 64,
		Warmup: 2 * time.Second, Closed: 5 * time.Second, Open: 8 * time.Second,
		FixedRates: []float64{2500},
		Timeout:    5 * time.Second,
		MaxLagP99:  time.Millisecond, MaxLag: 20 * time.Millisecond,
	},
}

// Peer names of the hooks scenario.
const (
	hooksBase   = "gatehouse"
	hooksJS     = "gatehouse+js"
	hooksNoop   = "gatehouse+js-noop"
	hooksGo     = "gatehouse+go"
	hooksPlugin = "gatehouse+plugin"
)

// hooksTarget is the bound on what the JS validate and route hooks
// may cost in throughput at saturation; pluginTarget the plugins issue's
// bound on what one (empty) plugin hook may cost.
const (
	hooksTarget  = 0.10
	pluginTarget = 0.25
)

func hooks(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	return runHooks(ctx, e, hooksPlans[e.Mode])
}

// hooksPeers returns the compared peers; the scripts are written into dir.
// pluginBin is the no-op plugin's binary, "" when it could not be built
// (why says why).
func hooksPeers(dir, pluginBin, why string) ([]harness.Peer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, name := range []string{"validate.js", "route.js", "noop.js"} {
		b, err := hookScripts.ReadFile("testdata/hooks/" + name)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return nil, err
		}
	}
	// Bindings at the top level run on every route; appended to the
	// harness's default configuration, they change nothing else.
	js := fmt.Sprintf(`scripts:
  - {name: validate, file: %q}
  - {name: route, file: %q}
hooks:
  - {script: validate, budget: 5ms}
  - {script: route, budget: 5ms}
`, filepath.Join(dir, "validate.js"), filepath.Join(dir, "route.js"))
	noop := fmt.Sprintf(`scripts:
  - {name: noop, file: %q}
hooks:
  - {script: noop, budget: 5ms}
`, filepath.Join(dir, "noop.js"))
	// require_header would reject the closed loop's requests: wrk sends no
	// header but Host. response_headers runs on every request too.
	goHook := `hooks:
  - {go: response_headers, config: {set: {X-Frame-Options: DENY}}, budget: 5ms}
`
	var pluginPeer harness.Peer = unavailablePeer{name: hooksPlugin, reason: "not built: " + why}
	if pluginBin != "" {
		plug := fmt.Sprintf(`plugins:
  - {name: noop, path: %q}
hooks:
  - {plugin: noop, phases: [validate], budget: 50ms}
`, pluginBin)
		pluginPeer = &harness.Gatehouse{Label: hooksPlugin, Config: func(c harness.GatehouseConfig) string { return harness.DefaultGatehouseConfig(c) + plug }}
	}
	return []harness.Peer{
		harness.Direct{},
		&harness.Gatehouse{},
		&harness.Gatehouse{Label: hooksJS, Config: func(c harness.GatehouseConfig) string { return harness.DefaultGatehouseConfig(c) + js }},
		&harness.Gatehouse{Label: hooksNoop, Config: func(c harness.GatehouseConfig) string { return harness.DefaultGatehouseConfig(c) + noop }},
		&harness.Gatehouse{Label: hooksGo, Config: func(c harness.GatehouseConfig) string { return harness.DefaultGatehouseConfig(c) + goHook }},
		pluginPeer,
	}, nil
}

func runHooks(ctx context.Context, e *harness.Env, plan harness.Plan) (*harness.Report, error) {
	pluginBin, err := e.Build(ctx, "./bench/cmd/noopplugin", "noopplugin")
	why := ""
	if err != nil {
		pluginBin, why = "", err.Error()
	}
	peers, err := hooksPeers(filepath.Join(e.WorkDir, "hooks"), pluginBin, why)
	if err != nil {
		return nil, err
	}
	rep, err := harness.Compare(ctx, e, harness.CompareSpec{
		Name:  "hooks",
		Title: "Gatehouse benchmark: the cost of hooks",
		Peers: peers,
		Plan:  plan,
		Notes: []string{
			"`gatehouse`: the harness's default configuration, no hook. `gatehouse+js`: the same with two JavaScript hooks bound globally (so on every request): `validate` (allowed methods, bounded path and query, no `/../`, a label) and `route` (an upstream header from the label, a `/v1` prefix stripped) — `bench/scenario/testdata/hooks/*.js`, budget 5ms each. `gatehouse+js-noop`: one JavaScript validate hook that returns at once — the JS host's own cost per call. `gatehouse+go`: a compiled-in Go hook on every request as a reference, `response_headers` (sets `X-Frame-Options`, respond phase), budget 5ms; `require_header` cannot be the reference here, because the closed loop (wrk) sends no header but `Host` and would be rejected. `gatehouse+plugin`: one go-plugin hook on every request, `bench/cmd/noopplugin`, whose validate allows the request at once (what a plugin call costs before the plugin does any work), budget 50ms: the plugin process shares the gateway's CPU here, and at saturation a call can wait for it longer than 5ms, which would measure the failure policy instead of the cost.",
		},
	})
	if rep != nil {
		notes := hookCostNotes(rep)
		if err == nil {
			cold, cerr := hookColdStart(ctx, e, peers)
			if cerr != nil {
				cold = "Cold start: not measured: " + cerr.Error()
			}
			notes = append(notes, cold)
		}
		rep.Notes = append(notes, rep.Notes...)
	}
	return rep, err
}

// coldRequests is how many requests hookColdStart sends each configuration.
const coldRequests = 64

// hookColdStart starts each Gatehouse configuration afresh in front of a
// backend of its own and sends it coldRequests requests at once.
// A JavaScript runtime's first calls may overrun the binding's budget, and
// under the default failure policy (closed) that is a 503: the benchmark's
// warm-up hides it, this shows it.
func hookColdStart(ctx context.Context, e *harness.Env, peers []harness.Peer) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }),
		ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: coldRequests}}
	defer client.CloseIdleConnections()
	var b strings.Builder
	fmt.Fprintf(&b, "**Cold start**: each configuration started afresh, then %d requests at once, each on a connection of its own, as when a gateway restarts under traffic (after the start's readiness check, which is itself retried until it gets a 200). *hook timeouts* are Gatehouse's own count (`gatehouse_hook_failures_total{kind=\"timeout\"}`), the readiness check included:\n\n", coldRequests)
	b.WriteString("| configuration | failed of the first requests | hook timeouts |\n|---|---:|---:|\n")
	for _, p := range peers {
		gh, ok := p.(*harness.Gatehouse)
		if !ok || !wantPeer(e, gh.Name()) {
			continue
		}
		var admin string
		mk := gh.Config
		if mk == nil {
			mk = harness.DefaultGatehouseConfig
		}
		cold := &harness.Gatehouse{Label: gh.Name() + "-cold", Config: func(c harness.GatehouseConfig) string { admin = c.Admin; return mk(c) }}
		inst, err := cold.Start(ctx, e, harness.StartConfig{Backend: ln.Addr().String(), Conns: 8})
		if err != nil {
			fmt.Fprintf(&b, "| %s | start failed: %s | |\n", gh.Name(), strings.ReplaceAll(err.Error(), "|", "/"))
			continue
		}
		// All at once, as when a gateway restarts under traffic: each
		// request on its connection, so that every runtime of the pool
		// is needed.
		var mu sync.Mutex
		var wg sync.WaitGroup
		failed, statuses := 0, map[int]int{}
		for range coldRequests {
			wg.Go(func() {
				status := 0
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+inst.Addr+"/", nil)
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				if status != http.StatusOK {
					mu.Lock()
					failed++
					statuses[status]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		timeouts := "n/a"
		if n, err := hookTimeouts(ctx, admin); err == nil {
			timeouts = strconv.FormatInt(n, 10)
		}
		inst.Stop()
		cell := fmt.Sprintf("%d of %d", failed, coldRequests)
		if failed > 0 {
			var parts []string
			for st, n := range statuses {
				parts = append(parts, fmt.Sprintf("%d× %d", n, st))
			}
			slices.Sort(parts)
			cell += " (" + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", gh.Name(), cell, timeouts)
	}
	return b.String(), nil
}

// hookTimeouts sums Gatehouse's hook timeouts from its /metrics.
func hookTimeouts(ctx context.Context, admin string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, err
	}
	var n int64
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "gatehouse_hook_failures_total{") && strings.Contains(line, `kind="timeout"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err == nil {
				n += int64(v)
			}
		}
	}
	return n, nil
}

// unavailablePeer is a configuration that cannot run yet: reported as
// skipped, with its reason, in every table.
type unavailablePeer struct{ name, reason string }

func (p unavailablePeer) Name() string { return p.name }

func (p unavailablePeer) Prepare(context.Context, *harness.Env) (string, error) {
	return "", &harness.Unavailable{Reason: p.reason}
}

func (p unavailablePeer) Start(context.Context, *harness.Env, harness.StartConfig) (*harness.Instance, error) {
	return nil, errors.New(p.reason)
}

// medianOf returns the median of f over pr's valid runs selected by sel,
// and how many there were.
func medianOf(pr *harness.PeerResult, sel func(*harness.Run) bool, f func(*harness.Run) float64) (float64, int) {
	var vs []float64
	for _, r := range pr.Runs {
		if r.Valid && sel(r) {
			if v := f(r); !math.IsNaN(v) {
				vs = append(vs, v)
			}
		}
	}
	if len(vs) == 0 {
		return math.NaN(), 0
	}
	return statOf(vs).median, len(vs)
}

func isSaturation(r *harness.Run) bool { return r.Kind == "closed" }
func isOpen(r *harness.Run) bool       { return r.Kind == "open" && r.Level == 0 }

// paired is the stat of f over the repetitions in which both pr and base
// have a valid saturation run. Repetitions go round the peers, so pairing
// by repetition keeps a machine that slows down mid-run out of the
// difference.
func paired(pr, base *harness.PeerResult, f func(r, b *harness.Run) float64) stat {
	var vs []float64
	for _, r := range pr.Runs {
		if !r.Valid || !isSaturation(r) {
			continue
		}
		for _, b := range base.Runs {
			if b.Valid && isSaturation(b) && b.Rep == r.Rep {
				if v := f(r, b); !math.IsNaN(v) && !math.IsInf(v, 0) {
					vs = append(vs, v)
				}
			}
		}
	}
	return statOf(vs)
}

// hookCostNotes summarizes each configuration against Gatehouse without
// hooks, and checks the JS hooks against the target.
func hookCostNotes(rep *harness.Report) []string {
	var base *harness.PeerResult
	for _, pr := range rep.Peers {
		if pr.Name == hooksBase && pr.Skipped == "" {
			base = pr
		}
	}
	rate := "the fixed rate"
	if len(rep.Levels) > 0 {
		rate = fmt.Sprintf("%.0f req/s", rep.Levels[0].Rate)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**Hook cost summary.** Δ: each repetition against `%s` without hooks in the same repetition (the repetitions go round the configurations, so a machine that slows down mid-run moves both), median and range over the repetitions; the other cells are medians of the valid runs; latency and passport overhead at %s, µs:\n\n", hooksBase, rate)
	b.WriteString("| configuration | req/s at saturation | Δ throughput | CPU µs/req at saturation | Δ CPU µs/req | p50 | p99 | passport overhead p50 | p99.9 |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	pctf := func(v float64) string { return fmt.Sprintf("%+.1f%%", v*100) }
	signed := func(v float64) string { return fmt.Sprintf("%+.1f", v) }
	type cost struct{ throughput, cpu stat }
	costs := map[string]cost{}
	for _, pr := range rep.Peers {
		if !strings.HasPrefix(pr.Name, hooksBase) {
			continue
		}
		if pr.Skipped != "" {
			fmt.Fprintf(&b, "| %s | %s | | | | | | | |\n", pr.Name, pr.Skipped)
			continue
		}
		rps, _ := medianOf(pr, isSaturation, func(r *harness.Run) float64 { return r.RPS })
		cpu, _ := medianOf(pr, isSaturation, func(r *harness.Run) float64 { return r.CPUPerReq })
		p50, _ := medianOf(pr, isOpen, func(r *harness.Run) float64 { return float64(r.Lat.P50) })
		p99, _ := medianOf(pr, isOpen, func(r *harness.Run) float64 { return float64(r.Lat.P99) })
		hasO := func(r *harness.Run) bool { return isOpen(r) && r.Overhead != nil }
		o50, _ := medianOf(pr, hasO, func(r *harness.Run) float64 { return r.Overhead.P50 })
		o999, _ := medianOf(pr, hasO, func(r *harness.Run) float64 { return r.Overhead.P999 })
		dT, dC := "—", "—"
		if base != nil && pr != base {
			dt := paired(pr, base, func(r, b *harness.Run) float64 { return r.RPS/b.RPS - 1 })
			dc := paired(pr, base, func(r, b *harness.Run) float64 { return r.CPUPerReq - b.CPUPerReq })
			if dt.n > 0 {
				costs[pr.Name] = cost{dt, paired(pr, base, func(r, b *harness.Run) float64 { return b.CPUPerReq/r.CPUPerReq - 1 })}
				dT, dC = fmtRange(dt, pctf), fmtRange(dc, signed)
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", pr.Name, f0(rps), dT, f1(cpu), dC, f0(p50), f0(p99), f0(o50), f0(o999))
	}
	notes := []string{b.String()}
	c, ok := costs[hooksJS]
	if !ok {
		return append(notes, fmt.Sprintf("Target (JS validate + route cost ≤ %.0f%% of throughput): **not measured** (no repetition with valid saturation runs of both `%s` and `%s`).", hooksTarget*100, hooksBase, hooksJS))
	}
	verdict := "**met**"
	if -c.throughput.median > hooksTarget {
		verdict = "**NOT met**"
	}
	n := fmt.Sprintf("Target (JS validate + route cost ≤ %.0f%% of throughput at saturation): %s — throughput %.1f%% lower than without hooks (median over %d repetitions); from CPU per request, a proxy-bound throughput %.1f%% lower.",
		hooksTarget*100, verdict, -c.throughput.median*100, c.throughput.n, -c.cpu.median*100)
	if util, _ := medianOf(base, isSaturation, func(r *harness.Run) float64 { return r.CPUUtil }); util < 0.9 {
		n += fmt.Sprintf(" Gatehouse without hooks used %.0f%% of its CPU at saturation: the load side limited it, so the throughput difference understates the cost; the CPU figure does not.", util*100)
	}
	notes = append(notes, n)
	if _, ok := costs[hooksPlugin]; !ok {
		notes = append(notes, fmt.Sprintf("Target (one plugin hook cost ≤ %.0f%% of throughput): **not measured** (no repetition with valid saturation runs of both `%s` and `%s`).", pluginTarget*100, hooksBase, hooksPlugin))
	}
	if pc, ok := costs[hooksPlugin]; ok {
		verdict := "**met**"
		if -pc.throughput.median > pluginTarget {
			verdict = "**NOT met**"
		}
		notes = append(notes, fmt.Sprintf("Target (one plugin hook cost ≤ %.0f%% of throughput at saturation): %s — throughput %.1f%% lower than without hooks (median over %d repetitions); from CPU per request, a proxy-bound throughput %.1f%% lower.",
			pluginTarget*100, verdict, -pc.throughput.median*100, pc.throughput.n, -pc.cpu.median*100))
	}
	return notes
}

func f1(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}
