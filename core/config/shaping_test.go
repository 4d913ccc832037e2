package config

import (
	"strings"
	"testing"
	"time"
)

const shapingBase = `listeners: [{name: public, address: "127.0.0.1:0"}]
services:
  - name: api
    endpoints: [127.0.0.1:9000]
    admission:
      enabled: true
      min_limit: 50
      max_limit: 10
      queue_timeout: 0s
routes:
  - name: r
    service: api
    priority: urgent
    rate_limit:
      rate: 10
      key: header
      shared: true
`

// TestShapingErrors: bad admission, priority and rate-limit settings are
// refused with file, line and key.
func TestShapingErrors(t *testing.T) {
	_, err := Parse("gatehouse.yaml", []byte(strings.Replace(shapingBase, "      queue_timeout: 0s\n", "", 1)))
	if err == nil {
		t.Fatal("Parse accepted bad shaping settings")
	}
	want := []string{
		`gatehouse.yaml:5:5: services[0].admission.initial_limit: must be from min_limit (50) to max_limit (10), got 20`,
		`gatehouse.yaml:7:7: services[0].admission.min_limit: must not exceed max_limit (10), got 50`,
		`gatehouse.yaml:12:5: routes[0].priority: must be one of critical, default, degraded, bulk; got "urgent"`,
		`gatehouse.yaml:15:7: routes[0].rate_limit.key: must be client_ip or route, got "header"`,
		`gatehouse.yaml:16:7: routes[0].rate_limit.shared: needs redis.address`,
	}
	if got := err.Error(); got != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	_, err = Parse("gatehouse.yaml", []byte(shapingBase))
	if err == nil || !strings.Contains(err.Error(), `gatehouse.yaml:9:7: services[0].admission.queue_timeout: must be a positive duration, got "0s"`) {
		t.Fatalf("zero queue_timeout: %v", err)
	}
}

// TestShapingDefaults: a rate limit starts from its defaults; burst absent
// means the rate; a route without priority is default.
func TestShapingDefaults(t *testing.T) {
	c, err := Parse("gatehouse.yaml", []byte(`listeners: [{name: public, address: "127.0.0.1:0"}]
redis: {address: "127.0.0.1:6379"}
services: [{name: api, endpoints: [127.0.0.1:9000], admission: {enabled: true}}]
routes:
  - name: r
    service: api
    rate_limit: {rate: 5, shared: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	rl := c.Routes[0].RateLimit
	if rl == nil || rl.Rate != 5 || rl.Per != Duration(time.Second) || rl.Burst != 0 || rl.Key != "client_ip" || rl.MaxKeys != 100000 || !rl.Shared {
		t.Fatalf("rate limit %+v", rl)
	}
	if c.Routes[0].Priority != "default" {
		t.Fatalf("priority %q, want default", c.Routes[0].Priority)
	}
	a := c.Services[0].Admission
	if !a.Enabled || a.InitialLimit != 20 || a.QueueTimeout != Duration(time.Second) {
		t.Fatalf("admission %+v", a)
	}
	if c.Redis.Timeout != Duration(20*time.Millisecond) {
		t.Fatalf("redis %+v", c.Redis)
	}
	d := c.Clone()
	d.Routes[0].RateLimit.Rate = 7
	if c.Routes[0].RateLimit.Rate != 5 {
		t.Fatal("Clone shares the rate limit")
	}
}
