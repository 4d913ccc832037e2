package scripts

import (
	"strings"
	"testing"
)

const casesScript = `
exports.validate = function (req) {
	if (!req.header("authorization")) return {reject: {status: 401, body: "no token"}};
	return {labels: {user: "u1"}};
};
exports.shape = function (req) { return {priority: req.labels.user ? "critical" : "bulk", rateKey: "k"} };
exports.route = function (req) {
	if (req.path === "/throw") throw new Error("route bug");
	return {service: "users-v2", timeoutMs: 100};
};
`

func TestRunCasesReportsDiffs(t *testing.T) {
	dir := t.TempDir()
	p := writeScript(t, dir, "s.js", casesScript)
	cases := writeScript(t, dir, "s.cases.yaml", `
cases:
  - name: passes
    request: {headers: {Authorization: Bearer x}}
    expect:
      validate: {reject: null, labels: {user: u1}}
      shape: {priority: critical}
      route: {service: users-v2, timeoutMs: 100}
  - name: wrong status and body
    expect:
      validate: {reject: {status: 403, body: "no token"}}
  - name: expects a reject that does not happen
    request: {headers: {Authorization: Bearer x}}
    expect:
      validate: {reject: {status: 401}, labels: {user: null, other: x}}
  - name: later phase not reached
    expect:
      shape: {priority: bulk}
  - name: an error is expected and happens
    request: {path: /throw, headers: {Authorization: Bearer x}}
    expect:
      route: {error: route bug}
  - name: an unexpected error
    request: {path: /throw, headers: {Authorization: Bearer x}}
    expect:
      route: {service: users-v2}
  - name: a typo in a field
    request: {headers: {Authorization: Bearer x}}
    expect:
      shape: {priorty: critical}
`)
	s, err := Compile(p, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if s.CasesPath() != cases {
		t.Errorf("CasesPath %q, want %q", s.CasesPath(), cases)
	}
	rep, err := RunCases(s, cases)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"passes":                                nil,
		"wrong status and body":                 {`validate.reject.status: got 401, want 403`},
		"expects a reject that does not happen": {`validate.labels.other: got none, want "x"`, `validate.labels.user: got "u1", want none`, `validate.reject: got none, want {status: 401}`},
		"later phase not reached":               {`shape: not reached (validate rejected with 401)`},
		"an error is expected and happens":      nil,
		"an unexpected error":                   {`route: script "s" (version ` + s.ID() + `) route: Error: route bug at `},
		"a typo in a field":                     {`shape.priorty: no such field in a shape decision`},
	}
	if rep.Passed != 2 || rep.Failed != 5 || rep.OK() {
		t.Errorf("passed %d failed %d", rep.Passed, rep.Failed)
	}
	for _, c := range rep.Cases {
		w := want[c.Name]
		if len(c.Diffs) != len(w) {
			t.Errorf("%q: diffs %q, want %q", c.Name, c.Diffs, w)
			continue
		}
		for i := range w {
			if !strings.HasPrefix(c.Diffs[i], w[i]) {
				t.Errorf("%q: diff %q, want %q", c.Name, c.Diffs[i], w[i])
			}
		}
	}
	out := rep.String()
	if !strings.Contains(out, `FAIL `+cases+`: "wrong status and body"`) || !strings.HasSuffix(out, "2 passed, 5 failed") {
		t.Errorf("report:\n%s", out)
	}
}

func TestRunCasesRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	s, err := Compile(writeScript(t, dir, "s.js", casesScript), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ yaml, want string }{
		{"cases:\n  - name: x\n    requets: {}\n", "field requets not found"},
		{"cases:\n  - expect: {observe: {}}\n", "expect.observe"},
		{"cases: []\n", "no cases"},
		{"config: {a: 1}\ncases: [{expect: {validate: {}}}]\n", ""},
	} {
		p := writeScript(t, dir, "c.yaml", c.yaml)
		_, err := RunCases(s, p)
		if c.want == "" {
			if err != nil {
				t.Errorf("%q: %v", c.yaml, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.yaml, err, c.want)
		}
	}
}
