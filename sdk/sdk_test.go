package sdk_test

import (
	"context"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/gatehouse/gatehouse/sdk"
)

func TestPhaseNamesRoundTrip(t *testing.T) {
	want := []string{"validate", "shape", "route", "respond", "observe"}
	for i, p := range sdk.Phases {
		if p.String() != want[i] {
			t.Errorf("Phase(%d).String() = %q, want %q", i, p, want[i])
		}
		got, err := sdk.ParsePhase(" " + want[i] + " ")
		if err != nil || got != p {
			t.Errorf("ParsePhase(%q) = %v, %v; want %v", want[i], got, err, p)
		}
	}
	if _, err := sdk.ParsePhase("validation"); err == nil {
		t.Error("ParsePhase accepted an unknown phase")
	}
	if s := sdk.Phase(9).String(); s != "phase(9)" {
		t.Errorf("invalid phase prints %q", s)
	}
}

func TestPhaseSet(t *testing.T) {
	s := sdk.PhaseSetOf(sdk.PhaseRoute, sdk.PhaseValidate)
	if !s.Has(sdk.PhaseValidate) || !s.Has(sdk.PhaseRoute) || s.Has(sdk.PhaseShape) {
		t.Errorf("set %v has the wrong members", s)
	}
	if s.String() != "validate|route" {
		t.Errorf("String() = %q", s)
	}
	if sdk.PhaseSet(0).String() != "none" || !sdk.PhaseSet(0).Empty() {
		t.Error("empty set")
	}
	if got := sdk.AllPhases.String(); got != "validate|shape|route|respond|observe" {
		t.Errorf("AllPhases = %q", got)
	}
	if s.With(sdk.Phase(42)) != s {
		t.Error("With accepted an invalid phase")
	}
}

type goHook struct{}

func (goHook) Validate(context.Context, *sdk.Request) (sdk.ValidateDecision, error) {
	return sdk.ValidateDecision{}, nil
}
func (goHook) Observe(context.Context, *sdk.Observation) {}

type allPhases struct{ goHook }

func (allPhases) Shape(context.Context, *sdk.Request) (sdk.ShapeDecision, error) {
	return sdk.ShapeDecision{}, nil
}
func (allPhases) Route(context.Context, *sdk.Request) (sdk.RouteDecision, error) {
	return sdk.RouteDecision{}, nil
}
func (allPhases) Respond(context.Context, *sdk.Request, *sdk.Response) (sdk.RespondDecision, error) {
	return sdk.RespondDecision{}, nil
}

type reporter struct {
	allPhases
	set sdk.PhaseSet
}

func (r reporter) Phases() sdk.PhaseSet { return r.set }

type lyingReporter struct{ goHook }

func (lyingReporter) Phases() sdk.PhaseSet { return sdk.AllPhases }

func TestPhasesOf(t *testing.T) {
	cases := []struct {
		name string
		impl any
		want sdk.PhaseSet
	}{
		{"type assertion", goHook{}, sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseObserve)},
		{"all interfaces", allPhases{}, sdk.AllPhases},
		{"reporter narrows", reporter{set: sdk.PhaseSetOf(sdk.PhaseRoute)}, sdk.PhaseSetOf(sdk.PhaseRoute)},
		{"reported phase without interface is dropped", lyingReporter{}, sdk.PhaseSetOf(sdk.PhaseValidate, sdk.PhaseObserve)},
		{"not a hook", 42, 0},
	}
	for _, c := range cases {
		if got := sdk.PhasesOf(c.impl); got != c.want {
			t.Errorf("%s: PhasesOf = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestHeaderCanonicalises(t *testing.T) {
	h := sdk.Header{"X-Api-Key": {"k1", "k2"}, "Content-Type": {"text/plain"}}
	if got := h.Get("x-api-key"); got != "k1" {
		t.Errorf("Get = %q", got)
	}
	if got := h.Values("X-API-KEY"); len(got) != 2 {
		t.Errorf("Values = %q", got)
	}
	if h.Get("missing") != "" || h.Has("missing") || !h.Has("content-type") {
		t.Error("absent field")
	}
	var nilHeader sdk.Header
	if nilHeader.Get("a") != "" {
		t.Error("nil header")
	}
}

func TestPriority(t *testing.T) {
	for p := sdk.PriorityUnset; p <= sdk.PriorityCritical; p++ {
		got, err := sdk.ParsePriority(p.String())
		if err != nil || got != p {
			t.Errorf("ParsePriority(%q) = %v, %v", p.String(), got, err)
		}
		if !p.Valid() {
			t.Errorf("%v not valid", p)
		}
	}
	if p, err := sdk.ParsePriority(""); err != nil || p != sdk.PriorityUnset {
		t.Error("empty priority should be unset")
	}
	if _, err := sdk.ParsePriority("urgent"); err == nil {
		t.Error("ParsePriority accepted an unknown tier")
	}
	if sdk.Priority(7).Valid() || sdk.Priority(7).String() != "priority(7)" {
		t.Error("out-of-range priority")
	}
}

// The sdk is what extension authors import: it must not pull in the core.
func TestSDKImportsNoGatewayPackage(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", nil, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		for name, f := range p.Files {
			for _, imp := range f.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				if strings.HasPrefix(path, "github.com/gatehouse/gatehouse/") && !strings.HasPrefix(path, "github.com/gatehouse/gatehouse/sdk") {
					t.Errorf("%s imports %s", name, path)
				}
				if strings.Contains(path, ".") && !strings.HasPrefix(path, "github.com/gatehouse/gatehouse/sdk") {
					t.Errorf("%s imports the third-party package %s", name, path)
				}
			}
		}
	}
}
