package proxy

import (
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/core/admission"
	"github.com/gatehouse/gatehouse/core/config"
	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/ratelimit"
	"github.com/gatehouse/gatehouse/sdk"
)

// shaping is what admission and rate limiting keep across configuration
// versions: the services' limiters (their learned limits), the routes'
// local buckets and the Redis client. Guarded by Shared.mu.
type shaping struct {
	limiters map[string]*admission.Limiter // by service name
	buckets  map[bucketsKey]*ratelimit.Limiter
	redis    *ratelimit.Redis
	retired  []*ratelimit.Redis // replaced clients, closed with Shared
}

type bucketsKey struct {
	route   string
	rule    ratelimit.Rule
	maxKeys int
	shared  bool
}

// rateLimit is a route's compiled rate limit.
type rateLimit struct {
	*ratelimit.Limiter
	byRoute bool // requests without a hook's key share one bucket
}

// buildShaping gives the runtime's services their admission limiters and
// its routes their priority and rate limits. shared.mu is held.
func buildShaping(cfg *config.Config, rt *Runtime, shared *Shared) error {
	sh := &shared.shape
	if sh.limiters == nil {
		sh.limiters, sh.buckets = map[string]*admission.Limiter{}, map[bucketsKey]*ratelimit.Limiter{}
	}
	for i := range cfg.Services {
		sc := &cfg.Services[i]
		a := sc.Admission
		if !a.Enabled {
			continue
		}
		o := admission.Options{InitialLimit: a.InitialLimit, MinLimit: a.MinLimit, MaxLimit: a.MaxLimit,
			MaxQueue: a.MaxQueue, QueueTimeout: a.QueueTimeout.Std(), Target: a.QueueTarget.Std(),
			Interval: a.QueueInterval.Std(), Window: a.Window.Std(), WindowSamples: a.WindowSamples,
			BaseWindow: a.BaseWindow.Std()}
		l := sh.limiters[sc.Name]
		if l == nil {
			l = admission.New(o)
			sh.limiters[sc.Name] = l
		} else {
			l.SetOptions(o)
		}
		svc := rt.services[sc.Name]
		svc.Admission, svc.RetryAfter = l, a.RetryAfter.Std()
	}
	var redisOpts ratelimit.RedisOptions
	if rd := cfg.Redis; rd.Address != "" {
		redisOpts = ratelimit.RedisOptions{Address: rd.Address, Timeout: rd.Timeout.Std(), ProbeInterval: rd.ProbeInterval.Std(),
			PoolSize: rd.PoolSize, KeyPrefix: rd.KeyPrefix, Log: shared.Log}
	}
	for i, rc := range cfg.Routes {
		r := rt.routeList[i]
		p, err := sdk.ParsePriority(rc.Priority)
		if err != nil {
			return configError(cfg, fmt.Sprintf("routes[%d].priority", i), err)
		}
		if p == sdk.PriorityUnset {
			p = sdk.PriorityDefault
		}
		r.Priority = p
		rl := rc.RateLimit
		if rl == nil {
			continue
		}
		rule := ratelimit.Rule{Rate: rl.Rate, Per: rl.Per.Std(), Burst: rl.Burst}
		if rule.Burst == 0 {
			rule.Burst = rule.Rate
		}
		var rd *ratelimit.Redis
		if rl.Shared {
			if sh.redis == nil || !sameRedis(sh.redis.Options(), redisOpts) {
				if sh.redis != nil {
					sh.retired = append(sh.retired, sh.redis)
				}
				sh.redis = ratelimit.NewRedis(redisOpts)
			}
			rd = sh.redis
		}
		k := bucketsKey{route: rc.Name, rule: rule, maxKeys: rl.MaxKeys, shared: rl.Shared}
		lim := sh.buckets[k]
		if lim == nil || lim.Shared != rd {
			lim = ratelimit.NewLimiter(rc.Name, rule, rl.MaxKeys, rd)
			sh.buckets[k] = lim
		}
		r.RateLimit = &rateLimit{Limiter: lim, byRoute: rl.Key == "route"}
	}
	// Forget the limiters and buckets this version no longer uses.
	for name := range sh.limiters {
		if s := rt.services[name]; s == nil || s.Admission == nil {
			delete(sh.limiters, name)
		}
	}
	for k, lim := range sh.buckets {
		if r := rt.routeNamed(k.route); r == nil || r.RateLimit == nil || r.RateLimit.Limiter != lim {
			delete(sh.buckets, k)
		}
	}
	return nil
}

func sameRedis(a, b ratelimit.RedisOptions) bool {
	return a.Address == b.Address && a.Timeout == b.Timeout && a.ProbeInterval == b.ProbeInterval &&
		a.PoolSize == b.PoolSize && a.KeyPrefix == b.KeyPrefix
}

func (rt *Runtime) routeNamed(name string) *Route {
	for _, r := range rt.routeList {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Close releases what the shared state runs in the background (the Redis
// clients and their probes). The gateway calls it once, at shutdown.
func (s *Shared) Close() {
	s.mu.Lock()
	sh := &s.shape
	rs := append(sh.retired, sh.redis)
	sh.redis, sh.retired = nil, nil
	s.mu.Unlock()
	for _, r := range rs {
		if r != nil {
			r.Close()
		}
	}
}

// admit applies the route's rate limit, then the service's admission
// (SHAPED → QUEUED → ADMITTED, or FAILED). It returns false when the
// request was refused; otherwise, when st.admitted, release must follow.
func (st *reqState) admit() bool {
	r, svc := st.route, st.svc
	if rl := r.RateLimit; rl != nil {
		key, cost := st.shaping.RateKey, max(st.shaping.Cost, 1)
		switch {
		case key != "":
		case rl.byRoute:
			key = "route"
		default:
			key = "ip:" + st.clientIP
		}
		d := rl.Take(st.req.Ctx, key, cost, st.deadline)
		if !d.Allowed {
			st.retryAfter = d.RetryAfter
			st.fail(failure.New(failure.RateLimited, "route %q: rate limit of %d per %s (burst %d) exceeded for key %q (cost %d)",
				r.Name, rl.Rule.Rate, rl.Rule.Per, rl.Rule.Burst, key, cost))
			return false
		}
	}
	lim := svc.Admission
	if lim == nil {
		st.m.To(passport.Admitted)
		return true
	}
	prio := st.shaping.Priority
	if prio == sdk.PriorityUnset {
		prio = r.Priority
	}
	ok, w, reason := lim.Admit(prio)
	if !ok && w != nil {
		st.m.To(passport.Queued)
		var waited time.Duration
		ok, reason, waited = lim.Wait(st.req.Ctx, w, st.deadline)
		if !ok {
			if reason == admission.ClientGone {
				st.fail(failure.New(failure.ClientGone, "client went away after %s in the queue of service %q", waited.Round(time.Microsecond), svc.Name))
				return false
			}
			st.shed(prio, reason, waited)
			return false
		}
	} else if !ok {
		st.shed(prio, reason, 0)
		return false
	}
	st.admitted = lim
	st.m.To(passport.Admitted)
	return true
}

// shed answers 503 with Retry-After for a request admission turned away.
func (st *reqState) shed(prio sdk.Priority, reason admission.Reason, waited time.Duration) {
	svc := st.svc
	o := svc.Admission.Options()
	var why string
	switch reason {
	case admission.QueueFull:
		why = fmt.Sprintf("queue full (admission.max_queue = %d)", o.MaxQueue)
	case admission.Evicted:
		why = fmt.Sprintf("evicted from the full queue by a higher tier after %s", waited.Round(time.Microsecond))
	case admission.Overload:
		why = fmt.Sprintf("overloaded: waited %s, past admission.queue_target = %s", waited.Round(time.Microsecond), o.Target)
	default:
		why = fmt.Sprintf("waited %s (admission.queue_timeout = %s, or the request's deadline)", waited.Round(time.Microsecond), o.QueueTimeout)
	}
	st.retryAfter = svc.RetryAfter
	st.fail(failure.New(failure.Shed, "service %q at its concurrency limit (%d): %s request shed, %s",
		svc.Name, svc.Admission.Limit(), strings.ToLower(prio.String()), why))
}

// release returns the admission slot, telling the limiter the latency the
// service showed: from admission to the response head, or a drop when the
// service timed out or answered 503.
func (st *reqState) release() {
	lim := st.admitted
	if lim == nil {
		return
	}
	st.admitted = nil
	var s admission.Sample
	p := st.m.P
	if d, ok := p.Between(passport.Admitted, passport.RespHeadersReceived); ok {
		s.Latency = max(d, time.Nanosecond)
		s.Dropped = st.rec.Status == 503 && st.m.Outcome == failure.Success
	} else {
		switch st.m.Outcome {
		case failure.UpstreamHeaderTimeout, failure.ConnectTimeout, failure.DeadlineExceeded:
			s.Dropped = true
		}
	}
	lim.Release(s)
}

// retryAfterValue is Retry-After in whole seconds, at least 1.
func retryAfterValue(d time.Duration) string {
	return fmt.Sprint(max(int64((d+time.Second-1)/time.Second), 1))
}

// AdmissionStat is one service's admission state, for metrics.
type AdmissionStat struct {
	Service string
	Limiter *admission.Limiter
}

// RateLimitStat is one route's rate limiter, for metrics.
type RateLimitStat struct {
	Route   string
	Limiter *ratelimit.Limiter
}

// Shaping lists the runtime's admission limiters and rate limiters, and
// the Redis client in use (nil without shared limits).
func (rt *Runtime) Shaping() (adm []AdmissionStat, rl []RateLimitStat, rd *ratelimit.Redis) {
	for name, s := range rt.services {
		if s.Admission != nil {
			adm = append(adm, AdmissionStat{Service: name, Limiter: s.Admission})
		}
	}
	for _, r := range rt.routeList {
		if r.RateLimit != nil {
			rl = append(rl, RateLimitStat{Route: r.Name, Limiter: r.RateLimit.Limiter})
			if r.RateLimit.Shared != nil {
				rd = r.RateLimit.Shared
			}
		}
	}
	return adm, rl, rd
}
