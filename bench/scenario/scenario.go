// Package scenario is the registry of benchmark scenarios. Each scenario is
// one file in this package that registers itself by name in an init function:
//
//	func init() { Register(Scenario{Name: "hooks", Summary: "...", Run: hooks}) }
//
// `go run ./bench list` lists them; `go run ./bench NAME` runs one.
package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gatehouse/gatehouse/bench/harness"
)

// Scenario is one named benchmark.
type Scenario struct {
	// Name is how the scenario is run: `go run ./bench NAME`.
	Name string
	// Summary is one line for `go run ./bench list`.
	Summary string
	// Scratch scenarios write to bench/results/tmp by default: their
	// numbers are not kept.
	Scratch bool
	// Run measures and returns the report, which the caller writes. A
	// partial report may come with an error.
	Run func(ctx context.Context, e *harness.Env) (*harness.Report, error)
}

var registry = map[string]Scenario{}

// Register adds s to the registry. It panics on a duplicate or empty name: that
// is a programming error found at start-up.
func Register(s Scenario) {
	if s.Name == "" || strings.ContainsAny(s.Name, " /") || s.Run == nil {
		panic(fmt.Sprintf("scenario: invalid registration %q", s.Name))
	}
	if _, dup := registry[s.Name]; dup {
		panic(fmt.Sprintf("scenario: %q registered twice", s.Name))
	}
	registry[s.Name] = s
}

// Lookup returns the scenario registered under name.
func Lookup(name string) (Scenario, bool) {
	s, ok := registry[name]
	return s, ok
}

// All returns the registered scenarios sorted by name.
func All() []Scenario {
	var all []Scenario
	for _, s := range registry {
		all = append(all, s)
	}
	slices.SortFunc(all, func(a, b Scenario) int { return strings.Compare(a.Name, b.Name) })
	return all
}
