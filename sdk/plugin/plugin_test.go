package plugin_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/plugins/wire"
	"github.com/gatehouse/gatehouse/sdk"
	"github.com/gatehouse/gatehouse/sdk/plugin"
	"github.com/gatehouse/gatehouse/sdk/sdktest"
)

// hook answers by request path.
type hook struct{ configured string }

func (h *hook) Configure(_ context.Context, config []byte) error {
	if string(config) == "refuse" {
		return context.DeadlineExceeded
	}
	h.configured = string(config)
	return nil
}

func (h *hook) Validate(ctx context.Context, req *sdk.Request) (sdk.ValidateDecision, error) {
	switch req.Path {
	case "/panic":
		panic("boom")
	case "/bad-utf8":
		return sdk.ValidateDecision{Labels: map[string]string{"x": "\xff"}}, nil
	case "/big":
		return sdk.ValidateDecision{Labels: map[string]string{"x": strings.Repeat("x", 2<<20)}}, nil
	case "/cache":
		if err := plugin.CacheFor(ctx, time.Minute, "header:Authorization", "path"); err != nil {
			return sdk.ValidateDecision{}, err
		}
	case "/deadline":
		dl, _ := ctx.Deadline()
		if time.Until(dl) > time.Second || time.Until(dl) <= 0 {
			return sdk.ValidateDecision{}, context.DeadlineExceeded
		}
	}
	return sdk.ValidateDecision{Labels: map[string]string{"config": h.configured, "body": string(req.Body)}}, nil
}

func (h *hook) Observe(context.Context, *sdk.Observation) {}

func TestServeInProcess(t *testing.T) {
	p := sdktest.Serve(t, &hook{}, []byte("cfg"))
	if p.Phases() != sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseObserve) {
		t.Fatalf("phases %s", p.Phases())
	}
	ctx := context.Background()
	d, err := p.Validate(ctx, sdktest.NewRequest("GET", "/"))
	if err != nil || d.Labels["config"] != "cfg" {
		t.Fatalf("%v %v", d, err)
	}
	if _, err := p.Validate(ctx, sdktest.NewRequest("GET", "/panic")); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("panic: %v", err)
	}
	if _, err := p.Validate(ctx, sdktest.NewRequest("GET", "/bad-utf8")); wire.KindOf(err) != wire.KindInvalid || !strings.Contains(err.Error(), "labels is not valid UTF-8") {
		t.Fatalf("bad UTF-8: %v", err)
	}
	if _, err := p.Validate(ctx, sdktest.NewRequest("GET", "/big")); wire.KindOf(err) != wire.KindTooLarge {
		t.Fatalf("oversized decision: %v", err)
	}
	// The stream survived all of that.
	if _, err := p.Validate(ctx, sdktest.NewRequest("GET", "/")); err != nil || p.Info().Transport != wire.TransportStream {
		t.Fatalf("after failures: %v (%s)", err, p.Info().Transport)
	}
	_, hint, err := p.CallValidate(ctx, sdktest.NewRequest("GET", "/cache"))
	if err != nil || hint.TTL != time.Minute || strings.Join(hint.Vary, ",") != "header:Authorization,path" {
		t.Fatalf("cache hint %+v %v", hint, err)
	}
	dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := p.Validate(dctx, sdktest.NewRequest("GET", "/deadline")); err != nil {
		t.Fatalf("deadline not carried: %v", err)
	}
	p.Observe(ctx, &sdk.Observation{Request: sdktest.NewRequest("GET", "/"), Status: 200})
}

func TestCacheForChecks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		ttl  time.Duration
		vary []string
		want string
	}{
		{0, []string{"path"}, "not positive"},
		{time.Second, nil, "no request part"},
		{time.Second, []string{"cookie"}, `unknown request part "cookie"`},
		{time.Second, []string{"header:"}, "unknown request part"},
	} {
		if err := plugin.CacheFor(ctx, c.ttl, c.vary...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CacheFor(%v, %v) = %v, want %q", c.ttl, c.vary, err, c.want)
		}
	}
	if err := plugin.CacheFor(ctx, time.Second, "header:X-Api-Key", "label:user", "client_ip"); err != nil {
		t.Errorf("outside a call: %v", err)
	}
}

func TestRegisterWithoutPhases(t *testing.T) {
	if err := plugin.Register(nil, struct{}{}); err == nil {
		t.Fatal("a hook without phases registered")
	}
}

// TestNoCoreDependency: what plugin authors import (sdk, sdk/plugin,
// sdk/sdktest and what they use) must not pull in the gateway's core.
func TestNoCoreDependency(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/gatehouse/gatehouse/sdk/plugin", "github.com/gatehouse/gatehouse/sdk/sdktest").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/gatehouse/gatehouse/") && !strings.HasPrefix(pkg, "github.com/gatehouse/gatehouse/sdk") && pkg != "github.com/gatehouse/gatehouse/plugins/wire" {
			t.Errorf("depends on %s", pkg)
		}
	}
}
