package scenario

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/bench/harness"
)

// tlog sends the harness's progress lines to the test log.
type tlog struct{ t *testing.T }

func (l tlog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestSmoke runs the smoke scenario end to end (builds, every installed peer,
// closed loop, open loop, delayed backend, report and plots) so that the
// harness cannot rot unnoticed. Peers that are not installed are skipped.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out := t.TempDir()
	e, err := harness.NewEnv(ctx, harness.Options{
		Mode: harness.Quick, OutDir: out, WorkDir: t.TempDir(), Log: tlog{t},
		Command: "go test ./bench/scenario -run TestSmoke", BuildTimeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s, ok := Lookup("smoke")
	if !ok {
		t.Fatal("smoke scenario not registered")
	}
	rep, err := s.Run(ctx, e)
	if err != nil {
		t.Fatal(err)
	}

	ran := map[string]bool{}
	for _, pr := range rep.Peers {
		if pr.Skipped != "" {
			t.Logf("%s skipped: %s", pr.Name, pr.Skipped)
			continue
		}
		ran[pr.Name] = true
		for _, f := range pr.Failures {
			t.Errorf("%s: %s", pr.Name, f)
		}
		// One saturation run and one open-loop run per backend.
		if len(pr.Runs) != 3 {
			t.Errorf("%s: %d runs, want 3", pr.Name, len(pr.Runs))
		}
		for _, r := range pr.Runs {
			if r.Requests == 0 {
				t.Errorf("%s %s run: no request completed (%v)", pr.Name, r.Kind, r.Problems)
			}
			if r.Errors != 0 {
				t.Errorf("%s %s run: %d errors: %s", pr.Name, r.Kind, r.Errors, r.ErrorSample)
			}
			if r.Kind == "closed" && pr.Proxy && r.ProxyCPU <= 0 {
				t.Errorf("%s: a second of saturation cost no proxy CPU: the /proc accounting is broken", pr.Name)
			}
			if r.Kind == "open" && r.Lat.P50 <= 0 {
				t.Errorf("%s: open-loop run without latencies", pr.Name)
			}
		}
	}
	for _, must := range []string{"direct", "stdproxy"} {
		if !ran[must] {
			t.Errorf("%s did not run", must)
		}
	}

	path, err := harness.WriteReport(e, rep)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Throughput and cost", "## Latency", "| stdproxy | ", "| direct | ", "## All runs", "smoke-cpu.svg"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, f := range []string{"smoke.json", "smoke-cpu.svg", "smoke-latency-1.svg", "smoke-latency-2.svg", "smoke-throughput.svg"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
}

func TestRegistry(t *testing.T) {
	if _, ok := Lookup("overhead"); !ok {
		t.Error("overhead scenario not registered")
	}
	names := []string{}
	for _, s := range All() {
		names = append(names, s.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "overhead") {
		t.Errorf("All() = %v", names)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	Register(Scenario{Name: "overhead", Run: overhead})
}
