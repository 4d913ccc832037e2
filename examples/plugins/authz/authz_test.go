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
	dir, err := os.MkdirTemp("", "authz-test-")
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

const secret = "0123456789abcdef-test-secret"

func config(t *testing.T) []byte {
	keys := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keys, []byte("# key user tier\nk-alice alice gold\nk-ops ops internal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{"secret": %q, "keys_file": %q, "rules": [{"path_prefix": "/admin", "tiers": ["internal"]}]}`, secret, keys)
}

func cases() []sdktest.Case {
	now := time.Now()
	token := func(c Claims) string { return "Bearer " + Sign([]byte(secret), c) }
	valid := token(Claims{Sub: "bob", Tier: "gold", Exp: now.Add(time.Hour).Unix()})
	unauthorized := func(body string) sdk.ValidateDecision {
		return sdk.ValidateDecision{Reject: &sdk.Reject{Status: 401, Header: map[string]string{"WWW-Authenticate": `Bearer realm="gatehouse"`}, Body: body + "\n"}}
	}
	allow := func(user, tier string) sdk.ValidateDecision {
		return sdk.ValidateDecision{Labels: map[string]string{"user": user, "tier": tier}}
	}
	return []sdktest.Case{
		{Name: "no credentials", Request: sdktest.NewRequest("GET", "/orders"),
			Want: unauthorized("missing credentials (Authorization: Bearer or X-Api-Key)")},
		{Name: "valid token", Request: sdktest.NewRequest("GET", "/orders", "Authorization", valid), Want: allow("bob", "gold")},
		{Name: "expired token", Request: sdktest.NewRequest("GET", "/orders", "Authorization", token(Claims{Sub: "bob", Tier: "gold", Exp: now.Add(-time.Minute).Unix()})),
			Want: unauthorized("invalid token: expired")},
		{Name: "token signed with another key", Request: sdktest.NewRequest("GET", "/orders", "Authorization", "Bearer "+Sign([]byte("another-secret-of-16+"), Claims{Sub: "eve", Tier: "internal", Exp: now.Add(time.Hour).Unix()})),
			Want: unauthorized("invalid token: bad signature")},
		{Name: "alg none", Request: sdktest.NewRequest("GET", "/orders", "Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUifQ."),
			Want: unauthorized("invalid token: algorithm must be HS256")},
		{Name: "basic auth", Request: sdktest.NewRequest("GET", "/orders", "Authorization", "Basic Ym9iOnB3"), Want: unauthorized("unsupported authorization scheme")},
		{Name: "api key", Request: sdktest.NewRequest("GET", "/orders", "X-Api-Key", "k-alice"), Want: allow("alice", "gold")},
		{Name: "unknown api key", Request: sdktest.NewRequest("GET", "/orders", "X-Api-Key", "k-mallory"), Want: unauthorized("unknown API key")},
		{Name: "tier not allowed", Request: sdktest.NewRequest("GET", "/admin/users", "Authorization", valid),
			Want: sdk.ValidateDecision{Reject: &sdk.Reject{Status: 403, Body: "tier gold may not use /admin\n"}}},
		{Name: "tier allowed", Request: sdktest.NewRequest("GET", "/admin/users", "X-Api-Key", "k-ops"), Want: allow("ops", "internal")},
	}
}

func TestAuthzInProcess(t *testing.T) {
	sdktest.Serve(t, &authz{}, config(t)).Run(t, cases())
}

func TestAuthzBinary(t *testing.T) {
	sdktest.Exec(t, binary, config(t)).Run(t, cases())
}

func TestAuthzRefusesBadConfig(t *testing.T) {
	for _, c := range []struct{ config, want string }{
		{`{"secret": "short"}`, "at least 16 bytes"},
		{`{"secret": "0123456789abcdef", "keys_file": "/nonexistent"}`, "keys_file"},
		{`{"secrt": "x"}`, "unknown field"},
	} {
		if err := (&authz{}).Configure(context.Background(), []byte(c.config)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Configure(%s) = %v, want an error about %q", c.config, err, c.want)
		}
	}
}

// TestAuthzCacheHint checks the decision is cacheable per credentials and
// path, and never beyond the token's expiry.
func TestAuthzCacheHint(t *testing.T) {
	a := &authz{}
	if err := a.Configure(context.Background(), config(t)); err != nil {
		t.Fatal(err)
	}
	p := sdktest.Serve(t, a, config(t))
	tok := "Bearer " + Sign([]byte(secret), Claims{Sub: "bob", Tier: "gold", Exp: time.Now().Add(5 * time.Second).Unix()})
	_, hint, err := p.CallValidate(context.Background(), sdktest.NewRequest("GET", "/orders", "Authorization", tok))
	if err != nil {
		t.Fatal(err)
	}
	if hint.TTL <= 0 || hint.TTL > 5*time.Second || fmt.Sprint(hint.Vary) != "[header:Authorization header:X-Api-Key path]" {
		t.Fatalf("hint = %+v", hint)
	}
}
