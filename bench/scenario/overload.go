package scenario

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
)

func init() {
	Register(Scenario{
		Name:    "overload",
		Summary: "a fixed-capacity backend offered 0.5× to 3× its capacity in four priority tiers: goodput and latency per tier, Gatehouse admission vs nginx (limit_conn + limit_req) and HAProxy (maxconn + queue)",
		Run:     overload,
	})
}

// overloadTiers are the priority tiers, highest first; each has its own
// path (/critical, …) and, in Gatehouse, its own route with that priority.
var overloadTiers = []string{"critical", "default", "degraded", "bulk"}

// overloadPlan says what overload measures.
type overloadPlan struct {
	// Workers and Service are the backend's capacity: Workers requests at
	// once, Service each, so Workers/Service requests per second.
	Workers int           `json:"workers"`
	Service time.Duration `json:"service_ns"`
	// Levels are the offered loads as multiples of capacity, split evenly
	// over the tiers.
	Levels []float64 `json:"levels"`
	// Length is each measured run; Warmup an unmeasured run before it.
	Length time.Duration `json:"length_ns"`
	Warmup time.Duration `json:"warmup_ns"`
	// Conns are each tier's generator connections; Timeout bounds a request.
	Conns   int           `json:"conns"`
	Timeout time.Duration `json:"timeout_ns"`
}

func (p overloadPlan) capacity() float64 { return float64(p.Workers) / p.Service.Seconds() }

var overloadPlans = map[harness.Mode]overloadPlan{
	harness.Quick: {Workers: 8, Service: 20 * time.Millisecond, Levels: []float64{0.5, 1, 2, 3},
		Length: 5 * time.Second, Warmup: time.Second, Conns: 256, Timeout: 5 * time.Second},
	harness.Full: {Workers: 8, Service: 20 * time.Millisecond, Levels: []float64{0.5, 1, 1.5, 2, 3},
		Length: 15 * time.Second, Warmup: 3 * time.Second, Conns: 512, Timeout: 5 * time.Second},
}

// overloadTier is one tier's outcome in one run.
type overloadTier struct {
	Tier      string  `json:"tier"`
	Offered   float64 `json:"offered_rps"`
	Goodput   float64 `json:"goodput_rps"` // 200s per second
	Errors    int64   `json:"errors"`
	ErrSample string  `json:"error_sample,omitempty"`
	P50       int64   `json:"p50_us"` // of 200s, from the intended send time
	P99       int64   `json:"p99_us"`
	Behind    bool    `json:"behind"` // the generator could not keep its schedule
}

// overloadRun is one proxy at one offered load.
type overloadRun struct {
	Proxy string         `json:"proxy"`
	Level float64        `json:"level"`
	Tiers []overloadTier `json:"tiers"`
	Err   string         `json:"error,omitempty"`
}

func (r *overloadRun) goodput() float64 {
	g := 0.0
	for _, t := range r.Tiers {
		g += t.Goodput
	}
	return g
}

type overloadResult struct {
	*faultReport
	Plan     overloadPlan      `json:"plan"`
	Configs  map[string]string `json:"configs"`
	Runs     []*overloadRun    `json:"runs"`
	Failures []string          `json:"failures,omitempty"`
}

func overload(ctx context.Context, e *harness.Env) (*harness.Report, error) {
	plan := overloadPlans[e.Mode]
	t0 := time.Now()
	res := &overloadResult{faultReport: newFaultReport(ctx, e, "overload", "Gatehouse benchmark: overload, goodput and latency per priority tier"),
		Plan: plan, Configs: map[string]string{}}
	err := runOverload(ctx, e, plan, res)
	res.Wall = time.Since(t0)
	path, werr := res.faultReport.write(e, overloadMarkdown(res), res)
	if werr != nil {
		return nil, errors.Join(err, werr)
	}
	e.Logf("wrote %s", path)
	return nil, err
}

// overloadProxy starts one proxy in front of the backend and returns its
// address and a stop function.
type overloadProxy struct {
	name  string
	start func(ctx context.Context, backend string) (addr string, stop func(), err error)
}

func runOverload(ctx context.Context, e *harness.Env, plan overloadPlan, res *overloadResult) error {
	port, err := harness.FreePort()
	if err != nil {
		return err
	}
	be, err := e.StartProcess("backend-overload", harness.RoleBackend, nil, e.Backend, "-addr", port,
		"-delay", plan.Service.String(), "-workers", strconv.Itoa(plan.Workers))
	if err != nil {
		return err
	}
	defer be.Stop()
	if err := waitOK(ctx, "http://"+port+"/", be); err != nil {
		return err
	}
	rev := treeRevision(ctx, e.ModRoot)
	res.Versions = [][2]string{{"backend", fmt.Sprintf("bench/cmd/backend -workers %d -delay %s (%.0f requests/s), tree %s", plan.Workers, plan.Service, plan.capacity(), rev)},
		{"loadgen", "bench/cmd/loadgen, one open loop per tier, tree " + rev}}
	for _, px := range overloadProxies(e, plan, res) {
		if !wantPeer(e, px.name) && px.name != "gatehouse" {
			continue
		}
		addr, stop, err := px.start(ctx, port)
		if err != nil {
			res.Failures = append(res.Failures, px.name+": "+err.Error())
			e.Logf("overload: %s: %v", px.name, err)
			continue
		}
		for _, lv := range plan.Levels {
			if plan.Warmup > 0 {
				overloadLoad(ctx, e, addr, plan, lv, plan.Warmup, "warmup")
			}
			run := overloadLoad(ctx, e, addr, plan, lv, plan.Length, "")
			run.Proxy = px.name
			res.Runs = append(res.Runs, run)
			e.Logf("overload: %s at %.1f×: goodput %.0f/s (%.0f%% of capacity)", px.name, lv, run.goodput(), 100*run.goodput()/plan.capacity())
			if ctx.Err() != nil {
				stop()
				return ctx.Err()
			}
		}
		stop()
	}
	return nil
}

// overloadLoad offers level × capacity for d, a quarter per tier, each tier
// from its own generator process.
func overloadLoad(ctx context.Context, e *harness.Env, addr string, plan overloadPlan, level float64, d time.Duration, tag string) *overloadRun {
	run := &overloadRun{Level: level, Tiers: make([]overloadTier, len(overloadTiers))}
	rate := level * plan.capacity() / float64(len(overloadTiers))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, tier := range overloadTiers {
		wg.Go(func() {
			args := append(openLoopArgs(addr, rate, d, plan.Conns, plan.Timeout, time.Second, 5*time.Second), "-path", "/"+tier)
			g, err := runLoadgen(ctx, e, "loadgen-"+tier+tag, d, args...)
			t := overloadTier{Tier: tier, Offered: rate}
			if err != nil {
				mu.Lock()
				run.Err = err.Error()
				mu.Unlock()
			}
			if g != nil {
				// Per second of the whole run, the queues' drain included:
				// a proxy that holds requests past the sending window must
				// not read as serving more than the backend can.
				t.Goodput, t.Errors, t.ErrSample, t.Behind = g.RPS(), g.Errors, g.ErrorSample, g.Behind
				if h := g.Latency.Histogram; h != nil && h.TotalCount() > 0 {
					t.P50, t.P99 = h.ValueAtQuantile(50), h.ValueAtQuantile(99)
				}
			}
			run.Tiers[i] = t
		})
	}
	wg.Wait()
	return run
}

func overloadProxies(e *harness.Env, plan overloadPlan, res *overloadResult) []overloadProxy {
	// The static limits nginx and HAProxy are usually given: in flight at
	// most twice the backend's workers, a bounded wait, no notion of tier.
	maxConn := 2 * plan.Workers
	return []overloadProxy{
		{name: "gatehouse", start: func(ctx context.Context, backend string) (string, func(), error) {
			var routes strings.Builder
			for _, t := range overloadTiers {
				fmt.Fprintf(&routes, "  - name: %s\n    match: {path_prefix: /%s}\n    priority: %s\n    service: app\n", t, t, t)
			}
			cfg := func(c harness.GatehouseConfig) string {
				s := fmt.Sprintf(`# generated by the gatehouse benchmark harness (overload)
listeners: [{name: public, address: %s}]
admin: {address: %s, token: %q}
logging: {level: warn, format: json, access_log: false}
limits:
  server: {max_connections: 10000, max_requests: 4096}
  upstream: {max_conns_per_endpoint: 512, max_idle_per_endpoint: 128}
services:
  - name: app
    endpoints: [%s]
    retry: {max_attempts: 1}
    admission: {enabled: true}
routes:
%s  - name: rest
    service: app
`, c.Listen, c.Admin, c.AdminToken, backend, routes.String())
				res.Configs["gatehouse"] = s
				return s
			}
			gh := &harness.Gatehouse{Label: "gatehouse-overload", Config: cfg}
			v, err := gh.Prepare(ctx, e)
			if err != nil {
				return "", nil, err
			}
			res.Versions = append(res.Versions, [2]string{"gatehouse", v})
			inst, err := gh.Start(ctx, e, harness.StartConfig{Backend: backend, Conns: plan.Conns})
			if err != nil {
				return "", nil, err
			}
			return inst.Addr, inst.Stop, nil
		}},
		{name: "nginx", start: func(ctx context.Context, backend string) (string, func(), error) {
			bin := lookPath("nginx")
			if bin == "" {
				return "", nil, errors.New("nginx not installed (bench/install-peers.sh)")
			}
			listen, err := harness.FreePort()
			if err != nil {
				return "", nil, err
			}
			prefix := filepath.Join(e.WorkDir, "nginx-overload")
			os.MkdirAll(filepath.Join(prefix, "logs"), 0o755)
			user := ""
			if os.Geteuid() == 0 {
				user = "user root;"
			}
			// limit_req: the backend's rate with a burst of a second's
			// worth queued (delayed); limit_conn: at most maxConn in flight.
			conf := fmt.Sprintf(`# generated by the gatehouse benchmark harness (overload)
%s
daemon off;
master_process on;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 10000; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_requests 10000000;
    limit_conn_zone $server_name zone=inflight:1m;
    limit_req_zone $server_name zone=rate:1m rate=%[3]dr/s;
    upstream backend {
        server %[4]s;
        keepalive 128;
    }
    server {
        listen %[5]s;
        location / {
            limit_conn inflight %[6]d;
            limit_req zone=rate burst=%[3]d;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`, user, prefix, int(plan.capacity()), backend, listen, maxConn)
			res.Configs["nginx"] = conf
			path := filepath.Join(prefix, "nginx.conf")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				return "", nil, err
			}
			p, err := e.StartProcess("nginx-overload", harness.RoleProxy, nil, bin, "-p", prefix, "-c", path, "-e", "stderr")
			if err != nil {
				return "", nil, err
			}
			if err := waitOK(ctx, "http://"+listen+"/critical", p); err != nil {
				p.Stop()
				return "", nil, err
			}
			res.Versions = append(res.Versions, [2]string{"nginx", bin})
			return listen, p.Stop, nil
		}},
		{name: "haproxy", start: func(ctx context.Context, backend string) (string, func(), error) {
			bin := lookPath("haproxy")
			if bin == "" {
				return "", nil, errors.New("haproxy not installed (bench/install-peers.sh)")
			}
			listen, err := harness.FreePort()
			if err != nil {
				return "", nil, err
			}
			// maxconn on the server: at most maxConn in flight, the rest
			// in HAProxy's queue (FIFO) for at most a second, then 503.
			conf := fmt.Sprintf(`# generated by the gatehouse benchmark harness (overload)
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout queue 1s
    http-reuse always
frontend fe
    bind %s
    default_backend be
backend be
    server app %s maxconn %d
`, listen, backend, maxConn)
			res.Configs["haproxy"] = conf
			dir := filepath.Join(e.WorkDir, "haproxy-overload")
			os.MkdirAll(dir, 0o755)
			path := filepath.Join(dir, "haproxy.cfg")
			if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
				return "", nil, err
			}
			p, err := e.StartProcess("haproxy-overload", harness.RoleProxy, nil, bin, "-db", "-f", path)
			if err != nil {
				return "", nil, err
			}
			if err := waitOK(ctx, "http://"+listen+"/critical", p); err != nil {
				p.Stop()
				return "", nil, err
			}
			res.Versions = append(res.Versions, [2]string{"haproxy", bin})
			return listen, p.Stop, nil
		}},
	}
}

// overloadMarkdown is the report: per proxy and offered load, the total
// goodput against capacity, then goodput (as a share of the tier's offered
// rate) and p99 latency of the served requests, per tier.
func overloadMarkdown(res *overloadResult) string {
	var b strings.Builder
	res.header(&b)
	p := res.Plan
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Setup\n\nBackend of fixed capacity: %d workers × %s = **%.0f requests/s**. Offered %v × capacity for %s per level (after %s unmeasured), split evenly over four tiers, each from its own open-loop generator (`/critical`, `/default`, `/degraded`, `/bulk`; %d connections, timeout %s; latency from the intended send time). Gatehouse: one route per tier with `priority:`, `services[].admission` at its defaults. nginx: `limit_conn` %d in flight and `limit_req` at the backend's rate with a one-second burst. HAProxy: `maxconn %d` on the server, `timeout queue 1s`. Neither peer knows tiers. Configurations are in overload.json.\n\n",
		p.Workers, p.Service, p.capacity(), p.Levels, p.Length, p.Warmup, p.Conns, p.Timeout, 2*p.Workers, 2*p.Workers)
	w("## Goodput and latency per tier\n\nGoodput: 200s per second, and as a share of the tier's offered rate; p99 of the 200s. Total: goodput as a share of the backend's capacity.\n\n")
	w("| proxy | offered | total goodput | critical | default | degraded | bulk |\n|---|---|---|---|---|---|---|\n")
	for _, r := range res.Runs {
		w("| %s | %.1f× | %.0f/s (%.0f%%) |", r.Proxy, r.Level, r.goodput(), 100*r.goodput()/p.capacity())
		for _, t := range r.Tiers {
			share := 0.0
			if t.Offered > 0 {
				share = 100 * t.Goodput / t.Offered
			}
			flag := ""
			if t.Behind {
				flag = " (generator behind)"
			}
			w(" %.0f/s %.0f%%, p99 %s%s |", t.Goodput, share, fmtMicros(t.P99), flag)
		}
		w("\n")
		if r.Err != "" {
			w("\n> %s %.1f×: %s\n\n", r.Proxy, r.Level, r.Err)
		}
	}
	for _, f := range res.Failures {
		w("\n- failed: %s\n", f)
	}
	w("\n%s\n", res.footer())
	return b.String()
}

// fmtMicros prints µs as ms (or "-" for none).
func fmtMicros(us int64) string {
	if us <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", float64(us)/1000)
}
