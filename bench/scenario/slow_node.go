package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/gatehouse/gatehouse/bench/fleet"
	"github.com/gatehouse/gatehouse/bench/harness"
	"github.com/gatehouse/gatehouse/bench/load"
	"github.com/gatehouse/gatehouse/bench/plot"
)

func init() {
	Register(Scenario{
		Name:    "slow_node",
		Summary: "a deploy (endpoints restarting cold) and slow episodes on a 5-endpoint fleet, one open-loop rate through Gatehouse with each balancer: p50…p99.99, errors",
		Run:     slowNode,
	})
}

// slowNodePlan says what slow_node measures.
type slowNodePlan struct {
	// Reps is how often each configuration runs; rep i uses fault schedule
	// i (the same for every configuration).
	Reps int `json:"reps"`
	// Endpoints is the fleet's size.
	Endpoints int `json:"endpoints"`
	// Rate is the open loop's rate, requests per second; Conns its
	// connections (enough that a slow endpoint does not exhaust them).
	Rate  float64 `json:"rate"`
	Conns int     `json:"conns"`
	// Warmup runs before each measured run, without faults, unmeasured.
	Warmup time.Duration `json:"warmup_ns"`
	// Scale stretches the fault schedule's times (not its delays); at 1 a
	// run lasts 60s.
	Scale float64 `json:"scale"`
	// Timeout bounds each request; MaxLagP99 and MaxLag bound the
	// generator's lag, beyond which a run is invalid.
	Timeout   time.Duration `json:"timeout_ns"`
	MaxLagP99 time.Duration `json:"max_lag_p99_ns"`
	MaxLag    time.Duration `json:"max_lag_ns"`
}

// slowNodePlans: quick finishes in about a minute and a half; full in about
// seventeen minutes.
var slowNodePlans = map[harness.Mode]slowNodePlan{
	harness.Quick: {Reps: 1, Endpoints: 5, Rate: 1500, Conns: 256, Warmup: time.Second, Scale: 0.25,
		Timeout: 5 * time.Second, MaxLagP99: time.Millisecond, MaxLag: 20 * time.Millisecond},
	harness.Full: {Reps: 3, Endpoints: 5, Rate: 1500, Conns: 256, Warmup: 3 * time.Second, Scale: 1,
		Timeout: 5 * time.Second, MaxLagP99: time.Millisecond, MaxLag: 20 * time.Millisecond},
}

// slowNodeConfig is one Gatehouse configuration under test.
type slowNodeConfig struct {
	Name     string `json:"name"`
	Balancer string `json:"balancer"`
	// Service is more of the service's YAML (indented), if any.
	Service string `json:"service,omitempty"`
	// Faults false runs the fleet without its schedule: the floor.
	Faults bool `json:"faults"`
}

var slowNodeConfigs = []slowNodeConfig{
	{Name: "round_robin", Balancer: "round_robin", Faults: true},
	{Name: "least_in_flight", Balancer: "least_in_flight", Faults: true},
	{Name: "p2c_ewma", Balancer: "p2c_ewma", Faults: true},
	// With two choices, p2c_ewma draws two slow endpoints 1 time in 10
	// while 2 of the 5 are slow (the schedule's double episodes), and must
	// take one. This variant compares three.
	{Name: "p2c_ewma (3 choices)", Balancer: "p2c_ewma", Service: "    balancing: {choices: 3}\n", Faults: true},
	{Name: "no faults (p2c_ewma)", Balancer: "p2c_ewma"},
}

// slowNodeSchedule is a deploy followed by slow episodes, at scale 1 over
// 60 seconds, drawn from seed:
//
//   - 0–2s: quiet.
//   - a rolling restart, one endpoint every 4s in a random order: down 1s
//     (listener and connections closed: refused), then cold for 4s — +200ms
//     per request for 1s, +100ms for 1s, +50ms for 2s — so that two
//     endpoints are in trouble at once for a second of every four;
//   - then, every 5s until 2s before the end, an episode: one endpoint (one
//     time in three, two) slow by 50, 100 or 200ms for 2 to 3s, as in a GC
//     pause or a noisy neighbour.
func slowNodeSchedule(seed uint64, n int, scale float64) ([]fleet.Event, time.Duration) {
	const total = 60.0
	r := rand.New(rand.NewPCG(seed, 0x510e))
	at := func(s float64) time.Duration {
		return time.Duration(s * scale * float64(time.Second)).Round(time.Millisecond)
	}
	var evs []fleet.Event
	add := func(t float64, ep int, m fleet.Mode, d time.Duration) {
		evs = append(evs, fleet.Event{At: at(t), Endpoint: ep, Mode: m, Delay: d})
	}
	t := 2.0
	for _, ep := range r.Perm(n) {
		add(t, ep, fleet.ModeDown, 0)
		add(t+1, ep, fleet.ModeSlow, 200*time.Millisecond)
		add(t+2, ep, fleet.ModeSlow, 100*time.Millisecond)
		add(t+3, ep, fleet.ModeSlow, 50*time.Millisecond)
		add(t+5, ep, fleet.ModeOK, 0)
		t += 4
	}
	delays := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}
	for t += 3; t+3 <= total-2; t += 5 {
		eps := r.Perm(n)[:1]
		if r.IntN(3) == 0 && n > 1 {
			eps = r.Perm(n)[:2]
		}
		d, length := delays[r.IntN(len(delays))], 2+r.Float64()
		for _, ep := range eps {
			add(t, ep, fleet.ModeSlow, d)
			add(t+length, ep, fleet.ModeOK, 0)
		}
	}
	slices.SortStableFunc(evs, func(a, b fleet.Event) int { return int(a.At - b.At) })
	return evs, at(total)
}

// slowNodeRun is one measured run.
type slowNodeRun struct {
	Config      string  `json:"config"`
	Rep         int     `json:"rep"`
	Seed        uint64  `json:"seed"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	ErrorSample string  `json:"error_sample,omitempty"`
	RPS         float64 `json:"rps"`
	// Latency percentiles, µs from the intended send time.
	P50   int64 `json:"p50_us"`
	P90   int64 `json:"p90_us"`
	P99   int64 `json:"p99_us"`
	P999  int64 `json:"p999_us"`
	P9999 int64 `json:"p9999_us"`
	Max   int64 `json:"max_us"`
	// LagP99 and LagMax are the generator's own lag, µs.
	LagP99 int64 `json:"lag_p99_us"`
	LagMax int64 `json:"lag_max_us"`
	// CPUPerReq is Gatehouse's CPU per completed request, µs.
	CPUPerReq float64 `json:"cpu_per_req_us"`
	// LoadCPU is what the fleet and the generator used of their CPU.
	LoadCPU float64 `json:"load_cpu"`
	// Overhead is Gatehouse's own (passport) view of the run.
	Overhead     *harness.Overhead `json:"overhead,omitempty"`
	OverheadNote string            `json:"overhead_note,omitempty"`
	// Fleet is what the endpoints saw.
	Fleet    *fleet.Stats `json:"fleet,omitempty"`
	Valid    bool         `json:"valid"`
	Problems []string     `json:"problems,omitempty"`
	Latency  load.Hist    `json:"latency"`
}

func (r *slowNodeRun) attempts() int64 {
	if r.Fleet == nil {
		return 0
	}
	return r.Fleet.Total(func(e fleet.EndpointStats) int64 { return e.Attempts })
}

func (r *slowNodeRun) slowed() int64 {
	if r.Fleet == nil {
		return 0
	}
	return r.Fleet.Total(func(e fleet.EndpointStats) int64 { return e.Slowed })
}

// slowNodeResult is the scenario's outcome.
type slowNodeResult struct {
	*faultReport
	Plan    slowNodePlan     `json:"plan"`
	Configs []slowNodeConfig `json:"configs"`
	// Schedules are the fault schedules by rep (index rep-1).
	Schedules [][]fleet.Event `json:"schedules"`
	Length    time.Duration   `json:"length_ns"`
	Runs      []*slowNodeRun  `json:"runs"`
	Failures  []string        `json:"failures,omitempty"`
}

func slowNode(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	res, err := runSlowNode(ctx, e, slowNodePlans[e.Mode])
	return nil, writeResult(e, res, err)
}

// runSlowNode measures every configuration under plan. A partial result
// comes back with an error.
func runSlowNode(ctx context.Context, e *harness.Env, plan slowNodePlan) (*slowNodeResult, error) {
	if plan.Reps < 1 || plan.Endpoints < 2 || plan.Rate <= 0 || plan.Conns < 1 || plan.Scale <= 0 {
		return nil, errors.New("slow_node: invalid plan")
	}
	t0 := time.Now()
	res := &slowNodeResult{
		faultReport: newFaultReport(ctx, e, "slow_node", "Gatehouse benchmark: balancers during a deploy (slow and restarting endpoints)"),
		Plan:        plan, Configs: slowNodeConfigs,
	}
	defer func() { res.Wall = time.Since(t0) }()
	gh := &harness.Gatehouse{}
	v, err := gh.Prepare(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("gatehouse: %w", err)
	}
	rev := treeRevision(ctx, e.ModRoot)
	res.Versions = [][2]string{{"gatehouse", v}, {"fleet", "bench/cmd/fleet, tree " + rev}, {"loadgen", "bench/cmd/loadgen, tree " + rev}}
	for i := range plan.Reps {
		evs, length := slowNodeSchedule(uint64(i+1), plan.Endpoints, plan.Scale)
		res.Schedules = append(res.Schedules, evs)
		res.Length = length
	}

	fl, err := startFleet(ctx, e, plan.Endpoints)
	if err != nil {
		return res, err
	}
	defer fl.Stop()
	for rep := 1; rep <= plan.Reps; rep++ {
		for _, cfg := range slowNodeConfigs {
			run, err := measureSlowNode(ctx, e, fl, plan, cfg, rep, res.Schedules[rep-1], res.Length)
			if err != nil {
				res.Failures = append(res.Failures, fmt.Sprintf("%s rep %d: %v", cfg.Name, rep, err))
				e.Logf("slow_node: %s rep %d: %v", cfg.Name, rep, err)
			}
			if run != nil {
				res.Runs = append(res.Runs, run)
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
		}
	}
	return res, nil
}

// fleetGatehouseConfig is Gatehouse in front of the fleet: the harness's
// default configuration with the fleet's endpoints as one service, whose
// further keys (balancer, retry) come indented from service.
func fleetGatehouseConfig(endpoints []string, service string) func(harness.GatehouseConfig) string {
	return func(c harness.GatehouseConfig) string {
		return fmt.Sprintf(`# generated by the gatehouse benchmark harness (fault scenarios)
listeners:
  - name: public
    address: %s
admin:
  address: %s
  token: %q
logging:
  level: warn
  format: json
  access_log: false
limits:
  server: {max_connections: 10000, max_requests: 4096}
  upstream: {max_conns_per_endpoint: 512, max_idle_per_endpoint: %d}
services:
  - name: fleet
    endpoints: [%s]
%sroutes:
  - name: all
    service: fleet
`, c.Listen, c.Admin, c.AdminToken, min(c.Conns, 512), strings.Join(endpoints, ", "), service)
	}
}

func measureSlowNode(ctx context.Context, e *harness.Env, fl *fleetProc, plan slowNodePlan, cfg slowNodeConfig, rep int, schedule []fleet.Event, length time.Duration) (*slowNodeRun, error) {
	if err := fl.ctl.Run(ctx, fleet.Plan{}); err != nil { // every endpoint up and fast
		return nil, err
	}
	label := "gatehouse-" + strings.NewReplacer(" ", "", "(", "-", ")", "", ",", "").Replace(cfg.Name)
	gh := &harness.Gatehouse{Label: label, Config: fleetGatehouseConfig(fl.addrs, "    balancer: "+cfg.Balancer+"\n"+cfg.Service)}
	e.Logf("slow_node: %s, rep %d: starting", cfg.Name, rep)
	inst, err := gh.Start(ctx, e, harness.StartConfig{Backend: fl.addrs[0], Conns: plan.Conns})
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer inst.Stop()
	if plan.Warmup > 0 {
		w, err := runLoadgen(ctx, e, "loadgen-warmup", plan.Warmup,
			openLoopArgs(inst.Addr, plan.Rate, plan.Warmup, plan.Conns, plan.Timeout, plan.MaxLagP99, plan.MaxLag)...)
		switch {
		case err != nil:
			e.Logf("slow_node: %s: warmup failed: %v", cfg.Name, err)
		case w.Errors > 0:
			e.Logf("slow_node: %s: warmup had %d errors (%s)", cfg.Name, w.Errors, w.ErrorSample)
		}
	}
	if inst.Overhead != nil {
		inst.Overhead(ctx) // reset: the warmup is not measured
	}
	fp := fleet.Plan{Bucket: 250 * time.Millisecond, Length: length + 10*time.Second}
	if cfg.Faults {
		fp.Events = schedule
	}
	if err := fl.ctl.Run(ctx, fp); err != nil {
		return nil, err
	}
	proxy0, fleet0, t0 := processCPU(inst.Proc), processCPU(fl.Process), time.Now()
	g, gerr := runLoadgen(ctx, e, "loadgen", length,
		openLoopArgs(inst.Addr, plan.Rate, length, plan.Conns, plan.Timeout, plan.MaxLagP99, plan.MaxLag)...)
	wall := time.Since(t0)
	proxyCPU, fleetCPU := processCPU(inst.Proc)-proxy0, processCPU(fl.Process)-fleet0
	run := &slowNodeRun{Config: cfg.Name, Rep: rep, Seed: uint64(rep)}
	if gerr != nil {
		run.Problems = append(run.Problems, "generator failed: "+gerr.Error())
	}
	if g != nil {
		run.Requests, run.Errors, run.ErrorSample, run.RPS = g.Completed, g.Errors, g.ErrorSample, g.RPS()
		if h := g.Latency.Histogram; h != nil && h.TotalCount() > 0 {
			run.Latency = g.Latency
			run.P50, run.P90, run.P99 = h.ValueAtQuantile(50), h.ValueAtQuantile(90), h.ValueAtQuantile(99)
			run.P999, run.P9999, run.Max = h.ValueAtQuantile(99.9), h.ValueAtQuantile(99.99), h.Max()
		}
		if h := g.Lag.Histogram; h != nil {
			run.LagP99, run.LagMax = h.ValueAtQuantile(99), h.Max()
		}
		if g.Completed > 0 {
			run.CPUPerReq = float64(proxyCPU.Microseconds()) / float64(g.Completed)
		}
		run.LoadCPU = fleetCPU.Seconds() / wall.Seconds()
		if g.CPU > 0 && g.Elapsed > 0 {
			run.LoadCPU += g.CPU.Seconds() / g.Elapsed.Seconds()
		}
		if g.Behind {
			run.Problems = append(run.Problems, "generator fell behind: "+g.BehindReason)
		}
		if g.Completed == 0 {
			run.Problems = append(run.Problems, "no request completed")
		}
	}
	if e.Placement.Pinned && run.LoadCPU > 0.9 {
		run.Problems = append(run.Problems, fmt.Sprintf("load side saturated: fleet and generator used %.0f%% of their CPU", run.LoadCPU*100))
	}
	if exited, werr := inst.Proc.Exited(); exited {
		run.Problems = append(run.Problems, fmt.Sprintf("gatehouse exited (%v): %s", werr, inst.Proc.LogTail(3)))
	}
	if inst.Overhead != nil {
		if o, err := inst.Overhead(ctx); err != nil {
			run.OverheadNote = err.Error()
		} else {
			run.Overhead = o
		}
	}
	if s, err := fl.ctl.Stats(ctx); err != nil {
		run.Problems = append(run.Problems, "fleet stats: "+err.Error())
	} else {
		run.Fleet = s
	}
	if err := fl.ctl.Stop(ctx); err != nil {
		run.Problems = append(run.Problems, "fleet: "+err.Error())
	}
	run.Valid = len(run.Problems) == 0
	status := "ok"
	if !run.Valid {
		status = "INVALID: " + strings.Join(run.Problems, "; ")
	}
	e.Logf("slow_node: %s rep %d: %.0f req/s, %d errors, p50 %s p99 %s p99.9 %s p99.99 %s max %s ms, %s met a slow endpoint, lag p99 %dµs, load cpu %.0f%%: %s",
		cfg.Name, rep, run.RPS, run.Errors, ms(float64(run.P50)), ms(float64(run.P99)), ms(float64(run.P999)), ms(float64(run.P9999)), ms(float64(run.Max)),
		pct(ratio(run.slowed(), run.Requests+run.Errors)), run.LagP99, run.LoadCPU*100, status)
	return run, nil
}

func ratio(a, b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}

// runsOf returns the runs of config; with valid, only the valid ones.
func (r *slowNodeResult) runsOf(config string, valid bool) []*slowNodeRun {
	var out []*slowNodeRun
	for _, run := range r.Runs {
		if run.Config == config && (run.Valid || !valid) {
			out = append(out, run)
		}
	}
	return out
}

// statRuns is the stat of f over the valid runs of config (of all its runs
// when none is valid, flagged by the second result).
func (r *slowNodeResult) statRuns(config string, f func(*slowNodeRun) float64) (stat, bool) {
	runs := r.runsOf(config, true)
	invalid := false
	if len(runs) == 0 {
		runs, invalid = r.runsOf(config, false), true
	}
	var vs []float64
	for _, run := range runs {
		if v := f(run); !math.IsNaN(v) {
			vs = append(vs, v)
		}
	}
	return statOf(vs), invalid && len(vs) > 0
}

// merged merges the latency histograms of config's valid runs (all runs
// when none is valid: dashed).
func (r *slowNodeResult) merged(config string) (*hdrhistogram.Histogram, bool) {
	runs := r.runsOf(config, true)
	dashed := false
	if len(runs) == 0 {
		runs, dashed = r.runsOf(config, false), true
	}
	var h *hdrhistogram.Histogram
	for _, run := range runs {
		if run.Latency.Histogram == nil {
			continue
		}
		if h == nil {
			h = load.NewHistogram()
		}
		h.Merge(run.Latency.Histogram)
	}
	return h, dashed
}

func (r *slowNodeResult) write(e *harness.Env) (string, error) {
	var names []string
	var hists []*hdrhistogram.Histogram
	var dashed []bool
	for _, c := range r.Configs {
		h, d := r.merged(c.Name)
		names, hists, dashed = append(names, c.Name), append(hists, h), append(dashed, d)
	}
	if slices.ContainsFunc(hists, func(h *hdrhistogram.Histogram) bool { return h != nil }) {
		r.extra["slow_node-latency.svg"] = ninesChart(fmt.Sprintf("Latency by percentile at %.0f req/s, all runs merged", r.Plan.Rate),
			r.footer()+"; dashed: no valid run", names, hists, dashed)
	}
	if svg := r.slowedChart(); svg != nil {
		r.extra["slow_node-slowed.svg"] = svg
	}
	return r.faultReport.write(e, r.markdown(), r)
}

// slowedChart plots, for rep 1, how many requests per second each
// configuration sent to an endpoint while it was slow.
func (r *slowNodeResult) slowedChart() []byte {
	lc := plot.LineChart{Title: "Requests answered by a slow endpoint, per second (rep 1)", XLabel: "seconds since the schedule's start",
		YLabel: "requests per second", Footer: r.footer()}
	for i, c := range r.Configs {
		if !c.Faults {
			continue
		}
		for _, run := range r.runsOf(c.Name, false) {
			if run.Rep != 1 || run.Fleet == nil {
				continue
			}
			s := plot.Series{Name: c.Name, Color: plot.Palette[(i+1)%len(plot.Palette)]}
			per := run.Fleet.Bucket.Seconds()
			for b, v := range run.Fleet.Slowed {
				if t := (float64(b) + 0.5) * per; t <= r.Length.Seconds() {
					s.X, s.Y = append(s.X, t), append(s.Y, float64(v)/per)
				}
			}
			lc.Series = append(lc.Series, s)
		}
	}
	if len(lc.Series) == 0 {
		return nil
	}
	step := 0.0
	for _, st := range []float64{1, 2, 5, 10, 20} {
		if r.Length.Seconds()/st <= 12 {
			step = st
			break
		}
	}
	if step == 0 {
		step = 60
	}
	lc.XTicks = timeTicks(r.Length.Seconds(), step)
	return lc.SVG()
}

func (r *slowNodeResult) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	r.header(&b)
	p := r.Plan

	w("\n## Method\n\n")
	w("- **Fleet** (`bench/cmd/fleet`): %d HTTP/1.1 endpoints in one process on the load CPU, each answering 200 with a 64-byte body at once, except when the fault schedule says otherwise: *down* (a restart: listener and connections closed, new connections refused), *slow* (every answer delayed, as a cold JIT or a GC pause).\n", p.Endpoints)
	w("- **Fault schedule** (%s per run, drawn per rep from a fixed seed, the same for every configuration): after 2s of quiet, a rolling restart — one endpoint every 4s, down for 1s, then cold for 4s: +200ms per request for 1s, +100ms for 1s, +50ms for 2s — so one or two endpoints are in trouble at a time; then every 5s an episode of one endpoint (one time in three, two) slow by 50, 100 or 200ms for 2–3s. Times are scaled by %.2f in this mode, delays are not. The schedule of rep 1 is listed below.\n", r.Length, p.Scale)
	w("- **Gatehouse** (built from the tree, one CPU, `GOMAXPROCS=1`) with one service of the %d endpoints and the balancer under test; everything else at its defaults: outlier ejection on (5 consecutive failures; ejected 10s, doubling), retries within the default budget (3 attempts, 20%% + 3/s). A fresh process per run. *p2c_ewma (3 choices)* is p2c_ewma with `balancing.choices: 3`: each pick compares three random endpoints instead of two, so that while two of the five are slow there is always a fast one among them. *no faults* is the same fleet without its schedule: the floor.\n", p.Endpoints)
	w("- **Load**: open loop (`bench/cmd/loadgen`) at %.0f req/s over %d keep-alive connections, `GET /`, each request timed from its *intended* send time (a stall delays every request due during it; nothing is omitted), preceded by %s of the same load without faults, unmeasured.\n", p.Rate, p.Conns, p.Warmup)
	w("- **met a slow endpoint**: the share of requests that the fleet answered late (counted by the fleet, retries included). **attempts/request**: requests the fleet received per request the client completed or failed (retries and attempts cut by a restart count; connections refused do not reach it).\n")
	w("- **Validity**: a run is invalid if the generator fell behind its schedule (lag p99 > %s or max > %s), Gatehouse died, or the fleet and generator used more than 90%% of their CPU. Errors are a result here, not a defect of the run: they are counted, not invalidating. Cells show the median over the valid runs and their range; p99.99 of one run rests on about %.0f requests beyond it, so the merged table below is the steadier tail.\n",
		p.MaxLagP99, p.MaxLag, p.Rate*r.Length.Seconds()/10000)

	w("\n## Result (latency in ms from the intended send time)\n\n")
	w("| balancer | p50 | p99 | p99.9 | p99.99 | max | errors | req/s | met a slow endpoint | attempts/request | passport overhead p99.9 (µs) | valid runs |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range r.Configs {
		all := r.runsOf(c.Name, false)
		if len(all) == 0 {
			w("| %s | no run |||||||||||\n", c.Name)
			continue
		}
		cell := func(f func(*slowNodeRun) float64, format func(float64) string) string {
			s, invalid := r.statRuns(c.Name, f)
			out := fmtRange(s, format)
			if invalid {
				out = "**INVALID** " + out
			}
			return out
		}
		var errs, reqs int64
		for _, run := range all {
			errs += run.Errors
			reqs += run.Requests + run.Errors
		}
		valid := len(r.runsOf(c.Name, true))
		w("| %s | %s | %s | %s | %s | %s | %d (%s) | %s | %s | %s | %s | %d/%d |\n", c.Name,
			cell(func(x *slowNodeRun) float64 { return float64(x.P50) }, ms),
			cell(func(x *slowNodeRun) float64 { return float64(x.P99) }, ms),
			cell(func(x *slowNodeRun) float64 { return float64(x.P999) }, ms),
			cell(func(x *slowNodeRun) float64 { return float64(x.P9999) }, ms),
			cell(func(x *slowNodeRun) float64 { return float64(x.Max) }, ms),
			errs, pct(ratio(errs, reqs)),
			cell(func(x *slowNodeRun) float64 { return x.RPS }, f0),
			cell(func(x *slowNodeRun) float64 { return ratio(x.slowed(), x.Requests+x.Errors) }, pct),
			cell(func(x *slowNodeRun) float64 { return ratio(x.attempts(), x.Requests+x.Errors) }, f2),
			cell(func(x *slowNodeRun) float64 {
				if x.Overhead == nil {
					return math.NaN()
				}
				return x.Overhead.P999
			}, f0),
			valid, len(all))
	}
	w("\n%s\n", r.ratios())
	w("\nReading it:\n\n")
	w("- *met a slow endpoint* is the mechanism: every request a balancer sends to an endpoint while it is slow is a slow answer, retries or not. Once that share exceeds 0.1%% (0.01%%), p99.9 (p99.99) is a slow answer, whatever the balancer.\n")
	w("- least_in_flight compares every endpoint; it still sends a slow endpoint a request when its last one is back, and one after each second without (`probe_interval`), so a few per second per slow endpoint.\n")
	w("- p2c_ewma compares two endpoints drawn at random: while k of n endpoints are slow, both draws are slow k(k−1)/n(n−1) of the time — 1 in 10 with 2 of 5 (the schedule's double episodes; see the second plot). Then its winner is far slower than the typical pick, and p2c_ewma takes a second look: it compares every endpoint (up to 16; beyond, it draws again), so those picks go to a fast endpoint too.\n")
	w("- round robin sends every endpoint its share, slow or not, except while ejected: the connections refused during a restart eject an endpoint (5 failures in a row; at most `max_ejected_percent`, 50%%, at once), which can hide part of its cold start.\n")

	w("\n### All valid runs merged\n\n| balancer | requests | p99 | p99.9 | p99.99 | p99.999 | max |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range r.Configs {
		h, dashed := r.merged(c.Name)
		if h == nil {
			continue
		}
		name := c.Name
		if dashed {
			name += " (**INVALID** runs only)"
		}
		q := func(v float64) string { return ms(float64(h.ValueAtQuantile(v))) }
		w("| %s | %d | %s | %s | %s | %s | %s |\n", name, h.TotalCount(), q(99), q(99.9), q(99.99), q(99.999), ms(float64(h.Max())))
	}

	w("\n## Plots\n\n")
	for _, name := range []string{"slow_node-latency.svg", "slow_node-slowed.svg"} {
		if _, ok := r.extra[name]; ok {
			w("![%s](%s)\n\n", strings.TrimSuffix(name, ".svg"), name)
		}
	}

	if len(r.Schedules) > 0 {
		w("## Fault schedule of rep 1\n\n| at | endpoint | becomes |\n|---:|---:|---|\n")
		for _, ev := range r.Schedules[0] {
			what := string(ev.Mode)
			if ev.Delay > 0 {
				what += fmt.Sprintf(" (+%v)", ev.Delay)
			}
			w("| %s | #%d | %s |\n", ev.At, ev.Endpoint, what)
		}
	}

	w("\n## All runs\n\n| balancer | rep | requests | errors | req/s | p50 | p99 | p99.9 | p99.99 | max | met slow | attempts/req | fleet restarts / aborted | CPU µs/req | lag p99/max µs | load CPU | status |\n")
	w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, run := range r.Runs {
		status := "ok"
		if !run.Valid {
			status = "**INVALID**: " + strings.Join(run.Problems, "; ")
		}
		var restarts, aborted int64
		if run.Fleet != nil {
			restarts = run.Fleet.Total(func(e fleet.EndpointStats) int64 { return e.Restarts })
			aborted = run.Fleet.Total(func(e fleet.EndpointStats) int64 { return e.Aborted })
		}
		errs := fmt.Sprint(run.Errors)
		if run.ErrorSample != "" {
			errs += " (" + strings.ReplaceAll(run.ErrorSample, "|", "/") + ")"
		}
		w("| %s | %d | %d | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %d / %d | %.1f | %d/%d | %.0f%% | %s |\n", run.Config, run.Rep, run.Requests, errs, run.RPS,
			ms(float64(run.P50)), ms(float64(run.P99)), ms(float64(run.P999)), ms(float64(run.P9999)), ms(float64(run.Max)),
			pct(ratio(run.slowed(), run.Requests+run.Errors)), f2(ratio(run.attempts(), run.Requests+run.Errors)),
			restarts, aborted, run.CPUPerReq, run.LagP99, run.LagMax, run.LoadCPU*100, status)
	}
	for _, f := range r.Failures {
		w("\n**FAILED**: %s\n", f)
	}
	if len(r.Notes) > 0 {
		w("\n## Notes\n\n")
		for _, n := range r.Notes {
			w("- %s\n", n)
		}
	}
	return b.String()
}

// ratios says how round robin's tail compares with the others'.
func (r *slowNodeResult) ratios() string {
	get := func(name string, f func(*slowNodeRun) float64) float64 {
		s, invalid := r.statRuns(name, f)
		if invalid || s.n == 0 {
			return math.NaN()
		}
		return s.median
	}
	var parts []string
	for _, q := range []struct {
		name string
		f    func(*slowNodeRun) float64
	}{
		{"p99", func(x *slowNodeRun) float64 { return float64(x.P99) }},
		{"p99.9", func(x *slowNodeRun) float64 { return float64(x.P999) }},
		{"p99.99", func(x *slowNodeRun) float64 { return float64(x.P9999) }},
	} {
		rr := get("round_robin", q.f)
		if math.IsNaN(rr) {
			continue
		}
		var each []string
		for _, c := range slowNodeConfigs {
			if !c.Faults || c.Balancer == "round_robin" {
				continue
			}
			if v := get(c.Name, q.f); !math.IsNaN(v) && v > 0 {
				each = append(each, fmt.Sprintf("%.1f× %s's", rr/v, c.Name))
			}
		}
		if len(each) > 0 {
			parts = append(parts, q.name+" "+strings.Join(each, ", "))
		}
	}
	if len(parts) == 0 {
		return "Ratios: n/a (a balancer has no valid run)."
	}
	return "Round robin's " + strings.Join(parts, "; ") + " (medians of the valid runs)."
}

func f0(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.0f", v)
}

func f2(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.2f", v)
}

// timeTicks labels a time axis from 0 to total seconds every step, with a
// last tick at total so that the axis spans the whole run.
func timeTicks(total, step float64) []plot.Tick {
	var ticks []plot.Tick
	for x := 0.0; x < total-step/2; x += step {
		ticks = append(ticks, plot.Tick{Value: x, Label: fmt.Sprintf("%gs", x)})
	}
	return append(ticks, plot.Tick{Value: total, Label: fmt.Sprintf("%gs", total)})
}
