package proxy

import (
	"crypto/tls"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse/gatehouse/core/admission"
	"github.com/gatehouse/gatehouse/core/balance"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/health"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/pool"
	"github.com/gatehouse/gatehouse/core/retry"
	"github.com/gatehouse/gatehouse/core/route"
	"github.com/gatehouse/gatehouse/core/traceparent"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/rs/zerolog"
)

// Shared is what outlives configuration versions: the global in-flight
// count, the observers, the clock and the pools (kept across reloads so
// keep-alive connections survive them).
type Shared struct {
	// Clock stamps passports. Default: the system clock.
	Clock passport.Clock
	// Observers receive every finished request, in order, synchronously:
	// they must be fast and must not block (see Record).
	Observers []Observer
	// Log receives the core's own events (hook failures).
	Log zerolog.Logger
	// Scripts resolves a binding's script name to its versions (the
	// gateway keeps the script hosts); nil when no scripts are configured.
	Scripts func(name string) hook.Source
	// Plugins resolves a binding's plugin name to its versions (the
	// gateway keeps the plugin hosts); nil when no plugins are configured.
	Plugins func(name string) hook.Source
	// HookObservers runs observe hooks after requests; nil until first needed.
	HookObservers *hook.Observers
	// Tracing, when set, starts a trace context for every request (read
	// from the caller's headers or new, sampled) and sends it to endpoints;
	// nil means tracing is off and nothing is read or injected.
	Tracing atomic.Pointer[traceparent.Sampler]

	inflight  atomic.Int64
	passports passport.Pool
	shape     shaping // admission limiters, rate-limit buckets, Redis (under mu)

	mu        sync.Mutex
	pools     map[poolKey]*pool.Pool
	endpoints map[endpointKey]*balance.Endpoint
	built     bool // a runtime was built before: endpoints new now slow-start
}

type endpointKey struct{ service, addr string }

// InFlight returns the number of requests being served.
func (s *Shared) InFlight() int64 { return s.inflight.Load() }

type poolKey struct {
	service, addr string
	tls           bool
	opts          pool.Options
}

// Runtime is one immutable configuration version. Requests load the current
// Runtime once and finish on it.
type Runtime struct {
	checkers    []*health.Checker
	shared      *Shared
	routes      *route.Table[*Route]
	services    map[string]*Service
	maxRequests int64
	pools       map[poolKey]*pool.Pool
	endpoints   map[endpointKey]*balance.Endpoint
	routeList   []*Route
	// healthChecks start when the runtime is activated.
	healthChecks []pendingCheck
}

type pendingCheck struct {
	eps  []*balance.Endpoint
	opts health.Options
	path string
}

// balanceOptions turns a service's settings into balancer options.
func balanceOptions(sc *config.Service) balance.Options {
	o := balance.DefaultOptions()
	b, ol := sc.Balancing, sc.Outlier
	o.LatencyTau, o.FailureTau, o.FailurePenalty, o.ProbeInterval = b.LatencyTau.Std(), b.FailureTau.Std(), b.FailurePenalty.Std(), b.ProbeInterval.Std()
	o.Choices = b.Choices
	if sc.SlowStart != nil {
		o.SlowStart = sc.SlowStart.Std()
	}
	o.Outlier = balance.OutlierOptions{Enabled: ol.Enabled, ConsecutiveFailures: ol.ConsecutiveFailures,
		MinSuccessRate: float64(ol.MinSuccessPercent) / 100, MinRequests: ol.MinRequests, Window: ol.Window.Std(),
		BaseEjection: ol.BaseEjection.Std(), MaxEjection: ol.MaxEjection.Std(), Jitter: float64(ol.JitterPercent) / 100,
		MaxEjectedShare: float64(ol.MaxEjectedPercent) / 100, ProbeTimeout: ol.ProbeTimeout.Std()}
	return o
}

// Route is a compiled route.
type Route struct {
	Name        string
	Service     *Service
	StripPrefix string
	Limits      RequestLimits
	// Hooks are the route's bindings, global ones first; nil without hooks.
	Hooks       *hook.Chain
	globalHooks int
	// Priority is the tier of requests no shape hook places.
	Priority sdk.Priority
	// RateLimit is the route's rate limit; nil without one.
	RateLimit *rateLimit
}

// RequestLimits are a route's request bounds, in Go units.
type RequestLimits struct {
	Deadline           time.Duration
	MaxBodyBytes       int64
	Body               rateRule // client upload (hard is set per request)
	Client             rateRule // client download
	UpgradeIdleTimeout time.Duration
}

// Service is a compiled service.
type Service struct {
	Name      string
	Endpoints []*balance.Endpoint
	Balancer  balance.Balancer
	Limits    UpstreamLimits
	Retry     retry.Options
	Budget    *retry.Budget
	// ReplayBodyBytes and MinAttemptTime: see config.Retry.
	ReplayBodyBytes int64
	MinAttemptTime  time.Duration
	// Admission is the service's adaptive concurrency limit; nil when off.
	// RetryAfter goes with the 503 of a request it sheds.
	Admission  *admission.Limiter
	RetryAfter time.Duration
	// pools by endpoint address (http1); transport for h2c/h2.
	pools     map[string]*pool.Pool
	transport *h2Upstream
}

// UpstreamLimits are a service's upstream bounds, in Go units.
type UpstreamLimits struct {
	ConnectTimeout   time.Duration
	HeaderTimeout    time.Duration
	MaxHeaderBytes   int64
	MaxResponseBytes int64
	Body             rateRule
}

// Build compiles cfg into a Runtime. Pools of endpoints whose settings did
// not change are taken over from the previous runtimes (through shared).
func Build(cfg *config.Config, shared *Shared) (*Runtime, error) {
	if shared.Clock == nil {
		shared.Clock = passport.SystemClock
	}
	rt := &Runtime{
		shared:      shared,
		services:    make(map[string]*Service, len(cfg.Services)),
		maxRequests: int64(cfg.Limits.Server.MaxRequests),
		pools:       map[poolKey]*pool.Pool{},
		endpoints:   map[endpointKey]*balance.Endpoint{},
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pools == nil {
		shared.pools = map[poolKey]*pool.Pool{}
	}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		up := sc.Limits.Upstream
		svc := &Service{
			Name: sc.Name,
			Limits: UpstreamLimits{
				ConnectTimeout:   up.ConnectTimeout.Std(),
				HeaderTimeout:    up.HeaderTimeout.Std(),
				MaxHeaderBytes:   int64(up.MaxHeaderBytes),
				MaxResponseBytes: int64(up.MaxResponseBytes),
				Body:             rateRule{rate: int64(up.BodyMinRate), grace: up.BodyRateGrace.Std()},
			},
			pools: map[string]*pool.Pool{},
			Retry: retry.Options{MaxAttempts: sc.Retry.MaxAttempts, BudgetPercent: sc.Retry.BudgetPercent,
				MinPerSecond: sc.Retry.MinPerSecond, Window: sc.Retry.Window.Std(),
				BackoffBase: sc.Retry.BackoffBase.Std(), BackoffMax: sc.Retry.BackoffMax.Std()},
			ReplayBodyBytes: int64(sc.Retry.ReplayBodyBytes),
			MinAttemptTime:  sc.Retry.MinAttemptTime.Std(),
		}
		svc.Budget = retry.NewBudget(svc.Retry, nil)
		// Endpoints outlive reloads, so their latency, failure rate and
		// ejection state carry over; one that joins on a reload slow-starts.
		for _, addr := range sc.Endpoints {
			k := endpointKey{sc.Name, addr}
			ep := shared.endpoints[k]
			if ep == nil {
				ep = &balance.Endpoint{Addr: addr}
				if shared.built {
					ep.Joined = balance.Now()
				}
			}
			svc.Endpoints = append(svc.Endpoints, ep)
			rt.endpoints[k] = ep
		}
		b, err := balance.NewWithOptions(sc.Balancer, svc.Endpoints, balanceOptions(sc))
		if err != nil {
			return nil, configError(cfg, fmt.Sprintf("services[%d].balancer", i), err)
		}
		svc.Balancer = b
		if hc := sc.HealthCheck; hc.Enabled {
			rt.healthChecks = append(rt.healthChecks, pendingCheck{eps: svc.Endpoints, opts: health.Options{Path: hc.Path,
				Interval: hc.Interval.Std(), Timeout: hc.Timeout.Std(), Healthy: hc.Healthy, Unhealthy: hc.Unhealthy}, path: fmt.Sprintf("services[%d].health_check", i)})
		}
		var tlsConf *tls.Config
		if sc.TLS || sc.Protocol == "h2" {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		switch sc.Protocol {
		case "h2c", "h2":
			svc.transport = newH2Upstream(sc.Name, up.ConnectTimeout.Std(), up.IdleTimeout.Std(), up.HeaderTimeout.Std(),
				up.MaxConnsPerEndpoint, int64(up.MaxHeaderBytes), tlsConf)
		default:
			opts := pool.Options{
				ConnectTimeout: up.ConnectTimeout.Std(),
				MaxConns:       up.MaxConnsPerEndpoint,
				MaxIdle:        up.MaxIdlePerEndpoint,
				IdleTimeout:    up.IdleTimeout.Std(),
				TLS:            tlsConf,
				Service:        sc.Name,
			}
			for _, addr := range sc.Endpoints {
				k := poolKey{service: sc.Name, addr: addr, tls: sc.TLS, opts: opts}
				k.opts.TLS = nil
				p := shared.pools[k]
				if p == nil {
					p = pool.New(addr, opts)
					shared.pools[k] = p
				}
				svc.pools[addr] = p
				rt.pools[k] = p
			}
		}
		rt.services[sc.Name] = svc
	}
	global, err := buildBindings(cfg, "hooks", cfg.Hooks, shared)
	if err != nil {
		return nil, err
	}
	specs := make([]route.Spec[*Route], 0, len(cfg.Routes))
	for ri, rc := range cfg.Routes {
		rl := rc.Limits.Request
		r := &Route{
			Name:    rc.Name,
			Service: rt.services[rc.Service],
			Limits: RequestLimits{
				Deadline:           rl.Deadline.Std(),
				MaxBodyBytes:       int64(rl.MaxBodyBytes),
				Body:               rateRule{rate: int64(rl.BodyMinRate), grace: rl.BodyRateGrace.Std()},
				Client:             rateRule{rate: int64(rl.ClientMinRate), grace: rl.BodyRateGrace.Std()},
				UpgradeIdleTimeout: rl.UpgradeIdleTimeout.Std(),
			},
		}
		if r.Service == nil {
			return nil, fmt.Errorf("route %q: unknown service %q", rc.Name, rc.Service)
		}
		if rc.StripPrefix && rc.Match.PathPrefix != "/" {
			r.StripPrefix = rc.Match.PathPrefix
		}
		own, err := buildBindings(cfg, fmt.Sprintf("routes[%d].hooks", ri), rc.Hooks, shared)
		if err != nil {
			return nil, err
		}
		if bs := append(append([]*hook.Binding(nil), global...), own...); len(bs) > 0 {
			r.Hooks = &hook.Chain{Bindings: bs, Log: shared.Log}
			r.globalHooks = len(global)
			if shared.HookObservers == nil {
				shared.HookObservers = hook.NewObservers(1024)
			}
		}
		rt.routeList = append(rt.routeList, r)
		specs = append(specs, route.Spec[*Route]{Name: rc.Name, Host: rc.Match.Host, PathPrefix: rc.Match.PathPrefix,
			Methods: rc.Match.Methods, Target: r})
	}
	if err := buildShaping(cfg, rt, shared); err != nil {
		return nil, err
	}
	rt.routes = route.NewTable(specs)
	return rt, nil
}

// buildBindings compiles hook bindings; scripts come from shared.Scripts,
// compiled-in Go hooks from the hook registry.
func buildBindings(cfg *config.Config, path string, bs []config.HookBinding, shared *Shared) ([]*hook.Binding, error) {
	out := make([]*hook.Binding, 0, len(bs))
	for i, b := range bs {
		p := fmt.Sprintf("%s[%d]", path, i)
		hb := &hook.Binding{Budget: b.Budget.Std(), MaxConcurrent: int64(b.MaxConcurrent), BodyBytes: int64(b.BodyBytes),
			AllowHost: b.AllowHost, Policy: hook.Policy{Open: b.OnFailure == "open", Status: b.FailureStatus}}
		for _, ph := range b.Phases {
			phase, err := sdk.ParsePhase(ph)
			if err != nil {
				return nil, configError(cfg, p+".phases", err)
			}
			hb.Phases = hb.Phases.With(phase)
		}
		switch {
		case b.Go != "":
			impl, err := hook.NewGo(b.Go, b.Config)
			if err != nil {
				return nil, configError(cfg, p+".go", err)
			}
			// A phase the hook does not implement would never run it.
			if err := hook.CheckPhases(b.Go, impl, hb.Phases); err != nil {
				return nil, configError(cfg, p+".phases", err)
			}
			hb.Name = b.Go
			hb.Source = hook.Static{V: hook.NewVersion(b.Go, impl, "go")}
		case b.Plugin != "":
			var src hook.Source
			if shared.Plugins != nil {
				src = shared.Plugins(b.Plugin)
			}
			if src == nil {
				return nil, configError(cfg, p+".plugin", fmt.Errorf("plugin %q is not running", b.Plugin))
			}
			hb.Name, hb.Source = b.Plugin, src
		default:
			var src hook.Source
			if shared.Scripts != nil {
				src = shared.Scripts(b.Script)
			}
			if src == nil {
				return nil, configError(cfg, p+".script", fmt.Errorf("script %q is not loaded", b.Script))
			}
			hb.Name, hb.Source = b.Script, src
		}
		out = append(out, hb)
	}
	return out, nil
}

func configError(cfg *config.Config, path string, err error) error {
	if ce := cfg.ErrorAt(path, err.Error()); ce != nil {
		return config.Errors{ce}
	}
	return fmt.Errorf("%s: %w", path, err)
}

// Activate makes rt the live runtime for pool bookkeeping: pools that no
// runtime uses any more are closed (connections in use close when released).
func (rt *Runtime) Activate() {
	s := rt.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, p := range s.pools {
		if _, ok := rt.pools[k]; !ok {
			p.Close()
			delete(s.pools, k)
		}
	}
	s.endpoints = rt.endpoints
	s.built = true
	for _, pc := range rt.healthChecks {
		if c, err := health.New(pc.eps, pc.opts); err == nil {
			rt.checkers = append(rt.checkers, c)
		} else {
			s.Log.Error().Err(err).Str("key", pc.path).Msg("health checks not started")
		}
	}
}

// Retire stops what the runtime runs in the background (health checks)
// once a newer runtime is active.
func (rt *Runtime) Retire() {
	for _, c := range rt.checkers {
		c.Close()
	}
	rt.checkers = nil
}

// CloseIdle closes idle upstream connections past their idle timeout (all
// of them with all set). The gateway calls it periodically and at shutdown.
func (rt *Runtime) CloseIdle(all bool) {
	for _, p := range rt.pools {
		p.CloseIdle(all)
	}
	for _, s := range rt.services {
		if s.transport != nil && all {
			s.transport.CloseIdleConnections()
		}
	}
}

// HookBindings lists every hook binding of the runtime once, with its scope
// ("global" or the route's name).
func (rt *Runtime) HookBindings() (scopes []string, bindings []*hook.Binding) {
	seen := map[*hook.Binding]bool{}
	for _, r := range rt.routeList {
		if r.Hooks == nil {
			continue
		}
		for i, b := range r.Hooks.Bindings {
			if seen[b] {
				continue
			}
			seen[b] = true
			scope := r.Name
			if i < r.globalHooks {
				scope = "global"
			}
			scopes, bindings = append(scopes, scope), append(bindings, b)
		}
	}
	return scopes, bindings
}

// Services returns the compiled services by name (read-only).
func (rt *Runtime) Services() map[string]*Service { return rt.services }
