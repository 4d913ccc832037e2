package scripts

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/sdk"
)

// The examples in examples/scripts are part of the documentation: each must
// compile and pass the cases it ships.
func TestExamplesPassTheirCases(t *testing.T) {
	for _, name := range []string{"validate.js", "shape.js", "route", "respond.js"} {
		t.Run(name, func(t *testing.T) {
			s, err := Compile(filepath.Join("..", "examples", "scripts", name), DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			if s.CasesPath() == "" {
				t.Fatal("the example ships no cases file")
			}
			rep, err := RunCases(s, s.CasesPath())
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Passed == 0 {
				t.Fatalf("%s", rep)
			}
			t.Logf("%s: phases %v, %d cases passed", s.Name(), s.Phases(), rep.Passed)
		})
	}
}

// TestCanaryShare: the route example sends about 5% of users to users-v2,
// the same user always to the same side, over many user IDs (not only the
// single buckets its cases name).
func TestCanaryShare(t *testing.T) {
	s, err := Compile(filepath.Join("..", "examples", "scripts", "route"), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	const users = 20000
	ctx := ctxT(t, 30*time.Second)
	side := func(id string) string {
		d, err := s.Route(ctx, &sdk.Request{Route: "users", Path: "/users/1", Labels: map[string]string{"user": id}, Header: sdk.Header{}})
		if err != nil {
			t.Fatal(err)
		}
		return d.Service
	}
	canary := 0
	for i := 0; i < users; i++ {
		id := fmt.Sprintf("user-%d", i)
		svc := side(id)
		if svc == "users-v2" {
			canary++
		} else if svc != "" {
			t.Fatalf("%s routed to %q", id, svc)
		}
		if i%97 == 0 && side(id) != svc {
			t.Fatalf("%s changed sides", id)
		}
	}
	// 5% of 20000 is 1000; a binomial's standard deviation is about 31.
	if share := float64(canary) / users; share < 0.045 || share > 0.055 {
		t.Errorf("canary share %.2f%% (%d of %d), want about 5%%", 100*share, canary, users)
	}
}
