package harness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Plan says what a comparison measures and for how long.
type Plan struct {
	// Reps is how often each point is measured.
	Reps int `json:"reps"`
	// Conns is the load's connection count, the same for every peer.
	Conns int `json:"conns"`
	// Warmup is run, unmeasured, after each start of a peer.
	Warmup time.Duration `json:"warmup_ns"`
	// Closed is the length of one closed-loop (saturation) run; 0 skips
	// them, and then FixedRates must be set.
	Closed time.Duration `json:"closed_ns"`
	// Open is the length of one open-loop (latency) run.
	Open time.Duration `json:"open_ns"`
	// Loads are the open-loop rates as fractions of the slowest proxy's
	// saturation rate, against the fast backend.
	Loads []float64 `json:"loads"`
	// FixedRates, when set, replace Loads (and DelayLoads) by absolute
	// rates in requests per second.
	FixedRates []float64 `json:"fixed_rates,omitempty"`
	// Delay is the delayed backend's added latency; 0 skips it.
	Delay time.Duration `json:"delay_ns"`
	// DelayLoads are the open-loop rates against the delayed backend, as
	// fractions of the slowest proxy's saturation rate (fast backend).
	DelayLoads []float64 `json:"delay_loads"`
	// Timeout bounds each request.
	Timeout time.Duration `json:"timeout_ns"`
	// MaxLagP99 and MaxLag bound the open-loop generator's own lag; a run
	// exceeding them is invalid.
	MaxLagP99 time.Duration `json:"max_lag_p99_ns"`
	MaxLag    time.Duration `json:"max_lag_ns"`
}

// CompareSpec is one comparison: these peers, measured by this plan.
type CompareSpec struct {
	// Name names the output files (Name.md, Name.json, Name-*.svg).
	Name string
	// Title heads the report.
	Title string
	// Peers are compared in this order; include Direct{} for the floor.
	Peers []Peer
	// Plan is what is measured.
	Plan Plan
	// Notes are added to the report.
	Notes []string
}

// Level is one open-loop load point.
type Level struct {
	// Backend is "fast" or "delay <d>".
	Backend string `json:"backend"`
	// Fraction of the slowest proxy's saturation rate; 0 for a fixed rate.
	Fraction float64 `json:"fraction"`
	// Rate in requests per second.
	Rate float64 `json:"rate"`
}

// Label names the level in tables.
func (l Level) Label() string {
	if l.Fraction == 0 {
		return fmt.Sprintf("%s backend, %.0f req/s", l.Backend, l.Rate)
	}
	return fmt.Sprintf("%s backend, %.0f%% (%.0f req/s)", l.Backend, l.Fraction*100, l.Rate)
}

// Report is the outcome of a comparison.
type Report struct {
	Scenario string        `json:"scenario"`
	Title    string        `json:"title"`
	Command  string        `json:"command"`
	Mode     Mode          `json:"mode"`
	Date     time.Time     `json:"date"`
	Wall     time.Duration `json:"wall_ns"`
	Machine  Machine       `json:"machine"`
	// Tools are the versions of the load generators.
	Tools     map[string]string `json:"tools"`
	Placement []string          `json:"placement"`
	Plan      Plan              `json:"plan"`
	// Slowest is the proxy whose median saturation rate the loads are
	// fractions of.
	Slowest    string        `json:"slowest"`
	SlowestRPS float64       `json:"slowest_rps"`
	Levels     []Level       `json:"levels"`
	Peers      []*PeerResult `json:"peers"`
	Notes      []string      `json:"notes"`
}

// PeerResult is everything measured of one peer.
type PeerResult struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Proxy is false for the direct path.
	Proxy bool `json:"proxy"`
	// Skipped says why the peer did not run (not installed, not built).
	Skipped string `json:"skipped,omitempty"`
	// Failures lists starts or runs that failed outright.
	Failures []string `json:"failures,omitempty"`
	// PeakRSSKB is the largest peak resident set of the proxy's process
	// tree over all its starts.
	PeakRSSKB int64  `json:"peak_rss_kb"`
	Runs      []*Run `json:"runs"`
}

// Run is one measured run.
type Run struct {
	// Kind is "closed" (saturation) or "open" (constant rate).
	Kind string `json:"kind"`
	// Level indexes Report.Levels for open runs; -1 for closed runs.
	Level     int    `json:"level"`
	Rep       int    `json:"rep"`
	Generator string `json:"generator"`
	Requests  int64  `json:"requests"`
	Errors    int64  `json:"errors"`
	// ErrorSample is the first error of the run.
	ErrorSample string        `json:"error_sample,omitempty"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	RPS         float64       `json:"rps"`
	// ProxyCPU is the proxy tree's utime+stime during the run.
	ProxyCPU time.Duration `json:"proxy_cpu_ns"`
	// CPUPerReq is ProxyCPU per completed request, in microseconds.
	CPUPerReq float64 `json:"cpu_per_req_us"`
	// CPUUtil is ProxyCPU over the run's elapsed time, in CPUs.
	CPUUtil float64 `json:"cpu_util"`
	// Latency percentiles in microseconds (open runs: from the intended
	// send time).
	Lat Percentiles `json:"latency_us"`
	// LagP99, LagP999 and LagMax are the generator's own lag, in
	// microseconds.
	LagP99  int64 `json:"lag_p99_us"`
	LagP999 int64 `json:"lag_p999_us"`
	LagMax  int64 `json:"lag_max_us"`
	// LoadCPU is the CPU the backend and the generator used, in CPUs: they
	// share one, and near 1 the load side, not the proxy, is the limit.
	LoadCPU float64 `json:"load_cpu"`
	// OtherCPU is the CPU used meanwhile by processes that are not part of
	// the run, in CPUs.
	OtherCPU float64 `json:"other_cpu"`
	// Valid is false when any request failed, the generator fell behind or
	// the proxy died; Problems says which.
	Valid    bool     `json:"valid"`
	Problems []string `json:"problems,omitempty"`
	// Overhead is Gatehouse's own account of the run; OverheadNote says why
	// it is missing.
	Overhead     *Overhead `json:"overhead,omitempty"`
	OverheadNote string    `json:"overhead_note,omitempty"`
	hist         *hdrhistogram.Histogram
}

// Percentiles of a latency distribution, in microseconds.
type Percentiles struct {
	P50  int64 `json:"p50"`
	P90  int64 `json:"p90"`
	P99  int64 `json:"p99"`
	P999 int64 `json:"p999"`
	Max  int64 `json:"max"`
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	if h == nil || h.TotalCount() == 0 {
		return Percentiles{}
	}
	return Percentiles{
		P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), Max: h.Max(),
	}
}

type peerState struct {
	peer Peer
	res  *PeerResult
}

// Compare measures every peer of spec on this machine and returns the report.
// A peer that cannot run here is reported as skipped; a peer that fails to
// start or dies is reported with its failure; neither stops the others. On
// cancellation, or a failure once measuring has begun, the partial report
// comes back with the error.
func Compare(ctx context.Context, e *Env, spec CompareSpec) (*Report, error) {
	p := spec.Plan
	if p.Reps < 1 || p.Conns < 1 || p.Open <= 0 || p.Timeout <= 0 {
		return nil, errors.New("plan: reps, conns, open and timeout must be positive")
	}
	if p.Closed <= 0 && len(p.FixedRates) == 0 {
		return nil, errors.New("plan: without closed-loop runs the rates must be fixed")
	}
	start := time.Now()
	rep := &Report{
		Scenario:  spec.Name,
		Title:     spec.Title,
		Command:   e.Command,
		Mode:      e.Mode,
		Date:      start.UTC(),
		Machine:   describeMachine(ctx, e.ModRoot),
		Tools:     e.toolVersions(ctx),
		Placement: e.Placement.Describe(),
		Plan:      p,
		Notes:     spec.Notes,
	}

	var active []*peerState
	for _, peer := range spec.Peers {
		if !e.wantPeer(peer.Name()) {
			continue
		}
		_, direct := peer.(Direct)
		pr := &PeerResult{Name: peer.Name(), Proxy: !direct}
		rep.Peers = append(rep.Peers, pr)
		v, err := peer.Prepare(ctx, e)
		var un *Unavailable
		switch {
		case errors.As(err, &un):
			pr.Skipped = un.Reason
			e.Logf("%s: skipped: %s", pr.Name, un.Reason)
			continue
		case err != nil:
			return nil, fmt.Errorf("%s: %w", pr.Name, err)
		}
		pr.Version = v
		active = append(active, &peerState{peer, pr})
	}

	backend, err := e.startBackend(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer func() { backend.Stop() }()
	r := &runner{e: e, rep: rep, plan: p, backend: backend}

	// Phase 1: saturation. Every repetition starts every peer afresh, and
	// the repetitions go round the peers, so that a noisy minute on a shared
	// machine spreads over all of them instead of spoiling one.
	if p.Closed > 0 {
		for i := range p.Reps {
			for _, ps := range active {
				r.withPeer(ctx, ps, fmt.Sprintf("saturation, rep %d", i+1), func(inst *Instance) {
					r.warm(ctx, inst, ps, -1)
					r.measure(ctx, inst, ps, -1, i+1)
				})
			}
		}
	}
	if err := ctx.Err(); err != nil {
		rep.Wall = time.Since(start)
		return rep, err
	}

	// The load levels follow from the slowest proxy.
	base := r.slowest()
	addLevels := func(backendLabel string, loads []float64) []int {
		var idx []int
		if len(p.FixedRates) > 0 {
			for _, rate := range p.FixedRates {
				idx = append(idx, len(rep.Levels))
				rep.Levels = append(rep.Levels, Level{Backend: backendLabel, Rate: rate})
			}
			return idx
		}
		for _, f := range loads {
			idx = append(idx, len(rep.Levels))
			rep.Levels = append(rep.Levels, Level{Backend: backendLabel, Fraction: f, Rate: math.Round(f * base)})
		}
		return idx
	}
	if len(p.FixedRates) == 0 && base <= 0 {
		return rep, fmt.Errorf("no valid saturation run: cannot derive the load levels")
	}
	fast := addLevels("fast", p.Loads)
	var delayed []int
	if p.Delay > 0 {
		delayed = addLevels("delay "+p.Delay.String(), p.DelayLoads)
	}

	// Phase 2: latency against the fast backend; phase 3: against the
	// delayed one. As in phase 1, repetitions go round the peers.
	for phase, levels := range [][]int{fast, delayed} {
		if len(levels) == 0 {
			continue
		}
		if phase == 1 {
			backend.Stop()
			if backend, err = e.startBackend(ctx, p.Delay); err != nil {
				return rep, err
			}
			r.backend = backend
		}
		for i := range p.Reps {
			for _, ps := range active {
				what := fmt.Sprintf("latency (%s backend), rep %d", rep.Levels[levels[0]].Backend, i+1)
				r.withPeer(ctx, ps, what, func(inst *Instance) {
					r.warm(ctx, inst, ps, levels[len(levels)/2])
					for _, li := range levels {
						r.measure(ctx, inst, ps, li, i+1)
					}
				})
				if err := ctx.Err(); err != nil {
					rep.Wall = time.Since(start)
					return rep, err
				}
			}
		}
	}
	rep.Wall = time.Since(start)
	return rep, nil
}

func (e *Env) toolVersions(ctx context.Context) map[string]string {
	t := map[string]string{"loadgen": "bench/cmd/loadgen, tree " + treeRevision(ctx, e.ModRoot)}
	if e.Wrk != "" {
		v := "Debian " + debVersion(ctx, "wrk")
		if v == "Debian " {
			out, _ := run(ctx, "/", e.Wrk, "-v")
			v = firstLine(out)
		}
		t["wrk"] = v
	} else {
		t["wrk"] = "not installed: closed loop by loadgen"
	}
	return t
}

// backendProc is a running bench/cmd/backend.
type backendProc struct {
	*Process
	addr string
}

// startBackend starts bench/cmd/backend on the load CPU.
func (e *Env) startBackend(ctx context.Context, delay time.Duration) (*backendProc, error) {
	addr, err := FreePort()
	if err != nil {
		return nil, err
	}
	name := "backend"
	if delay > 0 {
		name = "backend-delay"
	}
	p, err := e.StartProcess(name, RoleBackend, []string{"GOMAXPROCS=1"}, e.Backend, "-addr", addr, "-delay", delay.String())
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, "http://"+addr+"/", p); err != nil {
		p.Stop()
		return nil, err
	}
	return &backendProc{p, addr}, nil
}

// loadSaturated is the load CPU's use, in CPUs, above which an open-loop run
// is invalid.
const loadSaturated = 0.9

type runner struct {
	e       *Env
	rep     *Report
	plan    Plan
	backend *backendProc
}

// withPeer starts the peer, runs f, stops it and keeps its peak RSS.
func (r *runner) withPeer(ctx context.Context, ps *peerState, phase string, f func(*Instance)) {
	if ctx.Err() != nil {
		return
	}
	r.e.Logf("%s: starting for %s", ps.res.Name, phase)
	inst, err := ps.peer.Start(ctx, r.e, StartConfig{Backend: r.backend.addr, Conns: r.plan.Conns})
	if err != nil {
		ps.res.Failures = append(ps.res.Failures, phase+": start failed: "+err.Error())
		r.e.Logf("%s: start failed: %v", ps.res.Name, err)
		return
	}
	defer inst.Stop()
	f(inst)
	if inst.Proc != nil {
		if u, err := inst.Proc.Usage(); err == nil {
			ps.res.PeakRSSKB = max(ps.res.PeakRSSKB, u.PeakRSSKB)
		}
	}
}

// warm runs unmeasured load: closed loop for level -1, else the level's rate.
func (r *runner) warm(ctx context.Context, inst *Instance, ps *peerState, level int) {
	if r.plan.Warmup <= 0 {
		return
	}
	var g *genRun
	var err error
	if level < 0 {
		g, err = r.e.runLoadgen(ctx, r.plan.Warmup, "-mode", "closed", "-addr", inst.Addr,
			"-duration", r.plan.Warmup.String(), "-conns", strconv.Itoa(r.plan.Conns), "-timeout", r.plan.Timeout.String())
	} else {
		g, err = r.e.openLoop(ctx, r.plan, inst.Addr, r.rep.Levels[level].Rate, r.plan.Warmup)
	}
	switch {
	case err != nil:
		r.e.Logf("%s: warmup failed: %v", ps.res.Name, err)
	case g.res.Errors > 0:
		r.e.Logf("%s: warmup had %d errors (%s)", ps.res.Name, g.res.Errors, g.res.ErrorSample)
	}
	if inst.Overhead != nil {
		inst.Overhead(ctx) // reset: the warmup is not measured
	}
}

// measure runs one measured run of ps: closed loop for level -1, else open
// loop at the level's rate.
func (r *runner) measure(ctx context.Context, inst *Instance, ps *peerState, level, repNo int) {
	if ctx.Err() != nil {
		return
	}
	p := r.plan
	run := &Run{Kind: "open", Level: level, Rep: repNo}
	if level < 0 {
		run.Kind = "closed"
	}
	if run.Kind == "open" && inst.Overhead != nil {
		inst.Overhead(ctx) // reset
	}

	var proxy0, backend0 TreeUsage
	if inst.Proc != nil {
		proxy0, _ = inst.Proc.Usage()
	}
	backend0, _ = r.backend.Usage()
	self0, busy0, t0 := selfCPU(), systemBusy(), time.Now()

	var g *genRun
	var err error
	if run.Kind == "closed" {
		g, err = r.e.closedLoop(ctx, p, inst.Addr, p.Closed)
	} else {
		g, err = r.e.openLoop(ctx, p, inst.Addr, r.rep.Levels[level].Rate, p.Open)
	}

	wall := time.Since(t0)
	busy := systemBusy() - busy0
	self := selfCPU() - self0
	backend1, _ := r.backend.Usage()
	var proxy1 TreeUsage
	if inst.Proc != nil {
		proxy1, _ = inst.Proc.Usage()
	}

	if g != nil {
		run.Generator = g.generator
	}
	if err != nil {
		run.Problems = append(run.Problems, "generator failed: "+err.Error())
	}
	if g != nil && g.res != nil {
		res := g.res
		run.Requests = res.Completed
		run.Errors = res.Errors
		run.ErrorSample = res.ErrorSample
		run.Elapsed = res.Elapsed
		run.RPS = res.RPS()
		if res.Latency.Histogram != nil && res.Latency.TotalCount() > 0 {
			run.Lat = percentilesOf(res.Latency.Histogram)
			run.hist = res.Latency.Histogram
		}
		if res.Lag.Histogram != nil {
			run.LagP99 = res.Lag.ValueAtQuantile(99)
			run.LagP999 = res.Lag.ValueAtQuantile(99.9)
			run.LagMax = res.Lag.Max()
		}
		if res.Errors > 0 {
			run.Problems = append(run.Problems, fmt.Sprintf("%d errors (%s)", res.Errors, res.ErrorSample))
		}
		if res.Completed == 0 {
			run.Problems = append(run.Problems, "no request completed")
		}
		if res.Behind {
			run.Problems = append(run.Problems, "generator fell behind: "+res.BehindReason)
		}
	}
	if inst.Proc != nil {
		run.ProxyCPU = proxy1.CPU - proxy0.CPU
		if run.Requests > 0 {
			run.CPUPerReq = float64(run.ProxyCPU.Microseconds()) / float64(run.Requests)
		}
		if run.Elapsed > 0 {
			run.CPUUtil = run.ProxyCPU.Seconds() / run.Elapsed.Seconds()
		}
		if exited, werr := inst.Proc.Exited(); exited {
			run.Problems = append(run.Problems, fmt.Sprintf("proxy exited (%v): %s", werr, inst.Proc.LogTail(3)))
		}
	}
	var genCPU time.Duration
	if g != nil {
		genCPU = g.cpu
	}
	backendCPU := backend1.CPU - backend0.CPU
	ours := (proxy1.CPU - proxy0.CPU) + backendCPU + genCPU + self
	run.OtherCPU = max(0, (busy-ours).Seconds()/wall.Seconds())
	// The generator's share counts over its measured window only: its
	// start (dialing, runtime) and its report are not load.
	run.LoadCPU = backendCPU.Seconds() / wall.Seconds()
	if g != nil && g.res != nil && g.res.CPU > 0 && g.res.Elapsed > 0 {
		run.LoadCPU += g.res.CPU.Seconds() / g.res.Elapsed.Seconds()
	} else {
		run.LoadCPU += genCPU.Seconds() / wall.Seconds()
	}
	// An open loop needs headroom on the load CPU: without it the
	// generator cannot keep its schedule, and the RT throttling of a
	// saturated CPU stalls everything on it for 50 ms at a time.
	if run.Kind == "open" && r.e.Placement.Pinned && run.LoadCPU > loadSaturated {
		run.Problems = append(run.Problems, fmt.Sprintf("load side saturated: backend and generator used %.0f%% of their CPU", run.LoadCPU*100))
	}
	if run.Kind == "open" && inst.Overhead != nil {
		o, err := inst.Overhead(ctx)
		if err != nil {
			run.OverheadNote = err.Error()
		} else {
			run.Overhead = o
		}
	}
	run.Valid = len(run.Problems) == 0
	ps.res.Runs = append(ps.res.Runs, run)
	r.logRun(ps.res.Name, run)
}

func (r *runner) logRun(name string, run *Run) {
	what := "saturation"
	if run.Level >= 0 {
		what = r.rep.Levels[run.Level].Label()
	}
	status := "ok"
	if !run.Valid {
		status = "INVALID: " + joinShort(run.Problems)
	}
	r.e.Logf("%s: %s rep %d: %.0f req/s, %d errors, cpu %.1fµs/req, p50 %dµs p99 %dµs p99.9 %dµs, lag p99 %dµs, load cpu %.0f%%, others %.0f%% cpu: %s",
		name, what, run.Rep, run.RPS, run.Errors, run.CPUPerReq, run.Lat.P50, run.Lat.P99, run.Lat.P999, run.LagP99, run.LoadCPU*100, run.OtherCPU*100, status)
}

// slowest returns the lowest median saturation rate among the proxies (the
// direct path only if no proxy has one) and records which peer it was.
func (r *runner) slowest() float64 {
	best, bestName := math.Inf(1), ""
	for _, proxies := range []bool{true, false} {
		for _, pr := range r.rep.Peers {
			if pr.Proxy != proxies {
				continue
			}
			s := pr.summary(func(run *Run) bool { return run.Kind == "closed" }, func(run *Run) float64 { return run.RPS })
			if s.n > 0 && s.median < best {
				best, bestName = s.median, pr.Name
			}
		}
		if bestName != "" {
			break
		}
	}
	if bestName == "" {
		return 0
	}
	r.rep.Slowest, r.rep.SlowestRPS = bestName, best
	return best
}

// stat is the median and range of one metric over the valid runs of a point.
type stat struct {
	median, lo, hi float64
	// n counts valid runs, total all runs; with no valid run the numbers
	// are of the invalid ones.
	n, total int
}

// summary computes the stat of value over the runs selected by sel.
func (pr *PeerResult) summary(sel func(*Run) bool, value func(*Run) float64) stat {
	var valid, all []float64
	for _, run := range pr.Runs {
		if !sel(run) {
			continue
		}
		all = append(all, value(run))
		if run.Valid {
			valid = append(valid, value(run))
		}
	}
	s := stat{n: len(valid), total: len(all)}
	vs := valid
	if len(vs) == 0 {
		vs = all
	}
	if len(vs) == 0 {
		return s
	}
	slices.Sort(vs)
	s.lo, s.hi = vs[0], vs[len(vs)-1]
	if m := len(vs) / 2; len(vs)%2 == 1 {
		s.median = vs[m]
	} else {
		s.median = (vs[m-1] + vs[m]) / 2
	}
	return s
}
