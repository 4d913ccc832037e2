package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

var binary string // built by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "quota-test-")
	if err != nil {
		panic(err)
	}
	if binary, err = sdktest.Build(".", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func config(t *testing.T) ([]byte, string) {
	file := filepath.Join(t.TempDir(), "quota.txt")
	if err := os.WriteFile(file, []byte("carol internal   # promoted\ndave over\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{
		"tiers": {"internal": {"priority": "critical"}, "gold": {"priority": "default"}, "free": {"priority": "bulk", "cost": 2}},
		"quota_file": %q}`, file), file
}

func cases() []sdktest.Case {
	req := func(user, tier string) *sdk.Request {
		return sdktest.WithLabels(sdktest.NewRequest("GET", "/orders"), "user", user, "tier", tier)
	}
	return []sdktest.Case{
		{Name: "anonymous", Request: sdktest.NewRequest("GET", "/orders"),
			Want: sdk.ShapeDecision{Priority: sdk.PriorityDegraded, RateKey: "ip:192.0.2.1", Cost: 1}},
		{Name: "gold", Request: req("bob", "gold"),
			Want: sdk.ShapeDecision{Priority: sdk.PriorityDefault, RateKey: "user:bob", Cost: 1, Labels: map[string]string{"quota_tier": "gold"}}},
		{Name: "free costs more", Request: req("erin", "free"),
			Want: sdk.ShapeDecision{Priority: sdk.PriorityBulk, RateKey: "user:erin", Cost: 2, Labels: map[string]string{"quota_tier": "free"}}},
		{Name: "override from the quota file", Request: req("carol", "free"),
			Want: sdk.ShapeDecision{Priority: sdk.PriorityCritical, RateKey: "user:carol", Cost: 1, Labels: map[string]string{"quota_tier": "internal"}}},
		{Name: "over quota", Request: req("dave", "gold"),
			Want: sdk.ShapeDecision{Reject: &sdk.Reject{Status: 429, Header: map[string]string{"Retry-After": "60"}, Body: "quota exceeded\n"}}},
		{Name: "unknown tier", Request: req("frank", "platinum"),
			Want: sdk.ShapeDecision{Priority: sdk.PriorityDegraded, RateKey: "user:frank", Cost: 1, Labels: map[string]string{"quota_tier": "platinum"}}},
	}
}

func TestQuotaInProcess(t *testing.T) {
	cfg, _ := config(t)
	sdktest.Serve(t, &quota{}, cfg).Run(t, cases())
}

func TestQuotaBinary(t *testing.T) {
	cfg, _ := config(t)
	sdktest.Exec(t, binary, cfg).Run(t, cases())
}

// TestQuotaFileReload: a changed quota file reaches decisions without a
// restart.
func TestQuotaFileReload(t *testing.T) {
	cfg, file := config(t)
	p := sdktest.Serve(t, &quota{}, cfg)
	req := sdktest.WithLabels(sdktest.NewRequest("GET", "/"), "user", "dave", "tier", "gold")
	if err := os.WriteFile(file, []byte("dave gold\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The reload is checked every second; mtime granularity may hide a
	// write in the same tick, so move the time on.
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(file, future, future); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := p.Shape(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if d.Reject == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("dave still over quota 5s after the quota file changed")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func TestQuotaRefusesBadConfig(t *testing.T) {
	for _, c := range []struct{ config, want string }{
		{`{"tiers": {"gold": {"priority": "urgent"}}}`, "priority"},
		{`{"tiers": {"gold": {"priority": "default", "cost": -1}}}`, "negative cost"},
		{`{"quota_file": "/nonexistent"}`, "quota_file"},
	} {
		if err := (&quota{}).Configure(context.Background(), []byte(c.config)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Configure(%s) = %v, want an error about %q", c.config, err, c.want)
		}
	}
}
