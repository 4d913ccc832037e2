package admin

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/core/failure"
	"github.com/gatehouse/gatehouse/core/hook"
	"github.com/gatehouse/gatehouse/core/metrics"
	"github.com/gatehouse/gatehouse/core/passport"
	"github.com/gatehouse/gatehouse/core/proxy"
	"github.com/gatehouse/gatehouse/sdk"
)

// recordOf builds a finished request's record from a passport's text.
func recordOf(t *testing.T, path string, outcome failure.Kind, status int, text string, fs ...*hook.Failure) *proxy.Record {
	t.Helper()
	stamps, err := passport.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	clk := &fakeClock{t: start}
	p := passport.New(clk)
	for _, s := range stamps {
		clk.t = start.Add(s.Offset)
		p.StampNote(s.State, s.Note)
	}
	return &proxy.Record{ID: path, Listener: "public", Method: "GET", Path: path, Route: "api", Status: status, Outcome: outcome,
		Passport: p, HookFailures: fs, HookFailureCount: len(fs)}
}

// TestPassportsFindHookFailures: a request on which a fail-open hook failed
// succeeded, yet /admin/passports finds it (kind=hook_failed, and the
// hook_failed filter on any kind), lists the failure, and marks its hook
// segment failed.
func TestPassportsFindHookFailures(t *testing.T) {
	var n int
	d := deps(&n)
	m := d.Metrics
	open := &hook.Failure{Hook: "adv", Version: "1a2b", Phase: sdk.PhaseValidate, Kind: hook.FailTimeout, Policy: hook.PolicyOpen, Err: errors.New("late")}
	closed := &hook.Failure{Hook: "auth", Version: "go", Phase: sdk.PhaseValidate, Kind: hook.FailError, Policy: hook.PolicyClosed, Err: errors.New("boom")}
	m.Observe(recordOf(t, "/plain", failure.Success, 200, "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ "+
		"+0.011ms=HOOK_ENTER(validate:adv@1a2b) +0.012ms=HOOK_EXIT(validate:adv@1a2b+wait) +0.020ms=VALIDATED +0.030ms=DONE"))
	m.Observe(recordOf(t, "/open", failure.Success, 200, "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ "+
		"+0.011ms=HOOK_ENTER(validate:adv@1a2b) +50.011ms=HOOK_EXIT(validate:adv@1a2b,failed=timeout,policy=open+wait) "+
		"+50.020ms=VALIDATED +50.030ms=DONE", open))
	m.Observe(recordOf(t, "/closed", failure.HookFailed, 503, "+0.000ms=ACCEPTED +0.010ms=HEADERS_READ "+
		"+0.011ms=HOOK_ENTER(validate:auth@go) +0.015ms=HOOK_EXIT(validate:auth@go,failed=error,policy=closed) "+
		"+0.020ms=FAILED(hook_failed)", closed))
	h := Handler("", d)
	get := func(q string) []PassportItem {
		t.Helper()
		code, body := do(h, "GET", "/admin/passports"+q, "127.0.0.1:5555", "")
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		var items []PassportItem
		if err := json.Unmarshal([]byte(body), &items); err != nil {
			t.Fatal(err)
		}
		return items
	}
	paths := func(items []PassportItem) []string {
		out := []string{}
		for _, it := range items {
			out = append(out, it.Path)
		}
		return out
	}
	for q, want := range map[string][]string{
		"?kind=hook_failed":                   {"/closed", "/open"},
		"?kind=hook_failed&outcome=success":   {"/open"},
		"?hook_failed=true":                   {"/closed", "/open"},
		"?hook_failed=1&outcome=success":      {"/open"},
		"?hook_failed=false":                  {"/plain"},
		"?kind=failed":                        {"/closed"},
		"?kind=failed&hook_failed=true":       {"/closed"},
		"?kind=slowest&hook_failed=true":      {"/open", "/closed"},
		"":                                    {"/closed", "/open", "/plain"},
		"?kind=hook_failed&route=api&limit=1": {"/closed"},
	} {
		if got := paths(get(q)); !slices.Equal(got, want) {
			t.Errorf("/admin/passports%s = %q, want %q", q, got, want)
		}
	}
	items := get("?kind=hook_failed&outcome=success")
	if len(items) != 1 {
		t.Fatalf("items %+v", items)
	}
	it := items[0]
	if want := []HookFailure{{Hook: "adv", Version: "1a2b", Phase: "validate", Kind: "timeout", Policy: "open"}}; !slices.Equal(it.HookFailures, want) {
		t.Errorf("hook failures %+v, want %+v", it.HookFailures, want)
	}
	var seg *Segment
	for i := range it.Segments {
		if it.Segments[i].Kind == "hook" {
			seg = &it.Segments[i]
		}
	}
	if seg == nil || !seg.Failed || seg.Name != "validate:adv@1a2b" || seg.Note != "failed=timeout,policy=open+wait" {
		t.Errorf("hook segment %+v, want failed, with its label and how it failed", seg)
	}
	// A hook call that succeeded is not marked.
	for _, s := range get("?hook_failed=false")[0].Segments {
		if s.Kind == "hook" && (s.Failed || s.Name != "validate:adv@1a2b" || s.Note != "+wait") {
			t.Errorf("successful hook segment %+v", s)
		}
	}
}

// TestHookRowsPerVersion: /admin/api/hooks has a row per version with the
// calls that version ran, and marks the current one.
func TestHookRowsPerVersion(t *testing.T) {
	var n int
	d := deps(&n)
	old, cur := &hook.Stats{}, &hook.Stats{}
	old.Calls.Add(100)
	old.Failures[hook.FailError].Add(100)
	cur.Calls.Add(4)
	d.Hooks = func() []metrics.HookStat {
		return []metrics.HookStat{{Hook: "s", Scope: "global", Version: "new", Current: true, Stats: cur},
			{Hook: "s", Scope: "global", Version: "old", Stats: old}}
	}
	code, body := do(Handler("", d), "GET", "/admin/api/hooks", "127.0.0.1:5555", "")
	var rows []HookRow
	if code != 200 || json.Unmarshal([]byte(body), &rows) != nil || len(rows) != 2 {
		t.Fatalf("%d %s", code, body)
	}
	if r := rows[0]; r.Version != "new" || !r.Current || r.Calls != 4 || r.ErrorRate != 0 || r.Failures["error"] != 0 {
		t.Errorf("current version's row %+v", r)
	}
	if r := rows[1]; r.Version != "old" || r.Current || r.Calls != 100 || r.ErrorRate != 1 || r.Failures["error"] != 100 {
		t.Errorf("previous version's row %+v", r)
	}
}
