package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gatehouse/gatehouse/core/admission"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/core/ratelimit"
)

// ShapingCollector exports admission and rate-limit state, read from the
// running configuration at scrape time (the request path only bumps atomic
// counters).
type ShapingCollector struct {
	// Shaping returns the running configuration's limiters (see
	// proxy.Runtime.Shaping).
	Shaping func() ([]proxy.AdmissionStat, []proxy.RateLimitStat, *ratelimit.Redis)
}

var (
	admLimit    = prometheus.NewDesc("gatehouse_admission_limit", "The service's adaptive concurrency limit.", []string{"service"}, nil)
	admInflight = prometheus.NewDesc("gatehouse_admission_in_flight", "Requests admitted to the service and not yet finished.", []string{"service"}, nil)
	admQueue    = prometheus.NewDesc("gatehouse_admission_queue_length", "Requests waiting for the service.", []string{"service"}, nil)
	admAdmitted = prometheus.NewDesc("gatehouse_admission_admitted_total", "Requests admitted, by tier.", []string{"service", "tier"}, nil)
	admQueued   = prometheus.NewDesc("gatehouse_admission_queued_total", "Requests that waited in the queue (admitted or shed), by tier.", []string{"service", "tier"}, nil)
	admShed     = prometheus.NewDesc("gatehouse_admission_shed_total", "Requests shed, by tier and reason (queue_full, evicted, queue_timeout, overload, client_gone).", []string{"service", "tier", "reason"}, nil)
	admWait     = prometheus.NewDesc("gatehouse_admission_queue_wait_seconds", "Time requests waited in the queue.", []string{"service"}, nil)

	rlAllowed  = prometheus.NewDesc("gatehouse_ratelimit_allowed_total", "Requests within the route's rate limit.", []string{"route"}, nil)
	rlLimited  = prometheus.NewDesc("gatehouse_ratelimit_limited_total", "Requests refused by the route's rate limit (429).", []string{"route"}, nil)
	rlFallback = prometheus.NewDesc("gatehouse_ratelimit_local_fallback_total", "Decisions of a shared rate limit taken locally because Redis failed or was down.", []string{"route"}, nil)
	rlEvicted  = prometheus.NewDesc("gatehouse_ratelimit_evicted_keys_total", "Local buckets dropped to stay within rate_limit.max_keys.", []string{"route"}, nil)

	redisDown      = prometheus.NewDesc("gatehouse_ratelimit_redis_down", "1 while Redis is considered down and shared limits are counted locally.", nil, nil)
	redisCalls     = prometheus.NewDesc("gatehouse_ratelimit_redis_calls_total", "Bucket updates sent to Redis.", nil, nil)
	redisErrors    = prometheus.NewDesc("gatehouse_ratelimit_redis_errors_total", "Bucket updates to Redis that failed or overran redis.timeout.", nil, nil)
	redisFallbacks = prometheus.NewDesc("gatehouse_ratelimit_redis_fallbacks_total", "Times Redis was found down and shared limits fell back to local buckets.", nil, nil)
)

// Describe sends the descriptors.
func (c ShapingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{admLimit, admInflight, admQueue, admAdmitted, admQueued, admShed, admWait,
		rlAllowed, rlLimited, rlFallback, rlEvicted, redisDown, redisCalls, redisErrors, redisFallbacks} {
		ch <- d
	}
}

// Collect reads the limiters.
func (c ShapingCollector) Collect(ch chan<- prometheus.Metric) {
	if c.Shaping == nil {
		return
	}
	adm, rls, rd := c.Shaping()
	for _, a := range adm {
		l, svc := a.Limiter, a.Service
		ch <- prometheus.MustNewConstMetric(admLimit, prometheus.GaugeValue, float64(l.Limit()), svc)
		ch <- prometheus.MustNewConstMetric(admInflight, prometheus.GaugeValue, float64(l.InFlight()), svc)
		ch <- prometheus.MustNewConstMetric(admQueue, prometheus.GaugeValue, float64(l.QueueLen()), svc)
		for t := range admission.NumTiers {
			tier := admission.TierName(t)
			ch <- prometheus.MustNewConstMetric(admAdmitted, prometheus.CounterValue, float64(l.Stats.Admitted[t].Load()), svc, tier)
			ch <- prometheus.MustNewConstMetric(admQueued, prometheus.CounterValue, float64(l.Stats.Queued[t].Load()), svc, tier)
			for _, r := range admission.Reasons() {
				ch <- prometheus.MustNewConstMetric(admShed, prometheus.CounterValue, float64(l.Stats.Shed[t][r].Load()), svc, tier, r.String())
			}
		}
		buckets := make(map[float64]uint64, len(admission.WaitBuckets))
		var count uint64
		for i, b := range admission.WaitBuckets {
			count += l.Stats.Wait[i].Load()
			buckets[b.Seconds()] = count
		}
		count += l.Stats.Wait[len(admission.WaitBuckets)].Load()
		ch <- prometheus.MustNewConstHistogram(admWait, count, float64(l.Stats.WaitNanos.Load())/1e9, buckets, svc)
	}
	for _, r := range rls {
		s := &r.Limiter.Stats
		ch <- prometheus.MustNewConstMetric(rlAllowed, prometheus.CounterValue, float64(s.Allowed.Load()), r.Route)
		ch <- prometheus.MustNewConstMetric(rlLimited, prometheus.CounterValue, float64(s.Limited.Load()), r.Route)
		ch <- prometheus.MustNewConstMetric(rlFallback, prometheus.CounterValue, float64(s.Fallback.Load()), r.Route)
		ch <- prometheus.MustNewConstMetric(rlEvicted, prometheus.CounterValue, float64(s.Evicted.Load()), r.Route)
	}
	if rd != nil {
		down := 0.0
		if rd.Down() {
			down = 1
		}
		ch <- prometheus.MustNewConstMetric(redisDown, prometheus.GaugeValue, down)
		ch <- prometheus.MustNewConstMetric(redisCalls, prometheus.CounterValue, float64(rd.Stats.Calls.Load()))
		ch <- prometheus.MustNewConstMetric(redisErrors, prometheus.CounterValue, float64(rd.Stats.Errors.Load()))
		ch <- prometheus.MustNewConstMetric(redisFallbacks, prometheus.CounterValue, float64(rd.Stats.Fallbacks.Load()))
	}
}
