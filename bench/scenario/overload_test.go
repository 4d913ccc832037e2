package scenario

import (
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
)

// TestOverloadMarkdown pins the report's arithmetic: total goodput against
// the backend's capacity, each tier's goodput against its offered rate.
func TestOverloadMarkdown(t *testing.T) {
	plan := overloadPlans[harness.Quick]
	plan.Workers, plan.Service = 8, 20*time.Millisecond // 400 requests/s
	res := &overloadResult{faultReport: &faultReport{Scenario: "overload", Title: "overload"}, Plan: plan}
	res.Runs = []*overloadRun{{Proxy: "gatehouse", Level: 2, Tiers: []overloadTier{
		{Tier: "critical", Offered: 200, Goodput: 200, P99: 45_000},
		{Tier: "default", Offered: 200, Goodput: 180, P99: 120_400},
		{Tier: "degraded", Offered: 200, Goodput: 0},
		{Tier: "bulk", Offered: 200, Goodput: 0, Behind: true},
	}}}
	if got := plan.capacity(); got != 400 {
		t.Fatalf("capacity %v, want 400", got)
	}
	md := overloadMarkdown(res)
	want := "| gatehouse | 2.0× | 380/s (95%) | 200/s 100%, p99 45ms | 180/s 90%, p99 120ms | 0/s 0%, p99 - | 0/s 0%, p99 - (generator behind) |"
	if !strings.Contains(md, want) {
		t.Errorf("report lacks\n%s\nin\n%s", want, md)
	}
}
