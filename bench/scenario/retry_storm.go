package scenario

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/bench/fleet"
	"github.com/gatehouse/gatehouse/bench/harness"
	"github.com/gatehouse/gatehouse/bench/plot"
)

func init() {
	Register(Scenario{
		Name:    "retry_storm",
		Summary: "every endpoint failing (503) for a while: upstream load multiplier, client errors and latency, Gatehouse's retry budget vs naive retries (and nginx)",
		Run:     retryStorm,
	})
}

// retryStormPlan says what retry_storm measures.
type retryStormPlan struct {
	// Reps is how often each configuration runs.
	Reps int `json:"reps"`
	// Endpoints is the fleet's size.
	Endpoints int `json:"endpoints"`
	// Rate is the open loop's rate, requests per second, over Conns
	// connections.
	Rate  float64 `json:"rate"`
	Conns int     `json:"conns"`
	// Warmup runs before each measured run, healthy, unmeasured.
	Warmup time.Duration `json:"warmup_ns"`
	// Healthy, Outage and Recovery are the phases: every endpoint answers
	// 503 during Outage.
	Healthy  time.Duration `json:"healthy_ns"`
	Outage   time.Duration `json:"outage_ns"`
	Recovery time.Duration `json:"recovery_ns"`
	// Bucket is the time series' resolution. Timeout bounds each request;
	// MaxLagP99 and MaxLag bound the generator's lag, beyond which a run is
	// invalid.
	Bucket    time.Duration `json:"bucket_ns"`
	Timeout   time.Duration `json:"timeout_ns"`
	MaxLagP99 time.Duration `json:"max_lag_p99_ns"`
	MaxLag    time.Duration `json:"max_lag_ns"`
}

// retryStormPlans: quick finishes in about a minute; full in about eight.
var retryStormPlans = map[harness.Mode]retryStormPlan{
	harness.Quick: {Reps: 1, Endpoints: 5, Rate: 1000, Conns: 64, Warmup: time.Second,
		Healthy: 3 * time.Second, Outage: 5 * time.Second, Recovery: 5 * time.Second, Bucket: 250 * time.Millisecond,
		Timeout: 5 * time.Second, MaxLagP99: time.Millisecond, MaxLag: 20 * time.Millisecond},
	harness.Full: {Reps: 2, Endpoints: 5, Rate: 1000, Conns: 64, Warmup: 3 * time.Second,
		Healthy: 10 * time.Second, Outage: 20 * time.Second, Recovery: 20 * time.Second, Bucket: 250 * time.Millisecond,
		Timeout: 5 * time.Second, MaxLagP99: time.Millisecond, MaxLag: 20 * time.Millisecond},
}

// stormConfig is one proxy configuration under test.
type stormConfig struct {
	Name string `json:"name"`
	// Proxy is "gatehouse" or "nginx".
	Proxy string `json:"proxy"`
	// Settings says how it retries, for the report.
	Settings string `json:"settings"`
	// Retry is Gatehouse's service retry block (YAML, indented).
	Retry string `json:"-"`
	// MaxFails is nginx's max_fails per server (-1: nginx's default, 1).
	MaxFails int `json:"max_fails,omitempty"`
	// Expect is the multiplier the settings allow during a long outage, as
	// a function of the rate and the fleet's size; nil when the proxy's own
	// logic decides.
	Expect func(rate float64, endpoints int) float64 `json:"-"`
}

var retryStormConfigs = []stormConfig{
	{Name: "gatehouse (budget)", Proxy: "gatehouse",
		Settings: "defaults: `max_attempts: 3`, `budget_percent: 20`, `min_per_second: 3`, `window: 10s`, backoff 10ms doubling to 250ms, jittered",
		Expect:   func(rate float64, _ int) float64 { return math.Min(3, 1+0.20+3/rate) }},
	{Name: "gatehouse (naive)", Proxy: "gatehouse",
		Settings: "like `retries=3`: `max_attempts: 4`, `budget_percent: 1000` (never binding); backoff as the default",
		Retry:    "    retry: {max_attempts: 4, budget_percent: 1000}\n",
		Expect:   func(float64, int) float64 { return 4 }},
	{Name: "nginx (tries 4)", Proxy: "nginx", MaxFails: -1,
		Settings: "`proxy_next_upstream error timeout http_502 http_503 http_504; proxy_next_upstream_tries 4;` servers at nginx's defaults (`max_fails=1 fail_timeout=10s`)"},
	{Name: "nginx (max_fails=0)", Proxy: "nginx", MaxFails: 0,
		Settings: "`proxy_next_upstream_tries 4` as above, servers with `max_fails=0`: no passive health check, every request tries up to 4 servers (each at most once)",
		Expect:   func(_ float64, n int) float64 { return float64(min(4, n)) }},
}

// stormPhase is what one phase of one run saw.
type stormPhase struct {
	Name string `json:"name"`
	// Sent and Failed count client requests (by intended send time).
	Sent   int64 `json:"sent"`
	Failed int64 `json:"failed"`
	// Attempts counts the requests the fleet received in the phase.
	Attempts   int64   `json:"attempts"`
	Multiplier float64 `json:"multiplier"`
	// Latency of every request, µs from its intended send time.
	P50  int64 `json:"p50_us"`
	P99  int64 `json:"p99_us"`
	P999 int64 `json:"p999_us"`
	Max  int64 `json:"max_us"`
	// FailP50 and FailP99: of the failed requests only.
	FailP50     int64         `json:"fail_p50_us"`
	FailP99     int64         `json:"fail_p99_us"`
	Statuses    map[int]int64 `json:"statuses,omitempty"`
	Transport   int64         `json:"transport_errors"`
	ErrorSample string        `json:"error_sample,omitempty"`
}

// stormRun is one measured run.
type stormRun struct {
	Config string       `json:"config"`
	Rep    int          `json:"rep"`
	Phases []stormPhase `json:"phases"`
	// LateOutage is the multiplier over the outage's second half, when the
	// retry budget's window holds less of the healthy time before it.
	LateOutage float64 `json:"late_outage_multiplier"`
	// LastError is when, after the outage ended, the last request that
	// failed was due (-1: none failed).
	LastError time.Duration     `json:"last_error_after_recovery_ns"`
	LagP99    int64             `json:"lag_p99_us"`
	LagMax    int64             `json:"lag_max_us"`
	CPUPerReq float64           `json:"cpu_per_req_us"`
	LoadCPU   float64           `json:"load_cpu"`
	Overhead  *harness.Overhead `json:"overhead,omitempty"`
	Traffic   *fleet.Traffic    `json:"traffic,omitempty"`
	Fleet     *fleet.Stats      `json:"fleet,omitempty"`
	Valid     bool              `json:"valid"`
	Problems  []string          `json:"problems,omitempty"`
}

// retryStormResult is the scenario's outcome.
type retryStormResult struct {
	*faultReport
	Plan     retryStormPlan    `json:"plan"`
	Configs  []stormConfig     `json:"configs"`
	Skipped  map[string]string `json:"skipped,omitempty"`
	Runs     []*stormRun       `json:"runs"`
	Failures []string          `json:"failures,omitempty"`
}

func retryStorm(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	res, err := runRetryStorm(ctx, e, retryStormPlans[e.Mode])
	return nil, writeResult(e, res, err)
}

func runRetryStorm(ctx context.Context, e *harness.Env, plan retryStormPlan) (*retryStormResult, error) {
	if plan.Reps < 1 || plan.Endpoints < 1 || plan.Rate <= 0 || plan.Conns < 1 || plan.Healthy <= 0 || plan.Outage <= 0 || plan.Recovery <= 0 {
		return nil, errors.New("retry_storm: invalid plan")
	}
	t0 := time.Now()
	res := &retryStormResult{
		faultReport: newFaultReport(ctx, e, "retry_storm", "Gatehouse benchmark: a retry storm (every endpoint failing for a while)"),
		Plan:        plan, Configs: retryStormConfigs, Skipped: map[string]string{},
	}
	defer func() { res.Wall = time.Since(t0) }()
	gv, err := (&harness.Gatehouse{}).Prepare(ctx, e)
	if err != nil {
		return nil, fmt.Errorf("gatehouse: %w", err)
	}
	rev := treeRevision(ctx, e.ModRoot)
	res.Versions = [][2]string{{"gatehouse", gv}}
	nginx := lookPath("nginx")
	switch {
	case nginx == "":
		res.Versions = append(res.Versions, [2]string{"nginx", "**not installed** (`bench/install-peers.sh` installs it): its rows are skipped"})
	default:
		v := strings.TrimPrefix(cmdOutput(ctx, "/", nginx, "-v"), "nginx version: ")
		if deb := cmdOutput(ctx, "/", "dpkg-query", "-W", "-f=${Version}", "nginx"); deb != "" && !strings.Contains(deb, " ") {
			v += " (Debian " + deb + ")"
		}
		res.Versions = append(res.Versions, [2]string{"nginx", v})
	}
	res.Versions = append(res.Versions, [2]string{"fleet", "bench/cmd/fleet, tree " + rev},
		[2]string{"phaseload", "bench/cmd/phaseload, tree " + rev})
	var configs []stormConfig
	for _, c := range retryStormConfigs {
		switch {
		case !wantPeer(e, c.Proxy):
			res.Skipped[c.Name] = "not selected (-peers)"
		case c.Proxy == "nginx" && nginx == "":
			res.Skipped[c.Name] = "nginx not installed"
		default:
			configs = append(configs, c)
		}
	}

	fl, err := startFleet(ctx, e, plan.Endpoints)
	if err != nil {
		return res, err
	}
	defer fl.Stop()
	for rep := 1; rep <= plan.Reps; rep++ {
		for _, cfg := range configs {
			run, err := measureStorm(ctx, e, fl, plan, cfg, rep, nginx)
			if err != nil {
				res.Failures = append(res.Failures, fmt.Sprintf("%s rep %d: %v", cfg.Name, rep, err))
				e.Logf("retry_storm: %s rep %d: %v", cfg.Name, rep, err)
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

// stormProxy is a started proxy in front of the fleet.
type stormProxy struct {
	addr     string
	proc     *harness.Process
	overhead func(context.Context) (*harness.Overhead, error)
}

func startStormProxy(ctx context.Context, e *harness.Env, fl *fleetProc, plan retryStormPlan, cfg stormConfig, nginx string) (*stormProxy, error) {
	label := strings.NewReplacer(" ", "", "(", "-", ")", "", ",", "", "=", "").Replace(cfg.Name)
	if cfg.Proxy == "gatehouse" {
		gh := &harness.Gatehouse{Label: label, Config: fleetGatehouseConfig(fl.addrs, cfg.Retry)}
		inst, err := gh.Start(ctx, e, harness.StartConfig{Backend: fl.addrs[0], Conns: plan.Conns})
		if err != nil {
			return nil, err
		}
		return &stormProxy{addr: inst.Addr, proc: inst.Proc, overhead: inst.Overhead}, nil
	}
	listen, err := harness.FreePort()
	if err != nil {
		return nil, err
	}
	prefix := filepath.Join(e.WorkDir, label)
	if err := os.MkdirAll(filepath.Join(prefix, "logs"), 0o755); err != nil {
		return nil, err
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // else the worker, as nobody, cannot use the work directory
	}
	maxFails := ""
	if cfg.MaxFails >= 0 {
		maxFails = fmt.Sprintf(" max_fails=%d", cfg.MaxFails)
	}
	var servers strings.Builder
	for _, a := range fl.addrs {
		fmt.Fprintf(&servers, "        server %s%s;\n", a, maxFails)
	}
	conf := fmt.Sprintf(`# generated by the gatehouse benchmark harness (retry_storm)
%s
daemon off;
master_process on;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr crit;
events {
    worker_connections 10000;
}
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    upstream fleet {
%[3]s        keepalive %[4]d;
        keepalive_requests 10000000;
        keepalive_timeout 120s;
    }
    server {
        listen %[5]s;
        location / {
            proxy_pass http://fleet;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 4;
        }
    }
}
`, user, prefix, servers.String(), plan.Conns, listen)
	path := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := e.StartProcess(label, harness.RoleProxy, nil, nginx, "-p", prefix, "-c", path, "-e", "stderr")
	if err != nil {
		return nil, err
	}
	if err := waitOK(ctx, "http://"+listen+"/", p); err != nil {
		p.Stop()
		return nil, err
	}
	return &stormProxy{addr: listen, proc: p}, nil
}

func measureStorm(ctx context.Context, e *harness.Env, fl *fleetProc, plan retryStormPlan, cfg stormConfig, rep int, nginx string) (*stormRun, error) {
	if err := fl.ctl.Run(ctx, fleet.Plan{}); err != nil {
		return nil, err
	}
	e.Logf("retry_storm: %s, rep %d: starting", cfg.Name, rep)
	px, err := startStormProxy(ctx, e, fl, plan, cfg, nginx)
	if err != nil {
		return nil, fmt.Errorf("start: %w", err)
	}
	defer px.proc.Stop()
	if plan.Warmup > 0 {
		w, err := runPhaseload(ctx, e, "phaseload-warmup", fleet.TrafficConfig{Addr: px.addr, Rate: plan.Rate, Conns: plan.Conns, Timeout: plan.Timeout,
			Phases: []fleet.Phase{{Name: "warmup", Length: plan.Warmup}}, MaxLagP99: time.Second, MaxLag: time.Second})
		switch {
		case err != nil:
			e.Logf("retry_storm: %s: warmup failed: %v", cfg.Name, err)
		case w.Phases[0].Failed() > 0:
			e.Logf("retry_storm: %s: warmup had %d failures (%s)", cfg.Name, w.Phases[0].Failed(), w.Phases[0].ErrorSample)
		}
	}
	if px.overhead != nil {
		px.overhead(ctx) // reset
	}
	// The fleet's schedule and the load start at the same wall-clock
	// instant, far enough ahead for the generator to start and connect.
	start := time.Now().Add(500 * time.Millisecond)
	total := plan.Healthy + plan.Outage + plan.Recovery
	if err := fl.ctl.Run(ctx, fleet.Plan{Start: start, Bucket: plan.Bucket, Length: total + 10*time.Second, Events: []fleet.Event{
		{At: plan.Healthy, Endpoint: fleet.AllEndpoints, Mode: fleet.ModeFail},
		{At: plan.Healthy + plan.Outage, Endpoint: fleet.AllEndpoints, Mode: fleet.ModeOK},
	}}); err != nil {
		return nil, err
	}
	proxy0, fleet0, t0 := processCPU(px.proc), processCPU(fl.Process), time.Now()
	tr, terr := runPhaseload(ctx, e, "phaseload", fleet.TrafficConfig{
		Addr: px.addr, Rate: plan.Rate, Start: start, Conns: plan.Conns, Timeout: plan.Timeout, Bucket: plan.Bucket,
		Phases:    []fleet.Phase{{Name: "healthy", Length: plan.Healthy}, {Name: "outage", Length: plan.Outage}, {Name: "recovered", Length: plan.Recovery}},
		MaxLagP99: plan.MaxLagP99, MaxLag: plan.MaxLag,
	})
	wall := time.Since(t0)
	proxyCPU, fleetCPU := processCPU(px.proc)-proxy0, processCPU(fl.Process)-fleet0
	run := &stormRun{Config: cfg.Name, Rep: rep, LastError: -1}
	if terr != nil {
		run.Problems = append(run.Problems, "generator failed: "+terr.Error())
	}
	st, serr := fl.ctl.Stats(ctx)
	if serr != nil {
		run.Problems = append(run.Problems, "fleet stats: "+serr.Error())
	}
	run.Fleet = st
	if err := fl.ctl.Stop(ctx); err != nil {
		run.Problems = append(run.Problems, "fleet: "+err.Error())
	}
	if tr != nil {
		run.Traffic = tr
		var sent int64
		for _, p := range tr.Phases {
			ph := stormPhase{Name: p.Name, Sent: p.Sent, Failed: p.Failed(), Statuses: p.Statuses, Transport: p.TransportErrors, ErrorSample: p.ErrorSample}
			if h := p.Latency.Histogram; h.TotalCount() > 0 {
				ph.P50, ph.P99, ph.P999, ph.Max = h.ValueAtQuantile(50), h.ValueAtQuantile(99), h.ValueAtQuantile(99.9), h.Max()
			}
			if h := p.FailLatency.Histogram; h.TotalCount() > 0 {
				ph.FailP50, ph.FailP99 = h.ValueAtQuantile(50), h.ValueAtQuantile(99)
			}
			if st != nil {
				ph.Attempts = st.AttemptsBetween(p.Start, p.Start+p.Length)
				ph.Multiplier = ratio(ph.Attempts, ph.Sent)
			}
			sent += p.Sent
			run.Phases = append(run.Phases, ph)
		}
		recovered := plan.Healthy + plan.Outage
		if st != nil {
			from := plan.Healthy + (plan.Outage/2/tr.Bucket)*tr.Bucket
			var sent int64
			for b, n := range tr.Sent {
				if at := time.Duration(b) * tr.Bucket; at >= from && at < recovered {
					sent += n
				}
			}
			run.LateOutage = ratio(st.AttemptsBetween(from, recovered), sent)
		}
		for b, n := range tr.Failed {
			if at := time.Duration(b) * tr.Bucket; at >= recovered && n > 0 {
				run.LastError = at + tr.Bucket - recovered
			}
		}
		run.LagP99, run.LagMax = tr.Lag.ValueAtQuantile(99), tr.Lag.Max()
		if tr.Behind {
			run.Problems = append(run.Problems, "generator fell behind: "+tr.BehindReason)
		}
		if sent > 0 {
			run.CPUPerReq = float64(proxyCPU.Microseconds()) / float64(sent)
		}
		run.LoadCPU = fleetCPU.Seconds() / wall.Seconds()
		if tr.Elapsed > 0 {
			run.LoadCPU += tr.CPU.Seconds() / tr.Elapsed.Seconds()
		}
	}
	if e.Placement.Pinned && run.LoadCPU > 0.9 {
		run.Problems = append(run.Problems, fmt.Sprintf("load side saturated: fleet and generator used %.0f%% of their CPU", run.LoadCPU*100))
	}
	if exited, werr := px.proc.Exited(); exited {
		run.Problems = append(run.Problems, fmt.Sprintf("%s exited (%v): %s", cfg.Proxy, werr, px.proc.LogTail(3)))
	}
	if px.overhead != nil {
		if o, err := px.overhead(ctx); err == nil {
			run.Overhead = o
		}
	}
	run.Valid = len(run.Problems) == 0
	var parts []string
	for _, p := range run.Phases {
		parts = append(parts, fmt.Sprintf("%s ×%.2f (%s failed, p50 %s ms)", p.Name, p.Multiplier, pct(ratio(p.Failed, p.Sent)), ms(float64(p.P50))))
	}
	status := "ok"
	if !run.Valid {
		status = "INVALID: " + strings.Join(run.Problems, "; ")
	}
	e.Logf("retry_storm: %s rep %d: %s; lag p99 %dµs max %dµs, load cpu %.0f%%: %s", cfg.Name, rep, strings.Join(parts, ", "), run.LagP99, run.LagMax, run.LoadCPU*100, status)
	return run, nil
}

func (r *retryStormResult) runsOf(config string, valid bool) []*stormRun {
	var out []*stormRun
	for _, run := range r.Runs {
		if run.Config == config && (run.Valid || !valid) {
			out = append(out, run)
		}
	}
	return out
}

// cell renders the median and range of f over config's valid runs (over
// all its runs, marked INVALID, when none is valid).
func (r *retryStormResult) cell(config string, f func(*stormRun) float64, format func(float64) string) string {
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
	out := fmtRange(statOf(vs), format)
	if invalid && len(vs) > 0 {
		out = "**INVALID** " + out
	}
	return out
}

func phaseOf(run *stormRun, i int) *stormPhase {
	if i < len(run.Phases) {
		return &run.Phases[i]
	}
	return nil
}

func (r *retryStormResult) write(e *harness.Env) (string, error) {
	if svg := r.seriesChart("Upstream load multiplier: fleet attempts per client request", "attempts per request",
		func(run *stormRun, b int) float64 {
			return ratio(bucketAt(run.Fleet.Attempts, b), bucketAt(run.Traffic.Sent, b))
		}); svg != nil {
		r.extra["retry_storm-multiplier.svg"] = svg
	}
	if svg := r.seriesChart("Client requests failed (share, by intended send time)", "failed share",
		func(run *stormRun, b int) float64 {
			return ratio(bucketAt(run.Traffic.Failed, b), bucketAt(run.Traffic.Sent, b))
		}); svg != nil {
		r.extra["retry_storm-errors.svg"] = svg
	}
	return r.faultReport.write(e, r.markdown(), r)
}

func bucketAt(b []int64, i int) int64 {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// seriesChart plots f per bucket over time, one line per configuration,
// averaged over its valid runs (all runs, dashed, when none is valid).
func (r *retryStormResult) seriesChart(title, ylabel string, f func(*stormRun, int) float64) []byte {
	p := r.Plan
	total := p.Healthy + p.Outage + p.Recovery
	nb := int(total / p.Bucket)
	lc := plot.LineChart{Title: title, XLabel: fmt.Sprintf("seconds (outage from %gs to %gs)", p.Healthy.Seconds(), (p.Healthy + p.Outage).Seconds()),
		YLabel: ylabel, Footer: r.footer()}
	for i, c := range r.Configs {
		runs := r.runsOf(c.Name, true)
		dashed := false
		if len(runs) == 0 {
			runs, dashed = r.runsOf(c.Name, false), true
		}
		runs = slices.DeleteFunc(slices.Clone(runs), func(x *stormRun) bool { return x.Traffic == nil || x.Fleet == nil })
		if len(runs) == 0 {
			continue
		}
		s := plot.Series{Name: c.Name, Color: plot.Palette[(i+1)%len(plot.Palette)], Dashed: dashed}
		for b := range nb {
			sum, n := 0.0, 0
			for _, run := range runs {
				if v := f(run, b); !math.IsNaN(v) {
					sum, n = sum+v, n+1
				}
			}
			if n > 0 {
				s.X, s.Y = append(s.X, (float64(b)+0.5)*p.Bucket.Seconds()), append(s.Y, sum/float64(n))
			}
		}
		lc.Series = append(lc.Series, s)
	}
	if len(lc.Series) == 0 {
		return nil
	}
	step := 60.0
	for _, st := range []float64{1, 2, 5, 10, 20} {
		if total.Seconds()/st <= 12 {
			step = st
			break
		}
	}
	lc.XTicks = timeTicks(total.Seconds(), step)
	return lc.SVG()
}

func (r *retryStormResult) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	r.header(&b)
	p := r.Plan
	names := []string{"healthy", "outage", "recovered"}

	w("\n## Method\n\n")
	w("- **Fleet** (`bench/cmd/fleet`): %d HTTP/1.1 endpoints in one process on the load CPU, answering 200 with a 64-byte body; during the **outage** every endpoint answers `503` at once. The fleet counts every request it receives in %s buckets: those are the **attempts**.\n", p.Endpoints, p.Bucket)
	w("- **Load**: open loop at %.0f req/s over %d keep-alive connections, `GET /`, by `bench/cmd/phaseload` (placed like the other generators): %s healthy, %s outage, %s recovered, after %s of healthy warm-up (unmeasured). Each request is timed from its *intended* send time, failed ones included, and belongs to the phase it was due in.\n", p.Rate, p.Conns, p.Healthy, p.Outage, p.Recovery, p.Warmup)
	w("- **Load multiplier** = attempts the fleet received in a phase / requests the client sent in it. *expected* is what the retry settings allow in a long outage: Gatehouse's budget grants retries up to 20%% of the service's requests over its 10s window plus 3/s, so 1 + 0.20 + 3/rate; naive retries always try 4 times. When the outage begins, the budget's window still holds the healthy requests before it, whose 20%% is spent at once: over an outage not much longer than the window the multiplier is higher, hence *outage, 2nd half*.\n")
	w("- A fresh proxy per run; each keeps its other defaults (Gatehouse: `p2c_ewma`, outlier ejection on; nginx: round robin).\n")
	w("- **Validity**: a run is invalid if the generator fell behind its schedule (lag p99 > %s or max > %s), the proxy died, or the fleet and the generator used more than 90%% of their CPU. Errors are the result here, not a defect. Cells show the median over the valid runs and their range.\n", p.MaxLagP99, p.MaxLag)
	w("\n| configuration | retries |\n|---|---|\n")
	for _, c := range r.Configs {
		s := c.Settings
		if why, ok := r.Skipped[c.Name]; ok {
			s += " — **skipped: " + why + "**"
		}
		w("| %s | %s |\n", c.Name, s)
	}

	w("\n## Upstream load multiplier (fleet attempts per client request)\n\n")
	w("| configuration | healthy | outage | outage, 2nd half | expected in outage | recovered | valid runs |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range r.Configs {
		if why, ok := r.Skipped[c.Name]; ok {
			w("| %s | skipped: %s ||||||\n", c.Name, why)
			continue
		}
		all := r.runsOf(c.Name, false)
		if len(all) == 0 {
			w("| %s | no run ||||||\n", c.Name)
			continue
		}
		cells := []string{}
		for i := range names {
			cells = append(cells, r.cell(c.Name, func(run *stormRun) float64 {
				if ph := phaseOf(run, i); ph != nil {
					return ph.Multiplier
				}
				return math.NaN()
			}, func(v float64) string { return fmt.Sprintf("%.2f×", v) }))
		}
		expect := "— (`max_fails` takes servers out)"
		if c.Expect != nil {
			expect = fmt.Sprintf("%.2f×", c.Expect(p.Rate, p.Endpoints))
		}
		late := r.cell(c.Name, func(run *stormRun) float64 { return run.LateOutage }, func(v float64) string { return fmt.Sprintf("%.2f×", v) })
		w("| %s | %s | %s | %s | %s | %s | %d/%d |\n", c.Name, cells[0], cells[1], late, expect, cells[2], len(r.runsOf(c.Name, true)), len(all))
	}

	w("\nReading it (the first plot shows when the attempts came):\n\n")
	w("- **gatehouse (budget)**: retries stay within the budget's share of the requests over its window, so the outage's average is about 1.2×; within that, they come in bursts of up to `max_attempts`× whenever the window has room — at the outage's start (the healthy requests' credit) and each time the buckets that counted the last burst slide out of the window — and one attempt per request in between.\n")
	w("- **gatehouse (naive)** tries every failed request `max_attempts` times for the whole outage, and each failure reaches the client later (the backoff between attempts).\n")
	w("- **nginx (tries 4)**: one failure takes a server out for `fail_timeout` (10s); with every server out, nginx answers 502 itself without trying any, so the fleet sees almost nothing during the outage — and servers come back only as their `fail_timeout` runs out, so requests keep failing for a while after the outage.\n")
	w("- **nginx (max_fails=0)** has no passive check: every request tries up to 4 servers (each at most once).\n")
	w("\n## What the client saw\n\n")
	w("Latency in ms from the intended send time, of every request (answered or failed); *failed p50* is of the failed ones only. After the outage: until when, after its end, requests still failed (by intended send time, rounded up to the %s bucket).\n\n", p.Bucket)
	w("| configuration | phase | failed | p50 | p99 | p99.9 | max | failed p50 | answers |\n|---|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range r.Configs {
		if _, ok := r.Skipped[c.Name]; ok || len(r.runsOf(c.Name, false)) == 0 {
			continue
		}
		for i, name := range names {
			get := func(f func(*stormPhase) float64) func(*stormRun) float64 {
				return func(run *stormRun) float64 {
					if ph := phaseOf(run, i); ph != nil {
						return f(ph)
					}
					return math.NaN()
				}
			}
			failed := r.cell(c.Name, get(func(ph *stormPhase) float64 { return ratio(ph.Failed, ph.Sent) }), pct)
			answers := r.answers(c.Name, i)
			if i == 2 {
				failed += ", " + r.lastErrors(c.Name)
			}
			w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Name, name, failed,
				r.cell(c.Name, get(func(ph *stormPhase) float64 { return float64(ph.P50) }), ms),
				r.cell(c.Name, get(func(ph *stormPhase) float64 { return float64(ph.P99) }), ms),
				r.cell(c.Name, get(func(ph *stormPhase) float64 { return float64(ph.P999) }), ms),
				r.cell(c.Name, get(func(ph *stormPhase) float64 { return float64(ph.Max) }), ms),
				r.cell(c.Name, get(func(ph *stormPhase) float64 {
					if ph.Failed == 0 {
						return math.NaN()
					}
					return float64(ph.FailP50)
				}), ms),
				answers)
		}
	}

	w("\n## Plots\n\n")
	for _, name := range []string{"retry_storm-multiplier.svg", "retry_storm-errors.svg"} {
		if _, ok := r.extra[name]; ok {
			w("![%s](%s)\n\n", strings.TrimSuffix(name, ".svg"), name)
		}
	}

	w("## All runs\n\n| configuration | rep | phase | sent | failed | attempts | multiplier | p50 | p99 | max | CPU µs/req | lag p99/max µs | load CPU | status |\n")
	w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, run := range r.Runs {
		status := "ok"
		if !run.Valid {
			status = "**INVALID**: " + strings.Join(run.Problems, "; ")
		}
		for _, ph := range run.Phases {
			w("| %s | %d | %s | %d | %d | %d | %.2f× | %s | %s | %s | %.1f | %d/%d | %.0f%% | %s |\n", run.Config, run.Rep, ph.Name, ph.Sent, ph.Failed, ph.Attempts, ph.Multiplier,
				ms(float64(ph.P50)), ms(float64(ph.P99)), ms(float64(ph.Max)), run.CPUPerReq, run.LagP99, run.LagMax, run.LoadCPU*100, status)
		}
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

// lastErrors says until when, after the outage, config's requests failed:
// median and range over its valid runs (all runs when none is valid).
func (r *retryStormResult) lastErrors(config string) string {
	runs := r.runsOf(config, true)
	if len(runs) == 0 {
		runs = r.runsOf(config, false)
	}
	var vs []float64
	toEnd := false
	for _, run := range runs {
		vs = append(vs, max(run.LastError, 0).Seconds())
		toEnd = toEnd || run.LastError >= r.Plan.Recovery
	}
	st := statOf(vs)
	switch {
	case st.n == 0:
		return "—"
	case st.hi == 0:
		return "none after it"
	case toEnd:
		return "to the phase's end in some run"
	}
	return "until +" + fmtRange(st, func(v float64) string { return fmt.Sprintf("%.2fs", v) })
}

// answers summarizes what the failed requests of a phase got, over all of
// config's runs: statuses and transport errors.
func (r *retryStormResult) answers(config string, phase int) string {
	statuses := map[int]int64{}
	var transport int64
	sample := ""
	for _, run := range r.runsOf(config, false) {
		ph := phaseOf(run, phase)
		if ph == nil {
			continue
		}
		for s, n := range ph.Statuses {
			statuses[s] += n
		}
		transport += ph.Transport
		if sample == "" && ph.Transport > 0 {
			sample = ph.ErrorSample
		}
	}
	var parts []string
	var codes []int
	for s := range statuses {
		codes = append(codes, s)
	}
	slices.Sort(codes)
	for _, s := range codes {
		parts = append(parts, fmt.Sprintf("%d× %d", statuses[s], s))
	}
	if transport > 0 {
		parts = append(parts, fmt.Sprintf("%d× no answer (%s)", transport, strings.ReplaceAll(sample, "|", "/")))
	}
	if len(parts) == 0 {
		return "all 200"
	}
	return strings.Join(parts, ", ")
}
