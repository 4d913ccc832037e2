package plugins

import (
	"fmt"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestDecisionCacheUnit(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	c := newDecisionCache(3, time.Minute)
	c.now = clock.now
	v := sdk.PhaseValidate
	byToken := wire.Hint{TTL: 10 * time.Second, Vary: []string{"header:authorization"}}
	req := func(tok string) *sdk.Request { return sdktest.NewRequest("GET", "/", "Authorization", tok) }
	dec := func(s string) sdk.ValidateDecision { return sdk.ValidateDecision{Labels: map[string]string{"d": s}} }
	get := func(r *sdk.Request) string {
		d, ok := c.get(v, r)
		if !ok {
			return "miss"
		}
		return d.(sdk.ValidateDecision).Labels["d"]
	}

	if !c.put(v, req("a"), byToken, dec("A")) {
		t.Fatal("hint refused")
	}
	if got := get(req("a")); got != "A" {
		t.Fatalf("same token: %s", got)
	}
	if got := get(req("b")); got != "miss" {
		t.Fatalf("other token: %s", got)
	}
	if _, ok := c.get(sdk.PhaseShape, req("a")); ok {
		t.Fatal("a validate decision served for shape")
	}
	// Absent header and empty header are different requests.
	c.put(v, sdktest.NewRequest("GET", "/"), byToken, dec("none"))
	if got := get(req("")); got != "miss" {
		t.Fatalf("empty header served the absent-header decision: %s", got)
	}

	// TTL, capped by the cache's maximum.
	clock.t = clock.t.Add(11 * time.Second)
	if got := get(req("a")); got != "miss" {
		t.Fatalf("expired decision served: %s", got)
	}
	c.put(v, req("a"), wire.Hint{TTL: time.Hour, Vary: byToken.Vary}, dec("A2"))
	clock.t = clock.t.Add(61 * time.Second)
	if got := get(req("a")); got != "miss" {
		t.Fatalf("decision served past the cache's max TTL: %s", got)
	}

	// Bounded in entries: the least recently used goes first.
	c = newDecisionCache(3, time.Minute)
	c.now = clock.now
	for _, tok := range []string{"1", "2", "3"} {
		c.put(v, req(tok), byToken, dec(tok))
	}
	get(req("1")) // 2 is now the least recently used
	c.put(v, req("4"), byToken, dec("4"))
	if c.len() != 3 || get(req("2")) != "miss" || get(req("1")) != "1" || get(req("4")) != "4" {
		t.Fatalf("eviction: len %d, 2 %s, 1 %s", c.len(), get(req("2")), get(req("1")))
	}

	// Vary lists: several kept per phase, unknown parts refused, bounded.
	byLabel := wire.Hint{TTL: time.Second, Vary: []string{"label:user", "client_ip"}}
	r := sdktest.WithLabels(req("zz"), "user", "u1")
	c.put(v, r, byLabel, dec("L"))
	if get(sdktest.WithLabels(req("other"), "user", "u1")) != "L" || get(sdktest.WithLabels(req("other"), "user", "u2")) != "miss" {
		t.Fatal("label vary")
	}
	if c.put(v, r, wire.Hint{TTL: time.Second, Vary: []string{"cookie"}}, dec("x")) {
		t.Fatal("unknown vary part accepted")
	}
	for i := range maxVarySpecs {
		c.put(v, r, wire.Hint{TTL: time.Second, Vary: []string{fmt.Sprintf("header:x-%d", i)}}, dec("x"))
	}
	if c.put(v, r, wire.Hint{TTL: time.Second, Vary: []string{"header:x-last"}}, dec("x")) {
		t.Fatal("more vary lists than maxVarySpecs accepted")
	}
}

// TestCacheKeyNoCollision: values are length-prefixed, so splitting the
// same bytes differently gives another key.
func TestCacheKeyNoCollision(t *testing.T) {
	s := &varySpec{key: "method\x00path", parts: []string{"method", "path"}}
	a := &sdk.Request{Method: "GET", Path: "/x"}
	b := &sdk.Request{Method: "GET/", Path: "x"}
	if cacheKey(sdk.PhaseValidate, s, a) == cacheKey(sdk.PhaseValidate, s, b) {
		t.Fatal("collision")
	}
}
