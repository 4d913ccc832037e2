package config

import (
	"strings"
)

// admission checks a service's admission settings when they are on.
func (k *checker) admission(path string, a Admission) {
	if !a.Enabled {
		return
	}
	k.bounds(path, a, nil)
	if a.MinLimit > 0 && a.MaxLimit > 0 && a.MinLimit > a.MaxLimit {
		k.add(path+".min_limit", "must not exceed max_limit (%d), got %d", a.MaxLimit, a.MinLimit)
	}
	if a.InitialLimit > 0 && a.MaxLimit > 0 && (a.InitialLimit < a.MinLimit || a.InitialLimit > a.MaxLimit) {
		k.add(path+".initial_limit", "must be from min_limit (%d) to max_limit (%d), got %d", a.MinLimit, a.MaxLimit, a.InitialLimit)
	}
	if a.QueueTarget > 0 && a.QueueTimeout > 0 && a.QueueTarget > a.QueueTimeout {
		k.add(path+".queue_target", "must not exceed queue_timeout (%s), got %s", a.QueueTimeout, quote(a.QueueTarget.String()))
	}
}

// priorityNames are the tiers a route may default to ("" counts as default).
var priorityNames = map[string]bool{"": true, "critical": true, "default": true, "degraded": true, "bulk": true}

// shaping checks a route's priority and rate limit.
func (k *checker) shaping(path string, r Route) {
	if !priorityNames[strings.ToLower(r.Priority)] {
		k.add(path+".priority", "must be one of critical, default, degraded, bulk; got %s", quote(r.Priority))
	}
	rl := r.RateLimit
	if rl == nil {
		return
	}
	p := path + ".rate_limit"
	if rl.Rate <= 0 {
		k.add(p+".rate", "required: a positive number of tokens per rate_limit.per")
	}
	if rl.Per <= 0 {
		k.add(p+".per", "must be a positive duration, got %s", quote(rl.Per.String()))
	}
	if rl.Burst < 0 {
		k.add(p+".burst", "must be a positive integer, got %d", rl.Burst)
	}
	if rl.MaxKeys <= 0 {
		k.add(p+".max_keys", "must be a positive integer, got %d", rl.MaxKeys)
	}
	if rl.Key != "client_ip" && rl.Key != "route" {
		k.add(p+".key", "must be client_ip or route, got %s", quote(rl.Key))
	}
	if rl.Shared && k.c.Redis.Address == "" {
		k.add(p+".shared", "needs redis.address")
	}
}

// redis checks the Redis settings when a Redis server is configured.
func (k *checker) redis() {
	rd := k.c.Redis
	if rd.Address == "" {
		return
	}
	if msg := checkAddress(rd.Address, true); msg != "" {
		k.add("redis.address", "%s", msg)
	}
	k.bounds("redis", rd, nil)
	if rd.KeyPrefix == "" {
		k.add("redis.key_prefix", "must not be empty")
	}
}
